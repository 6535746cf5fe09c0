# syntax=docker/dockerfile:1
# One image for all four PMO services: `pmo run registry|monitoring|allocation|notifications`,
# plus the one-shot `pmo topics create` / `pmo migrate` used by compose's init and the k8s Job.

# Exact tag (no floating "3.11-slim") so rebuilds are reproducible; bump deliberately.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
# builder: resolve nothing, install exactly what uv.lock says into /opt/venv
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# uv pinned to the version that writes this repository's uv.lock (from PyPI, like everything else).
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11

WORKDIR /src

# Dependencies first, in their own layer: editing the code does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself, as a regular (non-editable) install so /src is not needed at run time.
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY pmo ./pmo
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---------------------------------------------------------------------------------------------
# runtime: the same slim base, the venv, a non-root user; no compilers, no uv, no sources
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="pmo-backbone" \
      org.opencontainers.image.description="Event-driven PMO backend: registry, monitoring, allocation, notifications" \
      org.opencontainers.image.licenses="Apache-2.0"

# Fixed numeric ids: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 pmo \
    && useradd --system --uid 10001 --gid pmo --home-dir /home/pmo --create-home \
       --shell /usr/sbin/nologin pmo

# Owned by root and not writable by the app user: the code cannot be modified at run time.
COPY --from=builder /opt/venv /opt/venv

# PMO_HTTP_HOST/PORT: a container must listen on all interfaces; 8080 for every service, the
# orchestrator maps it. PMO_DATA_DIR points at /tmp, the only writable place with a read-only root.
# Bytecode was compiled at build time, so nothing tries to write .pyc files next to the code.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PMO_HTTP_HOST=0.0.0.0 \
    PMO_HTTP_PORT=8080 \
    PMO_LOG_JSON=true \
    PMO_DATA_DIR=/tmp/pmo

WORKDIR /home/pmo
USER 10001:10001
EXPOSE 8080

# SIGTERM lets a consumer finish its in-flight batch (it stops within 30 s); orchestrators must
# wait longer than that (compose stop_grace_period / k8s terminationGracePeriodSeconds: 45 s).
STOPSIGNAL SIGTERM

# No HEALTHCHECK here: compose and Kubernetes define their own probes (/readyz, /livez), and the
# one-shot commands (migrate, topics create) must not inherit one.
ENTRYPOINT ["pmo"]
CMD ["run", "registry"]
