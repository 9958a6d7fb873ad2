# The operator image: `initpipeline run` as user 65532 on python:3.11-slim.
#   docker build -t REGISTRY/initpipeline:TAG .
# Dependencies come from uv.lock (exact versions and hashes); no dev tools in the image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/initpipeline
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator/ operator/
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="initpipeline" \
      org.opencontainers.image.description="Kubernetes operator: InitPipeline to Pods with ordered init containers and native sidecars" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/initpipeline/bin:$PATH
COPY --from=build /opt/initpipeline /opt/initpipeline
# Numeric, so that the kubelet can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
# 8080: liveness (INITPIPELINE_LIVENESS_ENDPOINT), 9090: metrics (INITPIPELINE_METRICS_PORT).
EXPOSE 8080 9090
ENTRYPOINT ["initpipeline"]
CMD ["run"]
