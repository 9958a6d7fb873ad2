{{/*
Names: <release>-operator (initpipeline-operator for release "initpipeline", the names of
deploy/base), or fullnameOverride.
*/}}
{{- define "initpipeline.fullname" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object: deploy/base's three, plus Helm's standard ones. */}}
{{- define "initpipeline.labels" -}}
app.kubernetes.io/name: initpipeline
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: initpipeline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The operator's Pods: deploy/base's selector, plus the release. */}}
{{- define "initpipeline.selectorLabels" -}}
app.kubernetes.io/name: initpipeline
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "initpipeline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The operator's environment: every INITPIPELINE_* name the chart sets is in this one place
(docs/operating.md of the repository describes them).
*/}}
{{- define "initpipeline.env" -}}
# Settings: docs/operating.md. Empty INITPIPELINE_NAMESPACES: every namespace.
- name: INITPIPELINE_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
{{- with .Values.shardSelector }}
- name: INITPIPELINE_SHARD_SELECTOR
  value: {{ . | quote }}
{{- end }}
- name: INITPIPELINE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: INITPIPELINE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: INITPIPELINE_LIVENESS_ENDPOINT
  value: {{ printf "http://0.0.0.0:%v/healthz" .Values.liveness.port | quote }}
- name: INITPIPELINE_METRICS_PORT
  value: {{ ternary .Values.metrics.port 0 .Values.metrics.enabled | quote }}
- name: INITPIPELINE_STEP_IMAGE
  value: {{ .Values.stepImage | quote }}
# renderConfig steps run the operator's own image unless renderImage says otherwise.
- name: INITPIPELINE_RENDER_IMAGE
  value: {{ default (include "initpipeline.image" .) .Values.renderImage | quote }}
# Leader election: the Lease lives in the Pod's namespace, its holder is the Pod's name.
- name: INITPIPELINE_LEADER_ELECTION
  value: {{ .Values.leaderElection.enabled | toString | quote }}
{{- if .Values.leaderElection.enabled }}
# The one Lease the leader-election Role grants (resourceNames).
- name: INITPIPELINE_LEASE_NAME
  value: {{ include "initpipeline.fullname" . | quote }}
- name: INITPIPELINE_LEASE_DURATION_SECONDS
  value: {{ .Values.leaderElection.leaseDurationSeconds | quote }}
- name: INITPIPELINE_RENEW_DEADLINE_SECONDS
  value: {{ .Values.leaderElection.renewDeadlineSeconds | quote }}
- name: INITPIPELINE_RETRY_PERIOD_SECONDS
  value: {{ .Values.leaderElection.retryPeriodSeconds | quote }}
{{- end }}
- name: INITPIPELINE_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: INITPIPELINE_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Everything the operator does through the API, and nothing else: the rules of
deploy/base/clusterrole.yaml, whose comments give the reasons. A ClusterRole when every
namespace is watched, a Role in each watched namespace otherwise.
*/}}
{{- define "initpipeline.rules" -}}
# framework: Kopf lists and watches InitPipelines (@kopf.on.event).
- apiGroups: [initpipeline.io]
  resources: [initpipelines]
  verbs: [list, watch]
# application: the controller writes status (observedGeneration, steps, conditions) with a
# merge patch of the status subresource; spec and metadata stay the user's.
- apiGroups: [initpipeline.io]
  resources: [initpipelines/status]
  verbs: [patch]
# application: the Pods' ownerReference blocks the pipeline's deletion until they are gone
# (blockOwnerDeletion); the OwnerReferencesPermissionEnforcement admission plugin (on in
# OpenShift) allows that only to who may update the owner's finalizers. None is ever set.
- apiGroups: [initpipeline.io]
  resources: [initpipelines/finalizers]
  verbs: [update]
# framework: Kopf lists and watches the generated Pods (@kopf.index and @kopf.on.event,
# label selector initpipeline.io/pipeline).
# application: the controller creates the Pods, deletes them (spec change, scale down,
# suspend; uid precondition) and patches its release annotation onto them
# (initpipeline.io/released, the signal for API-side wait targets); past
# spec.activeDeadlineSeconds it annotates a Pod (initpipeline.io/deadline-exceeded) and
# lowers its activeDeadlineSeconds to 1, so the kubelet stops it.
# application: a create refused because the Pod exists is followed by a get of it (the
# informer has not shown it yet, or it still carries the shard label of the shard the
# pipeline was moved from: then its label is patched).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, patch]
# application: a Pod past spec.activeDeadlineSeconds that no node has yet is marked Failed
# (reason DeadlineExceeded; resourceVersion precondition), so it is never scheduled.
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
# application: the last lines a running wait container printed (why it still waits).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# application: waitFor `service` targets: the Service and its ready endpoints (watch cache).
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch]
# application: the EndpointSlices of those Services (how many endpoints are ready).
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
# application: waitFor `job` targets: the Job's Complete condition (watch cache); the Job
# that runs a `once` run step per spec revision (create), and those of older revisions
# (delete). Creating a Job grants nothing that creating Pods does not.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
# application: step events on the InitPipeline (StepStarted, StepSucceeded, StepFailed ...).
# framework: Kopf posts events about its own handler errors. Both post core v1 Events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* Settings that cannot work together stop the install with a message. */}}
{{- define "initpipeline.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (or (gt (int .Values.replicas) 1) (ne .Values.strategy.type "Recreate")) -}}
{{- fail "leaderElection.enabled=false needs replicas: 1 and strategy.type: Recreate (two operators without leader election reconcile the same pipelines)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not (and .Values.metrics.enabled .Values.metrics.service.enabled)) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled" -}}
{{- end -}}
{{- end -}}
