#!/usr/bin/env bash
# `make run`: run the operator against $KUBECONFIG's cluster when one is given;
# otherwise bring up the local cluster (node level), apply crds/ and use it.
set -euo pipefail
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if [[ -n "${KUBECONFIG:-}" ]]; then
  log "using KUBECONFIG=${KUBECONFIG}"
else
  "${HACK_DIR}/cluster.sh" up node
  KUBECONFIG="$("${HACK_DIR}/cluster.sh" kubeconfig)"
  export KUBECONFIG
  kubectl="$(bin_dir kubernetes)/kubectl"
  shopt -s nullglob
  crd_args=()
  for f in "${REPO_DIR}"/crds/*.yaml; do crd_args+=(-f "$f"); done
  if ((${#crd_args[@]})); then
    "${kubectl}" apply --server-side --force-conflicts "${crd_args[@]}"
    "${kubectl}" wait --for=condition=Established --timeout=60s "${crd_args[@]}"
  fi
  log "local cluster ready: export KUBECONFIG=${KUBECONFIG}"
fi
cd "${REPO_DIR}"
exec uv run initpipeline run "$@"
