#!/usr/bin/env bash
# Build the operator's image from the project's Dockerfile without a Docker engine or a
# registry: Debian's mmdebstrap makes the Python base image, buildah builds the Dockerfile
# on it, and the result is an OCI archive that containerd imports.
#
#   hack/images/operator.sh build              build if needed; print the OCI archive's path
#   hack/images/operator.sh ref                print the image reference the archive holds
#   hack/images/operator.sh import [<address>] build if needed, import into containerd
#                                              (default: the local cluster's containerd);
#                                              print the imported image reference
#
# Cached under ~/.cache/initpipeline/: the base root filesystem keyed by its recipe (this
# script), the image keyed by everything the Dockerfile reads plus the base's key.
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

IMAGE_REPO=localhost/initpipeline
BASE_SUITE=bookworm   # Python 3.11, the version the project supports and tests
BASE_PACKAGES=python3,python3-venv
BASE_IMAGE="localhost/initpipeline/python-base:3.11-${BASE_SUITE}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
STATE="${CACHE_ROOT}/buildah"

# mmdebstrap's arguments: merged-usr keeps the root filesystem small; docs, man pages and
# locales are of no use in an image. They are the base image's cache key.
BASE_RECIPE=(--variant=minbase --include="${BASE_PACKAGES}"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' "${BASE_SUITE}")

base_hash() { printf '%s\n' "${BASE_RECIPE[@]}" | sha256sum | cut -c1-16; }

# The files the Dockerfile's build context lets in (see .dockerignore).
image_hash() {
  {
    base_hash
    cd "${REPO_DIR}"
    find Dockerfile .dockerignore pyproject.toml uv.lock README.md operator -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
}

buildah_() {
  # Host networking and a private CNI config dir: otherwise buildah's first RUN creates a
  # CNI bridge on 10.88.0.0/16, the local cluster's own subnet, and leaves iptables chains.
  mkdir -p "${STATE}/cni"
  [[ -f "${STATE}/containers.conf" ]] || printf '[containers]\nnetns = "host"\n[network]\nnetwork_config_dir = "%s/cni"\n' \
    "${STATE}" > "${STATE}/containers.conf"
  CONTAINERS_CONF="${STATE}/containers.conf" buildah --root "${STATE}/storage" \
    --runroot /run/initpipeline-buildah --storage-driver overlay "$@"
}

build_base() {
  local key work container
  key="$(base_hash)"
  if [[ "$(buildah_ inspect --type image --format '{{index .ImageAnnotations "initpipeline.io/recipe"}}' "${BASE_IMAGE}" 2>/dev/null)" == "${key}" ]]; then
    return
  fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
  work="$(mktemp -d)"
  log "making the ${BASE_SUITE} root filesystem with ${BASE_PACKAGES} (mmdebstrap)"
  mmdebstrap "${BASE_RECIPE[@]}" "${work}/rootfs.tar" >"${work}/log" 2>&1 \
    || { cat "${work}/log" >&2; die "mmdebstrap failed"; }
  container="$(buildah_ from scratch)"
  buildah_ add "${container}" "${work}/rootfs.tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 --annotation "initpipeline.io/recipe=${key}" "${container}"
  buildah_ commit --quiet --rm "${container}" "${BASE_IMAGE}" >/dev/null
  rm -rf "${work}"
}

build_image() {
  local key out
  key="$(image_hash)"
  out="${CACHE_ROOT}/operator-image/${key}.tar"
  if [[ -f "${out}" ]]; then echo "${out}"; return; fi
  command -v buildah >/dev/null || die "buildah missing: apt-get install buildah"
  build_base
  log "building ${IMAGE_REPO}:${key} from the Dockerfile (buildah)"
  # The host's CA bundle, read-only, for pip and uv: TLS to the package index may be
  # re-signed by a proxy on build machines.
  (cd "${REPO_DIR}" && buildah_ bud --quiet --layers --network host --isolation chroot \
    --build-arg PYTHON_IMAGE="${BASE_IMAGE}" --build-arg SSL_CERT_FILE="${CA_BUNDLE}" \
    --volume "${CA_BUNDLE}:${CA_BUNDLE}:ro" \
    --tag "${IMAGE_REPO}:${key}" --tag "${IMAGE_REPO}:dev" . >&2)
  mkdir -p "$(dirname "${out}")"
  buildah_ push --quiet "${IMAGE_REPO}:${key}" "oci-archive:${out}.tmp:${IMAGE_REPO}:${key}"
  mv "${out}.tmp" "${out}"
  # Older archives and images are of no further use; keep the layer cache.
  find "$(dirname "${out}")" -name '*.tar' ! -name "${key}.tar" -delete
  local stale
  for stale in $(buildah_ images --format '{{.Name}}:{{.Tag}}' | grep "^${IMAGE_REPO}:" \
    | grep -v -e ":${key}\$" -e ':dev$'); do
    buildah_ rmi "${stale}" >/dev/null 2>&1 || true
  done
  log "image ${IMAGE_REPO}:${key}: $(du -h "${out}" | cut -f1) compressed"
  echo "${out}"
}

import_image() {
  local address="${1:-${CLUSTER_DIR}/containerd/containerd.sock}" archive ref
  archive="$(build_image)"
  "$(ctr_path)" --address "${address}" -n k8s.io images import "${archive}" >/dev/null \
    || die "ctr import ${archive} failed"
  # The archive's own key: the tree may have changed since it was built.
  ref="${IMAGE_REPO}:$(basename "${archive}" .tar)"
  log "imported ${ref} into containerd at ${address}"
  echo "${ref}"
}

image_ref() { echo "${IMAGE_REPO}:$(image_hash)"; }

case "${1:-}" in
  build) build_image ;;
  ref) image_ref ;;
  import) import_image "${2:-}" ;;
  *) die "usage: $0 build | ref | import [<containerd-address>]" ;;
esac
