# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this
# Shared settings for hack/*.sh. Sourced, never executed.
#
# The pins live in the Go modules under hack/build/<name>/ (go.mod + go.sum):
#   kubernetes -> k8s.io/kubernetes (kube-apiserver, kube-controller-manager,
#                 kube-scheduler, kubelet, kube-proxy, kubectl)
#   etcd       -> go.etcd.io/etcd/server/v3
#   coredns    -> github.com/coredns/coredns (only the plugins we need)
#   helm       -> helm.sh/helm/v3 (the helm CLI: the chart's lint, template and install tests)
#   containerd -> github.com/containerd/containerd/v2 (containerd, containerd-shim-runc-v2, ctr)
#   runc       -> github.com/opencontainers/runc (cgo, with seccomp: needs libseccomp-dev)
#   cni-plugins -> github.com/containernetworking/plugins (bridge, host-local, loopback)
# A module dir may hold build.env (CGO_ENABLED=..., TAGS=...): part of its pins.
#
# Kubernetes has one dir per pinned minor: hack/build/kubernetes is the default
# (newest) pin, hack/build/kubernetes-<minor> an older one of the version matrix,
# chosen with INITPIPELINE_KUBERNETES=<minor> (e.g. 1.35). Either way the binaries
# are cached as kubernetes-<pins hash>, so every pin keeps its own cache dir.
# The cache key of each module's binaries is a hash of everything that decides
# their bytes: that module's files, this build recipe and the Go version.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "${HACK_DIR}/.." && pwd)"
CACHE_ROOT="${INITPIPELINE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/initpipeline}"
CLUSTER_DIR="${INITPIPELINE_CLUSTER_DIR:-/tmp/initpipeline-cluster}"
BUILD_MODULES=(kubernetes etcd coredns helm containerd runc cni-plugins)
KUBERNETES_DIR="kubernetes${INITPIPELINE_KUBERNETES:+-${INITPIPELINE_KUBERNETES}}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# module_dir <module>: the Go module that pins it (kubernetes: the selected minor's).
module_dir() {
  if [[ "$1" == kubernetes ]]; then
    [[ -d "${HACK_DIR}/build/${KUBERNETES_DIR}" ]] \
      || die "INITPIPELINE_KUBERNETES=${INITPIPELINE_KUBERNETES:-}: no ${HACK_DIR}/build/${KUBERNETES_DIR} (pinned: $(kubernetes_pins))"
    echo "${HACK_DIR}/build/${KUBERNETES_DIR}"
  else
    echo "${HACK_DIR}/build/$1"
  fi
}

# kubernetes_pins: the minors the matrix can select ("default" is hack/build/kubernetes).
kubernetes_pins() {
  local d out=default
  for d in "${HACK_DIR}"/build/kubernetes-*/; do
    [[ -d "$d" ]] && d="${d%/}" && out+=" ${d##*/kubernetes-}"
  done
  echo "${out}"
}

# module_version <module> <module-path>: the version go.mod requires.
module_version() {
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' \
    "$(module_dir "$1")/go.mod" | head -n1
}

kube_version() { module_version kubernetes k8s.io/kubernetes; }

# pins_hash_of_dir <module dir>: stable key of a module's pins and of the recipe.
pins_hash_of_dir() {
  {
    go env GOVERSION GOOS GOARCH
    cat "${HACK_DIR}/lib/build-recipe.txt"
    (cd "$1" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name 'build.env' \) | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
}
pins_hash() { pins_hash_of_dir "$(module_dir "$1")"; }

# bin_dir <module>: where that module's binaries are cached.
bin_dir() { printf '%s/bin/%s-%s\n' "${CACHE_ROOT}" "$1" "$(pins_hash "$1")"; }

# ctr_path: the ctr built with the node's containerd (hack/build/containerd).
ctr_path() { printf '%s/ctr\n' "$(bin_dir containerd)"; }
