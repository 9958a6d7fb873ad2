-- Argo CD health check for initpipeline.io/InitPipeline (kstatus conditions).
-- Install: the argocd-cm key resource.customizations.health.initpipeline.io_InitPipeline
-- (deploy/argocd/argocd-cm.yaml carries this file). Written for Argo CD's Lua (5.1 syntax).
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
--   Progressing  no status yet, a spec the operator has not seen yet, or still converging
--   Degraded     Stalled=True (needs a user's action): the condition's message
--   Suspended    Ready's reason is Suspended (spec.suspend: true)
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or ""
  if hs.message == "" and ready ~= nil then
    hs.message = ready.message or ""
  end
  if stalled.reason ~= nil and stalled.reason ~= "" then
    hs.message = stalled.reason .. ": " .. hs.message
  end
  return hs
end
if ready ~= nil and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = ready.message or "spec.suspend is true"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
else
  hs.message = "Reconciling"
end
return hs
