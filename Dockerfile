# The operator image: `initpipeline run` as user 65532 on Python 3.11 (Debian bookworm).
#   docker build -t REGISTRY/initpipeline:TAG .
# Dependencies come from uv.lock (exact versions and hashes); no dev tools, pip or uv in the
# runtime stage. PYTHON_IMAGE may be any Debian-based image with python3 and its venv module
# (`make image` builds one locally with mmdebstrap, since no registry is reachable there).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Only for builds behind a TLS-intercepting proxy: the CA bundle to trust (mounted by the builder).
ARG SSL_CERT_FILE
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/initpipeline
# uv in a venv of its own: Debian's python3 forbids installing into the system (PEP 668).
RUN python3 -m venv /opt/uv \
 && PIP_CERT="${SSL_CERT_FILE:-}" /opt/uv/bin/pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
COPY operator/ operator/
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="initpipeline" \
      org.opencontainers.image.description="Kubernetes operator: InitPipeline to Pods with ordered init containers and native sidecars" \
      org.opencontainers.image.licenses="Apache-2.0"
# USER: Kopf asks getpass for a user name, and uid 65532 (or any uid a platform such as
# OpenShift assigns) has no passwd entry: without it the operator exits at start-up.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    USER=initpipeline \
    PATH=/opt/initpipeline/bin:$PATH
COPY --from=build /opt/initpipeline /opt/initpipeline
# Numeric, so that the kubelet can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
# 8080: liveness (INITPIPELINE_LIVENESS_ENDPOINT), 9090: metrics (INITPIPELINE_METRICS_PORT).
EXPOSE 8080 9090
ENTRYPOINT ["initpipeline"]
CMD ["run"]
