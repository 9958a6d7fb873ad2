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
# The cache key of each module's binaries is a hash of everything that decides
# their bytes: that module's files, this build recipe and the Go version.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "${HACK_DIR}/.." && pwd)"
CACHE_ROOT="${INITPIPELINE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/initpipeline}"
CLUSTER_DIR="${INITPIPELINE_CLUSTER_DIR:-/tmp/initpipeline-cluster}"
BUILD_MODULES=(kubernetes etcd coredns helm)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# module_version <module-dir> <module-path>: the version go.mod requires.
module_version() {
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' \
    "${HACK_DIR}/build/$1/go.mod" | head -n1
}

kube_version() { module_version kubernetes k8s.io/kubernetes; }

# pins_hash <module>: stable key of a module's pins and of the recipe.
pins_hash() {
  local mod="$1"
  {
    go env GOVERSION GOOS GOARCH
    cat "${HACK_DIR}/lib/build-recipe.txt"
    (cd "${HACK_DIR}/build/${mod}" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
}

# bin_dir <module>: where that module's binaries are cached.
bin_dir() { printf '%s/bin/%s-%s\n' "${CACHE_ROOT}" "$1" "$(pins_hash "$1")"; }
