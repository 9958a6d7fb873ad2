#!/usr/bin/env bash
# Build (or reuse) the cluster's binaries, and helm, from the Go module proxy.
#
#   hack/build.sh [module...]            build every module (or those named) whose pins changed
#   hack/build.sh --check [module...]    exit 0 if everything (or those named) is cached, 1 otherwise
#   hack/build.sh --print [module...]    print "<module> <bin dir>" lines
#
# Modules are the dirs under hack/build/ (BUILD_MODULES in hack/lib/common.sh):
#   hack/build.sh helm                   builds only helm
#   INITPIPELINE_KUBERNETES=1.35 hack/build.sh kubernetes
#                                        builds the 1.35 pin (hack/build/kubernetes-1.35)
# Binaries land in ~/.cache/initpipeline/bin/<module>-<pins hash>/ and are only
# rebuilt when that hash changes; the Go build cache (~/.cache/go-build) and
# module cache (~/go/pkg/mod) make a rebuild after a pin bump incremental.
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

command -v go >/dev/null || die "go is required (the Go toolchain builds Kubernetes, etcd, CoreDNS and helm)"

packages_of() {
  case "$1" in
    kubernetes) echo k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
                     k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
                     k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ;;
    etcd) echo . ;;
    coredns) echo . ;;
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    containerd) echo github.com/containerd/containerd/v2/cmd/containerd \
                     github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
                     github.com/containerd/containerd/v2/cmd/ctr ;;
    runc) echo github.com/opencontainers/runc ;;
    cni-plugins) echo github.com/containernetworking/plugins/plugins/main/bridge \
                      github.com/containernetworking/plugins/plugins/ipam/host-local \
                      github.com/containernetworking/plugins/plugins/main/loopback ;;
  esac
}

binaries_of() {
  case "$1" in
    kubernetes) echo kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl ;;
    etcd) echo etcd ;;
    coredns) echo coredns ;;
    helm) echo helm ;;
    containerd) echo containerd containerd-shim-runc-v2 ctr ;;
    runc) echo runc ;;
    cni-plugins) echo bridge host-local loopback ;;
  esac
}

is_built() {
  local dir b
  dir="$(bin_dir "$1")"
  [[ -f "${dir}/.complete" ]] || return 1
  for b in $(binaries_of "$1"); do [[ -x "${dir}/${b}" ]] || return 1; done
}

# ldflags_of <module>: -s -w plus the version stamps upstream's own release build sets.
# Every stamped value is read from the module's go.mod, so the pins hash covers it.
ldflags_of() {
  local ldflags="-s -w" v major minor
  case "$1" in
    kubernetes)
      v="$(kube_version)"; major="${v#v}"; major="${major%%.*}"
      minor="${v#v*.}"; minor="${minor%%.*}"
      # Upstream stamps these via hack/lib/version.sh; without them the
      # components report v0.0.0 and kubectl warns about version skew.
      ldflags+=" -X k8s.io/component-base/version.gitVersion=${v} -X k8s.io/component-base/version.gitMajor=${major}"
      ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean" ;;
    helm)
      # As helm's Makefile does for a tagged release: the version (else "v3.22"
      # without patch level), and the Kubernetes version of its client-go
      # (v0.N -> 1.N), which `helm template` reports as .Capabilities.KubeVersion
      # and `helm lint` checks deprecated APIs against (else 1.20).
      v="$(module_version helm helm.sh/helm/v3)"
      minor="$(module_version helm k8s.io/client-go)"; minor="${minor#v0.}"; minor="${minor%%.*}"
      ldflags+=" -X helm.sh/helm/v3/internal/version.version=${v} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}"
      ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}" ;;
    containerd)
      # As containerd's Makefile: the CRI reports this version to the kubelet, which
      # shows it as the node's containerRuntimeVersion (the operator reads it there).
      v="$(module_version containerd github.com/containerd/containerd/v2)"
      ldflags+=" -X github.com/containerd/containerd/v2/version.Version=${v} -X github.com/containerd/containerd/v2/version.Revision=${v}" ;;
    runc)
      v="$(module_version runc github.com/opencontainers/runc)"
      ldflags+=" -X main.version=${v#v}" ;;
    cni-plugins)
      v="$(module_version cni-plugins github.com/containernetworking/plugins)"
      ldflags+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=${v}" ;;
  esac
  echo "${ldflags}"
}

build_module() {
  local mod="$1" dir tmp ldflags start src
  dir="$(bin_dir "${mod}")"
  src="$(module_dir "${mod}")"
  ldflags="$(ldflags_of "${mod}")"
  tmp="${dir}.tmp.$$"
  rm -rf "${tmp}"; mkdir -p "${tmp}"
  start=$(date +%s)
  log "building ${mod} ($(binaries_of "${mod}")) into ${dir}"
  # shellcheck disable=SC2046  # word splitting of the package list is intended
  (
    cd "${src}"
    # build.env (part of the pins) may turn cgo on and set build tags (runc: seccomp).
    CGO_ENABLED=0; TAGS=""
    # shellcheck disable=SC1091
    [[ -f build.env ]] && source build.env
    CGO_ENABLED="${CGO_ENABLED}" go build -trimpath -tags="${TAGS}" -ldflags="${ldflags}" -o "${tmp}/" $(packages_of "${mod}")
  )
  if [[ "$(packages_of "${mod}")" == . ]]; then
    # "go build ." names the binary after the module's last path element.
    local built
    built="${tmp}/$(basename "$(awk '$1=="module"{print $2}' "${src}/go.mod")")"
    [[ "${built}" == "${tmp}/${mod}" ]] || mv "${built}" "${tmp}/${mod}"
  fi
  date -u +%FT%TZ > "${tmp}/.complete"
  rm -rf "${dir}"; mv "${tmp}" "${dir}"
  log "built ${mod} in $(( $(date +%s) - start ))s"
}

action=build
case "${1:-}" in
  --check) action=check; shift ;;
  --print) action=print; shift ;;
  -*) die "usage: $0 [--check|--print] [module...] (modules: ${BUILD_MODULES[*]})" ;;
esac
modules=("${BUILD_MODULES[@]}")
if (( $# )); then
  for m in "$@"; do
    [[ -n "$(binaries_of "$m")" && -f "$(module_dir "$m")/go.mod" ]] \
      || die "unknown module '${m}' (modules: ${BUILD_MODULES[*]})"
  done
  modules=("$@")
fi

case "${action}" in
  check) for m in "${modules[@]}"; do is_built "$m" || exit 1; done; exit 0 ;;
  print) for m in "${modules[@]}"; do echo "$m $(bin_dir "$m")"; done; exit 0 ;;
esac

total_start=$(date +%s)
# One build at a time (2 cores): a second caller waits, then finds the binaries cached.
mkdir -p "${CACHE_ROOT}"
exec 9> "${CACHE_ROOT}/.build.lock"
if ! flock -n 9; then log "another build is running; waiting for it"; flock 9; fi
for m in "${modules[@]}"; do
  if is_built "$m"; then log "${m}: cached in $(bin_dir "$m")"; else build_module "$m"; fi
done
# Drop binaries of pins no longer in use, so the cache does not grow forever
# (every Kubernetes pin of the matrix is in use: each keeps its dir).
for m in "${modules[@]}"; do
  keep=" $(bin_dir "$m") "
  if [[ "$m" == kubernetes ]]; then
    for d in "${HACK_DIR}"/build/kubernetes/ "${HACK_DIR}"/build/kubernetes-*/; do
      keep+=" ${CACHE_ROOT}/bin/kubernetes-$(pins_hash_of_dir "$d") "
    done
  fi
  for d in "${CACHE_ROOT}/bin/${m}-"*; do
    # Only <module>-<hash>[.tmp.<pid>]: "cni-plugins-*" is not the cache of a module "cni".
    [[ "${d#"${CACHE_ROOT}/bin/${m}-"}" =~ ^[0-9a-f]{16}(\.tmp\.[0-9]+)?$ ]] || continue
    [[ -e "$d" && "${keep}" != *" $d "* ]] || continue
    # A .tmp.<pid> dir belongs to a build in progress only while that PID lives.
    if [[ "$d" == *.tmp.* ]] && kill -0 "${d##*.tmp.}" 2>/dev/null; then continue; fi
    log "removing stale ${d}"; rm -rf "$d"
  done
done
log "binaries ready ($(( $(date +%s) - total_start ))s)"
