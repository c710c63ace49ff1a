# syntax=docker/dockerfile:1
# Firewatch application image: one image, one process per container; the compose service
# picks the subcommand (`db upgrade`, `ingest`, `simulate`, ...). See docs/deployment.md.
#
# PostgreSQL/TimescaleDB and Mosquitto are separate compose services. The `pgserver`
# dependency (embedded PostgreSQL for `firewatch up`) is installed but never started here:
# every service sets FIREWATCH_DATABASE_URL.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: wheels for the project and all its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README* (not README.md): the wildcard keeps the build working while the file is absent.
COPY pyproject.toml README* ./
COPY firewatch ./firewatch
RUN pip wheel --wheel-dir /wheels .

# --- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FIREWATCH_DATA_DIR=/var/lib/firewatch

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels firewatch \
 && groupadd --system --gid 10001 firewatch \
 && useradd --system --uid 10001 --gid firewatch --home-dir /var/lib/firewatch \
        --create-home --shell /usr/sbin/nologin firewatch

USER 10001:10001
WORKDIR /var/lib/firewatch

# Exec form: firewatch is PID 1 and receives SIGTERM directly (ingest flushes, acks and
# keeps its broker session on the way out).
ENTRYPOINT ["firewatch"]
CMD ["--help"]
