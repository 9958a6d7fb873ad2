#!/usr/bin/env bash
# A local Kubernetes cluster from upstream binaries, run as host processes
# (modelled on kubernetes' hack/local-up-cluster.sh).
#
#   hack/cluster.sh up [control-plane|node]   start (or complete) the cluster; default: node
#   hack/cluster.sh down                      stop every process by PID and remove all state
#   hack/cluster.sh restart                   restart each running component in turn (new settings)
#   hack/cluster.sh status                    show components, level and nodes
#   hack/cluster.sh kubeconfig                print the kubeconfig path
#
# control-plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.
# node:          + containerd, kubelet, kube-proxy, CoreDNS: Pods run, Services
#                get ClusterIPs, cluster DNS names resolve.
#
# Everything lives in ${INITPIPELINE_CLUSTER_DIR:-/tmp/initpipeline-cluster}:
# kubeconfig, pki/, logs/<component>.log, pids/<component>.pid, data dirs.
# Listeners are on 127.0.0.1, or on the bridge this script creates (10.88.0.1).
# Needs root for the node level (bridge, iptables, mounts, containerd).
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# --- settings (env overridable) ------------------------------------------------
# INITPIPELINE_KUBERNETES=1.35 runs the 1.35 pin (hack/build/kubernetes-1.35) instead of
# the default one (see hack/lib/common.sh); a running cluster keeps the pin it started with.
API_PORT="${INITPIPELINE_API_PORT:-6443}"
ETCD_CLIENT_PORT="${INITPIPELINE_ETCD_PORT:-2379}"
ETCD_PEER_PORT="$((ETCD_CLIENT_PORT + 1))"
CONTROLLER_MANAGER_PORT="${INITPIPELINE_CONTROLLER_MANAGER_PORT:-10257}"
SCHEDULER_PORT="${INITPIPELINE_SCHEDULER_PORT:-10259}"
CONTEXT="${INITPIPELINE_CONTEXT:-initpipeline-local}"
NODE_NAME="initpipeline-node"
BRIDGE="initpipe0"                 # created by us, deleted on down
POD_CIDR="10.88.0.0/16"
BRIDGE_IP="10.88.0.1"              # node IP, kubelet, CoreDNS listen here
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
CLUSTER_DOMAIN="cluster.local"
PAUSE_IMAGE="registry.k8s.io/pause:3.10.1"
WAIT_SECONDS="${INITPIPELINE_WAIT_SECONDS:-120}"
# Extra kube-apiserver flags, e.g. for the fault tier: --etcd-compaction-interval=10s or
# --max-requests-inflight=4 (applied at the next start: `restart kube-apiserver`).
read -r -a APISERVER_FLAGS <<< "${INITPIPELINE_APISERVER_FLAGS:-}"

D="${CLUSTER_DIR}"
PKI="${D}/pki"
KCFG="${D}/kubeconfigs"
LOGS="${D}/logs"
PIDS="${D}/pids"
KUBECONFIG_PATH="${D}/kubeconfig"
CTR_SOCK="${D}/containerd/containerd.sock"
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)
NODE=(containerd kubelet kube-proxy coredns apiserver-proxy)

K8S_BIN=""; ETCD_BIN=""; COREDNS_BIN=""; CONTAINERD_BIN=""; RUNC_BIN=""; CNI_BIN=""
resolve_binaries() {
  K8S_BIN="$(bin_dir kubernetes)"; ETCD_BIN="$(bin_dir etcd)"; COREDNS_BIN="$(bin_dir coredns)"
  CONTAINERD_BIN="$(bin_dir containerd)"; RUNC_BIN="$(bin_dir runc)"; CNI_BIN="$(bin_dir cni-plugins)"
}
kubectl_() { "${K8S_BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" "$@"; }
ctr_() { "${CONTAINERD_BIN}/ctr" --address "${CTR_SOCK}" "$@"; }

# --- processes ------------------------------------------------------------------
# pids/<name>.pid holds "<pid> <binary>"; a PID only counts as ours while
# /proc/<pid>/exe still is that binary (guards against PID reuse).
pid_of() {
  local f="${PIDS}/$1.pid" pid bin
  [[ -f "$f" ]] || return 1
  read -r pid bin < "$f" || return 1
  [[ -n "${pid}" && "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == "${bin}" ]] || return 1
  echo "${pid}"
}
alive() { pid_of "$1" >/dev/null; }
any_alive() {
  local c
  for c in "${CONTROL_PLANE[@]}" "${NODE[@]}"; do alive "$c" && return 0; done
  return 1
}

# start <name> <binary> args...: detached (own session, so a Ctrl-C in the
# caller's terminal does not take the cluster down), output to logs/<name>.log.
start() {
  local name="$1" bin="$2"; shift 2
  if alive "${name}"; then log "${name}: already running (pid $(pid_of "${name}"))"; return; fi
  log "starting ${name}"
  # The daemons inherit no descriptor but stdio: not the up/down and build locks, nor a
  # caller's (`flock -x /tmp/node-cluster.lock -c 'hack/cluster.sh up'` would otherwise stay
  # locked for as long as the cluster runs).
  (
    for fd in /proc/"${BASHPID}"/fd/*; do
      fd="${fd##*/}"
      ((fd > 2)) && eval "exec ${fd}>&-"
    done
    exec setsid "${bin}" "$@" >> "${LOGS}/${name}.log" 2>&1 < /dev/null
  ) &
  local pid=$! exe i
  exe="$(readlink -f "${bin}")"
  echo "${pid} ${exe}" > "${PIDS}/${name}.pid"
  # Until the child has exec'd the binary, /proc/<pid>/exe is still bash or setsid and
  # `alive` would call it dead: on a busy machine `restart etcd` died so, at once.
  for ((i = 0; i < 100; i++)); do
    [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == "${exe}" ]] && return
    gone "${pid}" && return
    sleep 0.05
  done
}

# gone <pid>: exited (a zombie not yet reaped by our parent counts as exited).
gone() { [[ ! -e "/proc/$1" ]] || [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" == Z ]]; }

# stop <name>...: SIGTERM all of them, wait up to 10s, then SIGKILL what is left.
stop() {
  local name pid pids=() i left
  for name in "$@"; do
    if pid="$(pid_of "${name}")"; then
      log "stopping ${name} (pid ${pid})"
      kill -TERM "${pid}" 2>/dev/null || true
      pids+=("${pid}")
    fi
    rm -f "${PIDS}/${name}.pid"
  done
  for ((i = 0; i < 100; i++)); do
    left=0
    for pid in "${pids[@]}"; do gone "${pid}" || left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do gone "${pid}" || kill -KILL "${pid}" 2>/dev/null || true; done
}

# wait_for <what> <component> <command...>: poll until the command succeeds.
wait_for() {
  local what="$1" comp="$2" deadline=$((SECONDS + WAIT_SECONDS)); shift 2
  until "$@" >/dev/null 2>&1; do
    if ! alive "${comp}"; then
      tail -n 30 "${LOGS}/${comp}.log" >&2 || true
      die "${comp} exited while waiting for ${what} (log: ${LOGS}/${comp}.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "${LOGS}/${comp}.log" >&2 || true
      die "timed out after ${WAIT_SECONDS}s waiting for ${what} (log: ${LOGS}/${comp}.log)"
    fi
    sleep 0.2
  done
}

# --- certificates and kubeconfigs -------------------------------------------------
# cert <name> <subject> <extendedKeyUsage> [subjectAltName]: EC P-256 key signed by our CA.
cert() {
  local name="$1" subj="$2" eku="$3" san="${4:-}" ext
  ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=${eku}"
  [[ -n "${san}" ]] && ext+=$'\n'"subjectAltName=${san}"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "${PKI}/${name}.key" -out "${PKI}/${name}.csr" -subj "${subj}" 2>/dev/null
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" \
    -days 3650 -out "${PKI}/${name}.crt" -extfile <(printf '%s\n' "${ext}") 2>/dev/null
  rm -f "${PKI}/${name}.csr"
}

gen_pki() {
  [[ -f "${PKI}/.complete" ]] && return
  log "generating certificates and service-account keys in ${PKI}"
  rm -rf "${PKI}"; mkdir -p "${PKI}"; chmod 700 "${PKI}"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "${PKI}/ca.key" -out "${PKI}/ca.crt" -days 3650 -subj "/CN=initpipeline-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.${CLUSTER_DOMAIN},IP:127.0.0.1,IP:${API_SERVICE_IP},IP:${BRIDGE_IP}"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert admin "/O=system:masters/CN=initpipeline-admin" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  cert kubelet-client "/O=system:nodes/CN=system:node:${NODE_NAME}" clientAuth
  cert kubelet-server "/CN=${NODE_NAME}" serverAuth "DNS:${NODE_NAME},IP:${BRIDGE_IP}"
  cert kube-proxy "/CN=system:kube-proxy" clientAuth
  cert coredns "/CN=system:coredns" clientAuth
  # Service-account tokens (incl. TokenRequest) are signed with this key.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "${PKI}/sa.key" 2>/dev/null
  openssl pkey -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
  touch "${PKI}/.complete"
}

# kubeconfig <file> <cert name> <user>: client-certificate kubeconfig, data inlined.
kubeconfig() {
  local file="$1" crt="$2" user="$3"
  [[ -f "${file}" ]] && return   # readers may hold it open: write once per cluster
  cat > "${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ${CONTEXT}
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority-data: $(base64 -w0 < "${PKI}/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 < "${PKI}/${crt}.crt")
    client-key-data: $(base64 -w0 < "${PKI}/${crt}.key")
contexts:
- name: ${CONTEXT}
  context:
    cluster: ${CONTEXT}
    user: ${user}
current-context: ${CONTEXT}
EOF
  chmod 600 "${file}"
}

gen_kubeconfigs() {
  mkdir -p "${KCFG}"
  kubeconfig "${KUBECONFIG_PATH}" admin initpipeline-admin
  kubeconfig "${KCFG}/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  kubeconfig "${KCFG}/scheduler.kubeconfig" scheduler system:kube-scheduler
  kubeconfig "${KCFG}/kubelet.kubeconfig" kubelet-client "system:node:${NODE_NAME}"
  kubeconfig "${KCFG}/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  kubeconfig "${KCFG}/coredns.kubeconfig" coredns system:coredns
}

# --- control plane --------------------------------------------------------------------
api_ready() {
  curl -fsS --max-time 2 --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" \
    "https://127.0.0.1:${API_PORT}/readyz"
}

# What the operator's ServiceAccounts write, with the Pod each token is bound to
# (user.extra): the failover tests attribute every write to one replica.
write_audit_policy() {
  cat > "${D}/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:initpipeline-system"]
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
EOF
}

up_control_plane() {
  mkdir -p "${D}/etcd"; chmod 700 "${D}/etcd"
  write_audit_policy
  start etcd "${ETCD_BIN}/etcd" --name initpipeline --data-dir "${D}/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "initpipeline=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --unsafe-no-fsync --log-level warn   # throwaway data: skip fsync for speed
  wait_for "etcd health" etcd curl -fsS --max-time 2 "http://127.0.0.1:${ETCD_CLIENT_PORT}/health"

  start kube-apiserver "${K8S_BIN}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --bind-address 127.0.0.1 --advertise-address "${BRIDGE_IP}" --secure-port "${API_PORT}" \
    --tls-cert-file "${PKI}/apiserver.crt" --tls-private-key-file "${PKI}/apiserver.key" \
    --client-ca-file "${PKI}/ca.crt" \
    --service-account-issuer "https://kubernetes.default.svc.${CLUSTER_DOMAIN}" \
    --service-account-key-file "${PKI}/sa.pub" --service-account-signing-key-file "${PKI}/sa.key" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction,OwnerReferencesPermissionEnforcement \
    --audit-policy-file "${D}/audit-policy.yaml" --audit-log-path "${LOGS}/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --service-cluster-ip-range "${SERVICE_CIDR}" --allow-privileged=true \
    --kubelet-client-certificate "${PKI}/apiserver-kubelet-client.crt" \
    --kubelet-client-key "${PKI}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "${PKI}/ca.crt" --kubelet-preferred-address-types InternalIP \
    --profiling=false --v=1 "${APISERVER_FLAGS[@]}"
  wait_for "kube-apiserver /readyz" kube-apiserver api_ready

  start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
    --kubeconfig "${KCFG}/controller-manager.kubeconfig" \
    --authentication-kubeconfig "${KCFG}/controller-manager.kubeconfig" \
    --authorization-kubeconfig "${KCFG}/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${CONTROLLER_MANAGER_PORT}" --leader-elect=false \
    --service-account-private-key-file "${PKI}/sa.key" --root-ca-file "${PKI}/ca.crt" \
    --cluster-signing-cert-file "${PKI}/ca.crt" --cluster-signing-key-file "${PKI}/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range "${SERVICE_CIDR}" \
    --allocate-node-cidrs=false --profiling=false --v=1
  start kube-scheduler "${K8S_BIN}/kube-scheduler" \
    --kubeconfig "${KCFG}/scheduler.kubeconfig" \
    --authentication-kubeconfig "${KCFG}/scheduler.kubeconfig" \
    --authorization-kubeconfig "${KCFG}/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${SCHEDULER_PORT}" --leader-elect=false --profiling=false --v=1
  wait_for "kube-controller-manager /healthz" kube-controller-manager \
    curl -fsSk --max-time 2 "https://127.0.0.1:${CONTROLLER_MANAGER_PORT}/healthz"
  wait_for "kube-scheduler /healthz" kube-scheduler curl -fsSk --max-time 2 "https://127.0.0.1:${SCHEDULER_PORT}/healthz"
  # Pods cannot be created in a namespace before its "default" ServiceAccount exists.
  wait_for "ServiceAccount default/default" kube-controller-manager \
    kubectl_ get serviceaccount default -n default
}

# --- node -----------------------------------------------------------------------------
# set_sysctl <key> <value>: remember the original once, so down can restore it.
set_sysctl() {
  local key="$1" val="$2" path="/proc/sys/${1//.//}"
  [[ -w "${path}" ]] || { log "warning: cannot set ${key}"; return; }
  grep -q "^${key} " "${D}/sysctl.orig" 2>/dev/null || echo "${key} $(cat "${path}")" >> "${D}/sysctl.orig"
  echo "${val}" > "${path}"
}

setup_network() {
  if ! ip link show "${BRIDGE}" >/dev/null 2>&1; then
    log "creating bridge ${BRIDGE} ${BRIDGE_IP}/16"
    ip link add "${BRIDGE}" type bridge
    echo "${BRIDGE}" > "${D}/bridge"
  fi
  ip addr replace "${BRIDGE_IP}/16" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up
  # Service traffic between Pods on the same bridge must traverse iptables
  # (kube-proxy's DNAT), and Pod->ClusterIP is routed through the host.
  [[ -d /proc/sys/net/bridge ]] || modprobe br_netfilter 2>/dev/null || true
  set_sysctl net.bridge.bridge-nf-call-iptables 1
  set_sysctl net.ipv4.ip_forward 1
  # Forwarding is for Pod<->Service traffic only: drop anything from a Pod that
  # would be routed off the bridge, so no Pod traffic ever leaves this machine.
  iptables -N INITPIPELINE-EGRESS 2>/dev/null || true
  iptables -C INITPIPELINE-EGRESS -s "${POD_CIDR}" ! -d "${POD_CIDR}" -j DROP 2>/dev/null \
    || iptables -A INITPIPELINE-EGRESS -s "${POD_CIDR}" ! -d "${POD_CIDR}" -j DROP
  iptables -C FORWARD -j INITPIPELINE-EGRESS 2>/dev/null || iptables -I FORWARD 1 -j INITPIPELINE-EGRESS

  mkdir -p "${D}/cni/net.d" "${D}/cni/ipam"
  # ipMasq off: Pods need no way out of this machine, and no CNI iptables chains to leak.
  cat > "${D}/cni/net.d/10-initpipeline.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "initpipeline",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${BRIDGE_IP}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "${D}/cni/ipam"
      }
    }
  ]
}
EOF
}

start_containerd() {
  if alive containerd; then
    log "containerd: already running (pid $(pid_of containerd))"
  else
    write_containerd_config
    # Registry pulls go to a dead local proxy: they fail at once, and nothing
    # leaves this machine (images are imported, there is no registry).
    (
      export HTTP_PROXY=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY=''
      export http_proxy="${HTTP_PROXY}" https_proxy="${HTTPS_PROXY}" no_proxy=''
      # containerd finds its shim (containerd-shim-runc-v2) on PATH.
      export PATH="${CONTAINERD_BIN}:${PATH}"
      start containerd "${CONTAINERD_BIN}/containerd" --config "${D}/containerd/config.toml"
    )
    wait_for "containerd socket" containerd ctr_ version
  fi
  "${HACK_DIR}/images/build.sh" import "${CTR_SOCK}"
}

write_containerd_config() {
  mkdir -p "${D}/containerd"
  # containerd 2 (config version 3), runc and the CNI plugins are built from their Go
  # modules (hack/build/{containerd,runc,cni-plugins}). All of containerd's state
  # (images, snapshots, runc state, Pod netns mounts) stays under the cluster dir, so
  # down can remove every trace.
  cat > "${D}/containerd/config.toml" <<EOF
version = 3
root = "${D}/containerd/root"
state = "${D}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp", "io.containerd.nri.v1.nri"]
[grpc]
  address = "${CTR_SOCK}"
[ttrpc]
  address = "${CTR_SOCK}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE in this sandbox: negative oom_score_adj is refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "${RUNC_BIN}/runc"
        Root = "${D}/containerd/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["${CNI_BIN}"]
    conf_dir = "${D}/cni/net.d"
EOF
}

start_kubelet() {
  # Never rewrite a running component's config (kube-proxy exits when its file changes).
  if alive kubelet; then log "kubelet: already running (pid $(pid_of kubelet))"; return; fi
  mkdir -p "${D}/kubelet"
  : > "${D}/kubelet/resolv.conf"   # Pods get cluster DNS only, nothing of the host's
  cat > "${D}/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${BRIDGE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${PKI}/kubelet-server.crt
tlsPrivateKeyFile: ${PKI}/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://${CTR_SOCK}
clusterDNS: [${BRIDGE_IP}]
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: ${D}/kubelet/resolv.conf
# This host: cgroup v1 with the cgroupfs driver, swap may be on, and no
# CAP_SYS_RESOURCE (negative OOM scores are refused).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
localStorageCapacityIsolation: false
protectKernelDefaults: false
# Imported images cannot be pulled again: never garbage-collect them, never evict.
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
EOF
  start kubelet "${K8S_BIN}/kubelet" --config "${D}/kubelet/config.yaml" \
    --kubeconfig "${KCFG}/kubelet.kubeconfig" --hostname-override "${NODE_NAME}" \
    --node-ip "${BRIDGE_IP}" --root-dir "${D}/kubelet/root" --cert-dir "${D}/kubelet/pki" --v=2
  wait_for "node ${NODE_NAME} Ready" kubelet \
    kubectl_ wait --for=condition=Ready "node/${NODE_NAME}" --timeout=2s
}

start_kube_proxy() {
  # Never rewrite a running component's config (kube-proxy exits when its file changes).
  if alive kube-proxy; then log "kube-proxy: already running (pid $(pid_of kube-proxy))"; return; fi
  mkdir -p "${D}/kube-proxy"
  local masq_all=false
  # Without br_netfilter, replies between Pods on one bridge bypass the host's
  # un-DNAT; masquerading all Service traffic routes them back through it.
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || masq_all=true
  cat > "${D}/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${KCFG}/kube-proxy.kubeconfig}
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the bridge, never on the host's other addresses.
nodePortAddresses: ["${BRIDGE_IP}/32"]
# Leave the host's conntrack sysctls alone (read-only in a sandbox).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {masqueradeAll: ${masq_all}}
EOF
  start kube-proxy "${K8S_BIN}/kube-proxy" --config "${D}/kube-proxy/config.yaml" --v=1
  wait_for "kube-proxy /healthz" kube-proxy curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
}

start_coredns() {
  # Never rewrite a running component's config (kube-proxy exits when its file changes).
  if alive coredns; then log "coredns: already running (pid $(pid_of coredns))"; return; fi
  mkdir -p "${D}/coredns"
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
EOF
  # Runs on the host, listening on the bridge IP that kubelet hands out as clusterDNS.
  cat > "${D}/coredns/Corefile" <<EOF
${CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${BRIDGE_IP}
    errors
    ready 127.0.0.1:8181
    health 127.0.0.1:8180
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${KCFG}/coredns.kubeconfig ${CONTEXT}
        pods insecure
    }
}
.:53 {
    bind ${BRIDGE_IP}
    errors
}
EOF
  start coredns "${COREDNS_BIN}/coredns" -conf "${D}/coredns/Corefile"
  wait_for "CoreDNS /ready" coredns curl -fsS --max-time 2 http://127.0.0.1:8181/ready
}

# The API server listens on 127.0.0.1 only; it advertises the bridge IP as the
# endpoint of the "kubernetes" Service (loopback endpoints are invalid), and this
# forwarder makes that endpoint real so Pods can reach the API (in-cluster config).
start_apiserver_proxy() {
  start apiserver-proxy "$(command -v socat)" \
    "TCP-LISTEN:${API_PORT},bind=${BRIDGE_IP},fork,reuseaddr" "TCP:127.0.0.1:${API_PORT}"
  wait_for "API via ${BRIDGE_IP}:${API_PORT}" apiserver-proxy \
    curl -fsS --max-time 2 --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" \
    "https://${BRIDGE_IP}:${API_PORT}/readyz"
}

up_node() {
  [[ "$(id -u)" == 0 ]] || die "the node level needs root (bridge, iptables, mounts, containerd)"
  local t
  for t in ip iptables socat; do command -v "$t" >/dev/null || die "missing $t (see .ci/run)"; done
  setup_network
  start_apiserver_proxy
  start_containerd
  start_kubelet
  start_kube_proxy
  start_coredns
}

# --- up / down / status --------------------------------------------------------------------
cmd_up() {
  local level="${1:-${INITPIPELINE_CLUSTER_LEVEL:-node}}" t0=${SECONDS}
  case "${level}" in control-plane|node) ;; *) die "unknown level '${level}' (control-plane|node)" ;; esac
  for t in openssl curl; do command -v "$t" >/dev/null || die "missing $t"; done
  "${HACK_DIR}/build.sh" --check || "${HACK_DIR}/build.sh"
  resolve_binaries
  if [[ -d "${D}" ]] && ! any_alive; then
    # Left by a run whose processes are gone (reboot, killed session): start clean.
    log "no cluster process alive in ${D}: removing the stale state first"
    cmd_down
  fi
  mkdir -p "${D}" "${LOGS}" "${PIDS}"
  # One cluster runs one Kubernetes pin (INITPIPELINE_KUBERNETES): never mix two.
  local pin running
  pin="$(kube_version)"
  running="$(cat "${D}/kubernetes-version" 2>/dev/null || echo "${pin}")"
  [[ "${running}" == "${pin}" ]] \
    || die "the cluster in ${D} runs Kubernetes ${running}, not ${pin} (INITPIPELINE_KUBERNETES=${INITPIPELINE_KUBERNETES:-}): hack/cluster.sh down first"
  echo "${pin}" > "${D}/kubernetes-version"
  gen_pki
  gen_kubeconfigs
  up_control_plane
  if [[ "${level}" == node ]]; then
    up_node
    echo node > "${D}/level"
  elif [[ "$(cat "${D}/level" 2>/dev/null)" != node ]]; then
    echo control-plane > "${D}/level"
  fi
  log "cluster up at level $(cat "${D}/level") in $((SECONDS - t0))s; export KUBECONFIG=${KUBECONFIG_PATH} (context ${CONTEXT})"
}

# remove_pod_leftovers: containers and sandboxes the kubelet did not tear down.
remove_pod_leftovers() {
  local ids id deadline pid
  if alive containerd; then
    if alive kube-apiserver && alive kubelet; then
      # Let the kubelet tear Pods down properly (CNI DEL, volume unmounts) first.
      kubectl_ delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
      deadline=$((SECONDS + 20))
      while ((SECONDS < deadline)) && ctr_ -n k8s.io tasks ls 2>/dev/null \
          | awk 'NR > 1 && $3 == "RUNNING" {found = 1} END {exit !found}'; do
        sleep 0.5
      done
    fi
    stop kubelet
    ids="$(ctr_ -n k8s.io tasks ls -q 2>/dev/null || true)"
    for id in ${ids}; do ctr_ -n k8s.io tasks kill -s SIGKILL "${id}" >/dev/null 2>&1 || true; done
    for id in ${ids}; do ctr_ -n k8s.io tasks rm -f "${id}" >/dev/null 2>&1 || true; done
    ids="$(ctr_ -n k8s.io containers ls -q 2>/dev/null || true)"
    for id in ${ids}; do ctr_ -n k8s.io containers rm "${id}" >/dev/null 2>&1 || true; done
  fi
  stop kubelet
  stop containerd
  # containerd-shim processes serving our containerd (identified by its socket).
  # shellcheck disable=SC2013  # one PID per line, no spaces
  for pid in $(grep -lsF -- "${CTR_SOCK}" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == *containerd-shim* ]] || continue
    log "killing leftover shim ${pid}"
    kill -KILL "${pid}" 2>/dev/null || true
  done
}

unmount_all() {
  local m
  # Deepest first: Pod volumes, netns bind mounts, overlay rootfs.
  while read -r m; do
    umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || log "warning: cannot unmount ${m}"
  done < <(findmnt -rn -o TARGET | grep -F "${D}/" | sort -r)
}

clean_iptables() {
  local cmd table
  for cmd in iptables ip6tables; do
    command -v "${cmd}-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      # kube-proxy and the kubelet create chains named KUBE-*, we INITPIPELINE-*:
      # drop them and every rule jumping to them, leaving the rest untouched.
      if "${cmd}-save" -t "${table}" 2>/dev/null | grep -qE 'KUBE-|INITPIPELINE-'; then
        "${cmd}-save" -t "${table}" | grep -vE -- 'KUBE-|INITPIPELINE-' | "${cmd}-restore" -T "${table}" \
          || log "warning: could not clean ${cmd} ${table}"
      fi
    done
  done
}

remove_cgroups() {
  local dir
  # cgroupfs driver: the kubelet's pod hierarchy; empty once every container is gone.
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "${dir}" ]] || continue
    find "${dir}" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

cmd_down() {
  local key val
  [[ -d "${D}" ]] || { log "no cluster state in ${D}"; return; }
  resolve_binaries
  stop coredns kube-proxy
  remove_pod_leftovers
  stop apiserver-proxy kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
  unmount_all
  if [[ -f "${D}/level" && "$(cat "${D}/level")" == node ]]; then
    clean_iptables
    remove_cgroups
  fi
  if [[ -f "${D}/bridge" ]]; then ip link del "$(cat "${D}/bridge")" 2>/dev/null || true; fi
  if [[ -f "${D}/sysctl.orig" ]]; then
    while read -r key val; do echo "${val}" > "/proc/sys/${key//.//}" 2>/dev/null || true; done < "${D}/sysctl.orig"
  fi
  # Shim sockets and fifo dirs containerd keeps outside its configured state, and
  # libcni's result cache (fixed at /var/lib/cni): ours, then the dirs if empty.
  rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null || true
  # (cni-loopback-* are the CRI's loopback results: containerd here is ours.)
  rm -f /var/lib/cni/results/initpipeline-* /var/lib/cni/results/cni-loopback-*
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  if findmnt -rn -o TARGET | grep -qF "${D}/"; then
    die "mounts remain under ${D}; not removing it"
  fi
  rm -rf "${D}"
  log "cluster down; ${D} removed"
}

cmd_status() {
  local c level rc=0
  if [[ ! -d "${D}" ]]; then echo "no cluster (${D} does not exist)"; return 3; fi
  level="$(cat "${D}/level" 2>/dev/null || echo none)"
  echo "level:      ${level}"
  echo "kubeconfig: ${KUBECONFIG_PATH} (context ${CONTEXT})"
  echo "logs:       ${LOGS}"
  for c in "${CONTROL_PLANE[@]}" "${NODE[@]}"; do
    if alive "$c"; then
      printf '  %-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    elif [[ "${level}" == node ]] || [[ " ${CONTROL_PLANE[*]} " == *" $c "* ]]; then
      printf '  %-24s NOT RUNNING\n' "$c"; rc=1
    fi
  done
  resolve_binaries
  if alive kube-apiserver; then kubectl_ get nodes -o wide 2>&1 | sed 's/^/  /' || true; fi
  return "${rc}"
}

# up and down mutate shared state: one at a time (parallel test sessions may race).
lock() {
  exec 8> "${D}.flock"
  if ! flock -n 8; then log "waiting for another hack/cluster.sh up/down"; flock 8; fi
}

case "${1:-}" in
  up) lock; cmd_up "${2:-}" ;;
  down) lock; cmd_down ;;
  restart)
    # Restart the named running components (default: every one), one by one with
    # the current settings, keeping the cluster's data and Pods.
    lock
    level="$(cat "${D}/level" 2>/dev/null)" || die "no cluster in ${D}"
    shift
    components=("$@")
    ((${#components[@]})) || components=("${CONTROL_PLANE[@]}" "${NODE[@]}")
    for c in "${components[@]}"; do
      [[ " ${CONTROL_PLANE[*]} ${NODE[*]} " == *" ${c} "* ]] || die "no component ${c}"
      if alive "$c"; then stop "$c"; cmd_up "${level}"; fi
    done ;;
  status) cmd_status ;;
  kubeconfig) echo "${KUBECONFIG_PATH}" ;;
  *) echo "usage: $0 up [control-plane|node] | down | restart [component...] | status | kubeconfig" >&2; exit 2 ;;
esac
