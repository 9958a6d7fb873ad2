# InitPipeline developer entry points. `make` (or `make help`) lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CLUSTER := hack/cluster.sh
# Level of `make cluster-up`: node (Pods run) or control-plane (API server only).
LEVEL ?= node
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Local cluster (hack/, see hack/README.md)

.PHONY: cluster-build
cluster-build: ## Build (or reuse) Kubernetes, etcd and CoreDNS binaries from the pinned Go modules
	hack/build.sh

.PHONY: cluster-images
cluster-images: ## Build the local OCI images (busybox, pause, httpd, assets)
	hack/images/build.sh build

.PHONY: image
image: ## Build the operator image (Dockerfile, buildah) and import it into the local cluster if it runs
	hack/images/operator.sh build
	if $(CLUSTER) status >/dev/null 2>&1; then hack/images/operator.sh import; fi

.PHONY: cluster-up
cluster-up: cluster-build ## Start the local cluster (LEVEL=node|control-plane), or complete a running one
	$(CLUSTER) up $(LEVEL)

.PHONY: cluster-down
cluster-down: ## Stop every cluster process by PID and remove all its state
	$(CLUSTER) down

.PHONY: cluster-restart
cluster-restart: ## Restart each running component in turn with the current settings
	$(CLUSTER) restart

.PHONY: cluster-status
cluster-status: ## Show the cluster's components, level and nodes
	$(CLUSTER) status

.PHONY: cluster-kubeconfig
cluster-kubeconfig: ## Print the local cluster's kubeconfig path
	@$(CLUSTER) kubeconfig

##@ Helm chart and API docs

HELM_BIN = $$(hack/build.sh --print helm | cut -d' ' -f2)/helm

.PHONY: chart-crds
chart-crds: ## Copy crds/*.yaml into charts/initpipeline/crds/ (the chart ships the same bytes)
	rm -f charts/initpipeline/crds/*.yaml
	cp crds/*.yaml charts/initpipeline/crds/

.PHONY: chart-lint
chart-lint: ## helm lint --strict the chart (builds helm from its Go module if needed)
	hack/build.sh helm
	$(HELM_BIN) lint --strict charts/initpipeline

.PHONY: docs
docs: ## Regenerate the field reference in docs/api.md from the CRD
	uv run python hack/gen-api-docs.py

##@ Tests and running

.PHONY: lint
lint: ## ruff, ruff format --check, mypy --strict, hadolint, shellcheck (also of every generated script)
	uv sync --quiet
	uv run ruff check operator tests bench
	uv run ruff format --check operator tests bench
	uv run mypy
	uv run hadolint Dockerfile
	shellcheck -x hack/*.sh hack/lib/*.sh hack/images/*.sh .ci/run
	uv run pytest -q -p no:cacheprovider tests/unit/test_script_lint.py

.PHONY: test
test: lint cluster-build ## Lint, then every test tier on the local cluster (node level), then test-deployment
	@# Bring up (or reuse) the node level unless an explicit KUBECONFIG is given.
	if [[ -z "$${KUBECONFIG:-}" ]]; then $(CLUSTER) up node; fi
	uv run pytest tests/ $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-deployment

# The version matrix: the oldest supported minor (its pin: hack/build/kubernetes-$(MATRIX_KUBERNETES)).
MATRIX_KUBERNETES ?= 1.35
MATRIX_DIR ?= /tmp/initpipeline-cluster-$(MATRIX_KUBERNETES)
# Its control-plane cluster runs beside the default one (other ports, dir and context).
MATRIX_ENV = INITPIPELINE_KUBERNETES=$(MATRIX_KUBERNETES) INITPIPELINE_CLUSTER_DIR=$(MATRIX_DIR) \
	INITPIPELINE_CONTEXT=initpipeline-matrix INITPIPELINE_API_PORT=7443 INITPIPELINE_ETCD_PORT=3379 \
	INITPIPELINE_CONTROLLER_MANAGER_PORT=11257 INITPIPELINE_SCHEDULER_PORT=11259 \
	KUBECONFIG=$(MATRIX_DIR)/kubeconfig

.PHONY: test-matrix
test-matrix: test-matrix-integration test-matrix-e2e ## Integration, then e2e tier on the oldest supported minor (MATRIX_KUBERNETES=1.35)

.PHONY: test-matrix-integration
test-matrix-integration: ## Integration tier on a 1.35 control plane beside the default cluster
	INITPIPELINE_KUBERNETES=$(MATRIX_KUBERNETES) hack/build.sh kubernetes
	$(MATRIX_ENV) $(CLUSTER) up control-plane
	$(MATRIX_ENV) INITPIPELINE_CLUSTER_LEVEL=control-plane uv run pytest -m integration tests/ $(PYTEST_ARGS) \
		|| { rc=$$?; $(MATRIX_ENV) $(CLUSTER) down; exit $$rc; }
	$(MATRIX_ENV) $(CLUSTER) down

.PHONY: test-matrix-e2e
test-matrix-e2e: ## e2e tier on a 1.35 node (stops the default cluster: one node level per machine)
	INITPIPELINE_KUBERNETES=$(MATRIX_KUBERNETES) hack/build.sh kubernetes
	@# The bridge, kubelet and CoreDNS addresses are fixed: the default cluster goes down first,
	@# and the matrix's node cluster is removed at the end (make test brings the default back).
	$(CLUSTER) down
	INITPIPELINE_KUBERNETES=$(MATRIX_KUBERNETES) $(CLUSTER) up node
	INITPIPELINE_KUBERNETES=$(MATRIX_KUBERNETES) uv run pytest -m e2e tests/ $(PYTEST_ARGS) \
		|| { rc=$$?; $(CLUSTER) down; exit $$rc; }
	$(CLUSTER) down

.PHONY: test-deployment
test-deployment: ## The operator's image in the cluster: deploy/ (2 replicas, failover), Helm, incluster seeds
	@# A session of its own: the deployed operator watches every namespace. Exit 5 (no test
	@# selected, e.g. by PYTEST_ARGS) is not a failure here.
	INITPIPELINE_TEST_OPERATOR=deployment uv run pytest tests/ $(PYTEST_ARGS) || [[ $$? == 5 ]]

.PHONY: test-fuzz
test-fuzz: cluster-build ## The fuzz tier alone: 1000 generated InitPipelines, one operator (tests/fuzz)
	if [[ -z "$${KUBECONFIG:-}" ]]; then $(CLUSTER) up control-plane; fi
	uv run pytest -m fuzz tests/fuzz $(PYTEST_ARGS)

.PHONY: test-chaos
test-chaos: cluster-build ## The fault tier alone: operator SIGKILLs, API-server/etcd restarts, watch gaps, 429s (tests/chaos)
	if [[ -z "$${KUBECONFIG:-}" ]]; then $(CLUSTER) up node; fi
	uv run pytest -m chaos tests/chaos $(PYTEST_ARGS)

.PHONY: bench
bench: ## Benchmarks against same-run baselines (BENCH_SCENARIOS=a,b,c,d,f,g BENCH_SIZES=1,100,1000); tables in bench/results/
	uv run python -m bench

.PHONY: run
run: ## Run the operator against KUBECONFIG if set, else against the local cluster (node level)
	hack/run-operator.sh
