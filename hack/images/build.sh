#!/usr/bin/env bash
# Build the local cluster's images as OCI archives (no Docker engine, no
# registry) and import them into containerd's k8s.io namespace.
#
#   hack/images/build.sh build                 write archives to the cache, print their dir
#   hack/images/build.sh import <ctr-address>  build if needed, then import every archive
#   hack/images/build.sh list                  print the image names
#
# Archives are reproducible and cached under ~/.cache/initpipeline/images/<hash>,
# keyed by this script, oci.py, pause.c and the busybox binary.
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

IMAGES_DIR="${HACK_DIR}/images"
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"   # Debian's busybox-static
# One image, two names: the one the tests/examples use, and the musl tag the
# operator defaults to (upstream's musl variant is the statically linked one).
BUSYBOX_IMAGE=docker.io/library/busybox:1.36.1
BUSYBOX_MUSL_IMAGE=docker.io/library/busybox:1.36.1-musl
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
HTTPD_IMAGE=localhost/initpipeline/httpd:1
ASSETS_IMAGE=localhost/initpipeline/assets:1
ASSETS_SCRATCH_IMAGE=localhost/initpipeline/assets-scratch:1
ALL_IMAGES=("${BUSYBOX_IMAGE}" "${BUSYBOX_MUSL_IMAGE}" "${PAUSE_IMAGE}" "${HTTPD_IMAGE}" "${ASSETS_IMAGE}" "${ASSETS_SCRATCH_IMAGE}")

images_hash() {
  [[ -x "${BUSYBOX_BIN}" ]] || die "${BUSYBOX_BIN} missing: apt-get install busybox-static"
  file -L "${BUSYBOX_BIN}" 2>/dev/null | grep -q 'statically linked' \
    || die "${BUSYBOX_BIN} is not a static binary (install busybox-static, not busybox)"
  cat "${IMAGES_DIR}/build.sh" "${IMAGES_DIR}/oci.py" "${IMAGES_DIR}/pause.c" "${BUSYBOX_BIN}" \
    | sha256sum | cut -c1-16
}

# busybox_rootfs <dir>: static busybox plus one symlink per applet in /bin.
busybox_rootfs() {
  local root="$1" applet
  mkdir -p "${root}/bin" "${root}/etc" "${root}/tmp" "${root}/root" "${root}/home/nonroot"
  chmod 1777 "${root}/tmp"
  install -m 0755 "${BUSYBOX_BIN}" "${root}/bin/busybox"
  for applet in $("${BUSYBOX_BIN}" --list); do
    [[ "${applet}" == busybox ]] || ln -sf busybox "${root}/bin/${applet}"
  done
  # Numeric uid 65532 is the conventional "nonroot" user of distroless images.
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "${root}/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n' > "${root}/etc/group"
}

dist_rootfs() {
  local root="$1"
  mkdir -p "${root}/dist/css"
  cat > "${root}/dist/index.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>InitPipeline</title>
<link rel="stylesheet" href="css/site.css"></head>
<body><h1>InitPipeline assets</h1></body></html>
HTML
  printf 'body { font-family: sans-serif; }\nh1 { color: #326ce5; }\n' > "${root}/dist/css/site.css"
}

build_images() {
  local out hash work oci
  hash="$(images_hash)"
  out="${CACHE_ROOT}/images/${hash}"
  if [[ -f "${out}/.complete" ]]; then echo "${out}"; return; fi
  work="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: work is local
  trap "rm -rf '${work}'" RETURN
  oci=(python3 "${IMAGES_DIR}/oci.py")
  mkdir -p "${out}.tmp"

  busybox_rootfs "${work}/busybox"
  "${oci[@]}" --name "${BUSYBOX_IMAGE}" --name "${BUSYBOX_MUSL_IMAGE}" --out "${out}.tmp/busybox.tar" --layer "${work}/busybox" \
    --cmd '["sh"]' >&2

  mkdir -p "${work}/pause"
  gcc -static -Os -s -Wall -Wextra -Werror -o "${work}/pause/pause" "${IMAGES_DIR}/pause.c"
  "${oci[@]}" --name "${PAUSE_IMAGE}" --out "${out}.tmp/pause.tar" --layer "${work}/pause" \
    --entrypoint '["/pause"]' --user 65535:65535 >&2

  mkdir -p "${work}/www/www"
  printf '<!doctype html><title>initpipeline httpd</title><p>served by busybox httpd</p>\n' \
    > "${work}/www/www/index.html"
  "${oci[@]}" --name "${HTTPD_IMAGE}" --out "${out}.tmp/httpd.tar" \
    --layer "${work}/busybox" --layer "${work}/www" \
    --entrypoint '["httpd","-f","-p","8080","-h","/www"]' --user 65532:65532 \
    --workdir /www --expose 8080/tcp >&2

  dist_rootfs "${work}/dist"
  "${oci[@]}" --name "${ASSETS_IMAGE}" --out "${out}.tmp/assets.tar" \
    --layer "${work}/busybox" --layer "${work}/dist" --cmd '["sh"]' --user 65532:65532 >&2
  # No shell, no binaries: only the files. Pods use it as a volume/copy source.
  "${oci[@]}" --name "${ASSETS_SCRATCH_IMAGE}" --out "${out}.tmp/assets-scratch.tar" \
    --layer "${work}/dist" --user 65532:65532 >&2

  date -u +%FT%TZ > "${out}.tmp/.complete"
  rm -rf "${out}"; mv "${out}.tmp" "${out}"
  # Archives of earlier recipes are of no further use.
  find "${CACHE_ROOT}/images" -mindepth 1 -maxdepth 1 -type d ! -name "${hash}" ! -name '*.tmp' \
    -exec rm -rf {} +
  echo "${out}"
}

import_images() {
  local address="$1" dir tar
  dir="$(build_images)"
  for tar in "${dir}"/*.tar; do
    # Re-importing identical content only re-points the name: idempotent.
    "$(ctr_path)" --address "${address}" -n k8s.io images import "${tar}" >/dev/null \
      || die "ctr import ${tar} failed"
  done
  log "imported ${#ALL_IMAGES[@]} image names from ${dir}"
}

case "${1:-}" in
  build) build_images ;;
  import) [[ -n "${2:-}" ]] || die "usage: $0 import <containerd-address>"; import_images "$2" ;;
  list) printf '%s\n' "${ALL_IMAGES[@]}" ;;
  *) die "usage: $0 build | import <containerd-address> | list" ;;
esac
