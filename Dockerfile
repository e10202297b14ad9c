# syntax=docker/dockerfile:1
# The operator's image: `timeout-budget run` as a non-root user, with the package and its
# runtime dependencies only (no dev tools, no compiler, no build cache).
#
#   docker build -t timeout-budget-operator:0.1.0 .
#
# tests/integration/test_docker_image.py runs the build stage's COPY and RUN steps in a
# clean venv (no Docker engine there) and checks what the image would run.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: install the package into a self-contained venv --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# -- runtime: the venv, a non-root user, nothing else ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid ${UID} operator \
 && useradd --system --uid ${UID} --gid ${UID} --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin operator
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TBO_METRICS_ADDRESS=0.0.0.0 \
    TBO_METRICS_PORT=9090
USER ${UID}:${UID}
EXPOSE 9090 8080
ENTRYPOINT ["timeout-budget", "run"]
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
LABEL org.opencontainers.image.title="timeout-budget-operator" \
      org.opencontainers.image.description="Keeps every HTTP route inside its Cloudflare timeout budget" \
      org.opencontainers.image.licenses="Apache-2.0"
