# syntax=docker/dockerfile:1
# One image for every ReelRank process: the API (default command), the pipeline
# (`reelrank run`), the Prefect worker, and the MLflow / Prefect servers, so client
# and server versions always come from the same lock file.
#
#   docker build -t reelrank .
#   docker run --rm -p 8000:8000 reelrank                  # API
#   docker run --rm reelrank reelrank run --dataset synthetic

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# builder: a virtualenv with the locked dependencies, then the project itself.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Compilers only in this stage, for any dependency without a wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv && pip install --upgrade "pip>=24"

WORKDIR /src

# Dependency layer: rebuilt only when the lock file or the dependency list changes.
# Installs the runtime dependencies of pyproject.toml and its ray extra (the ray-head and
# ray-worker services run this image), not the dev extras, each pinned by requirements.lock.
COPY requirements.lock pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['ray']; open('/tmp/runtime-requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
    && pip install -c requirements.lock -r /tmp/runtime-requirements.txt

# Project layer: the code changes often, the dependencies above stay cached.
COPY README.md ./
COPY reelrank ./reelrank
COPY pipelines ./pipelines
COPY serving ./serving
RUN pip install --no-deps -c requirements.lock . \
    && pip check

# ---------------------------------------------------------------------------
# runtime: slim base, the venv, a non-root user.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="reelrank" \
      org.opencontainers.image.description="ReelRank recommender: API, pipeline and Prefect worker" \
      org.opencontainers.image.licenses="MIT"

# libgomp1: OpenMP runtime that the LightGBM and implicit wheels link against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 reelrank \
    && useradd --system --uid 10001 --gid reelrank --create-home --home-dir /home/reelrank \
       --shell /usr/sbin/nologin reelrank

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The Feast feature repository (feature_store.yaml + definitions) is read at run time.
COPY --chown=reelrank:reelrank feature_repo ./feature_repo

# Mount points of the named volumes; created here so the volumes start owned by the
# non-root user (Docker copies the image's ownership into a new named volume).
RUN mkdir -p /data /mlartifacts && chown reelrank:reelrank /data /mlartifacts

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/reelrank \
    REELRANK_DATA_DIR=/data \
    REELRANK_API_HOST=0.0.0.0 \
    REELRANK_API_PORT=8000

USER reelrank

EXPOSE 8000

# Probes the API (the default command). Compose overrides it for the other commands.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('REELRANK_API_PORT', '8000'), timeout=4)"]

CMD ["reelrank", "serve", "--host", "0.0.0.0", "--port", "8000"]
