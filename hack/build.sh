#!/usr/bin/env bash
# Build (or reuse) the cluster's binaries from the Go module proxy.
#
#   hack/build.sh            build every module whose pins changed
#   hack/build.sh --check    exit 0 if everything is cached, 1 otherwise
#   hack/build.sh --print    print "<module> <bin dir>" lines
#
# Binaries land in ~/.cache/initpipeline/bin/<module>-<pins hash>/ and are only
# rebuilt when that hash changes; the Go build cache (~/.cache/go-build) and
# module cache (~/go/pkg/mod) make a rebuild after a pin bump incremental.
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

command -v go >/dev/null || die "go is required (the Go toolchain builds Kubernetes, etcd and CoreDNS)"

packages_of() {
  case "$1" in
    kubernetes) echo k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
                     k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
                     k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ;;
    etcd) echo . ;;
    coredns) echo . ;;
  esac
}

binaries_of() {
  case "$1" in
    kubernetes) echo kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl ;;
    etcd) echo etcd ;;
    coredns) echo coredns ;;
  esac
}

is_built() {
  local dir b
  dir="$(bin_dir "$1")"
  [[ -f "${dir}/.complete" ]] || return 1
  for b in $(binaries_of "$1"); do [[ -x "${dir}/${b}" ]] || return 1; done
}

build_module() {
  local mod="$1" dir tmp ldflags start
  dir="$(bin_dir "${mod}")"
  ldflags="-s -w"
  if [[ "${mod}" == kubernetes ]]; then
    local v major minor
    v="$(kube_version)"; major="${v#v}"; major="${major%%.*}"
    minor="${v#v*.}"; minor="${minor%%.*}"
    # Upstream stamps these via hack/lib/version.sh; without them the
    # components report v0.0.0 and kubectl warns about version skew.
    ldflags+=" -X k8s.io/component-base/version.gitVersion=${v} -X k8s.io/component-base/version.gitMajor=${major}"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
  fi
  tmp="${dir}.tmp.$$"
  rm -rf "${tmp}"; mkdir -p "${tmp}"
  start=$(date +%s)
  log "building ${mod} ($(binaries_of "${mod}")) into ${dir}"
  # shellcheck disable=SC2046  # word splitting of the package list is intended
  (cd "${HACK_DIR}/build/${mod}" && CGO_ENABLED=0 go build -trimpath -ldflags="${ldflags}" -o "${tmp}/" $(packages_of "${mod}"))
  if [[ "${mod}" != kubernetes ]]; then
    # "go build ." names the binary after the module's last path element.
    local built
    built="${tmp}/$(basename "$(awk '$1=="module"{print $2}' "${HACK_DIR}/build/${mod}/go.mod")")"
    [[ "${built}" == "${tmp}/${mod}" ]] || mv "${built}" "${tmp}/${mod}"
  fi
  date -u +%FT%TZ > "${tmp}/.complete"
  rm -rf "${dir}"; mv "${tmp}" "${dir}"
  log "built ${mod} in $(( $(date +%s) - start ))s"
}

case "${1:-}" in
  --check) for m in "${BUILD_MODULES[@]}"; do is_built "$m" || exit 1; done; exit 0 ;;
  --print) for m in "${BUILD_MODULES[@]}"; do echo "$m $(bin_dir "$m")"; done; exit 0 ;;
  "") ;;
  *) die "usage: $0 [--check|--print]" ;;
esac

total_start=$(date +%s)
# One build at a time (2 cores): a second caller waits, then finds the binaries cached.
mkdir -p "${CACHE_ROOT}"
exec 9> "${CACHE_ROOT}/.build.lock"
if ! flock -n 9; then log "another build is running; waiting for it"; flock 9; fi
for m in "${BUILD_MODULES[@]}"; do
  if is_built "$m"; then log "${m}: cached in $(bin_dir "$m")"; else build_module "$m"; fi
done
# Drop binaries of pins no longer in use, so the cache does not grow forever.
for m in "${BUILD_MODULES[@]}"; do
  keep="$(bin_dir "$m")"
  for d in "${CACHE_ROOT}/bin/${m}-"*; do
    [[ -e "$d" && "$d" != "${keep}" ]] || continue
    # A .tmp.<pid> dir belongs to a build in progress only while that PID lives.
    if [[ "$d" == *.tmp.* ]] && kill -0 "${d##*.tmp.}" 2>/dev/null; then continue; fi
    log "removing stale ${d}"; rm -rf "$d"
  done
done
log "binaries ready ($(( $(date +%s) - total_start ))s)"
