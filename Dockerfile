# Watan node image.
#
#   docker build -t watan .
#   docker run -d --name watan -p 8470:8470 -v watan-data:/data watan
#
# How an NGO runs it (compose, PostgreSQL, backups, upgrades, TLS): docs/deploy.md.
# Smoke test without a Docker engine: tools/container_smoke.sh.
#
# BASE_IMAGE must be a Debian-like image with Python 3.11+ whose python3 can make a
# venv (the official python:*-slim images can; on plain Debian install python3-venv).
# The default pins the Python minor version CI tests (3.11) and the Debian release
# (bookworm), so a rebuild does not silently move to another Python or libc; pin it
# further by digest for reproducible releases (BASE_IMAGE=python:3.11-slim-bookworm@sha256:...).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build stage: a self-contained venv in /opt/watan --------------------------------
FROM ${BASE_IMAGE} AS build

# Extra pip options for offline or mirrored builds, e.g.
#   --build-arg PIP_INSTALL_ARGS="--no-index --find-links=/wheels" (with the wheels
# bind-mounted at build time, as tools/container_smoke.sh does). Empty: plain PyPI.
ARG PIP_INSTALL_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what `pip install .` needs (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY node ./node
COPY admin_ui ./admin_ui

# The venv's pip and setuptools are build tools: drop them so the final stage carries
# only Watan and its dependencies (with their byte-compiled .pyc files).
# hadolint ignore=DL3042,SC2086
RUN python3 -m venv /opt/watan \
 && /opt/watan/bin/pip install ${PIP_INSTALL_ARGS} /src \
 && /opt/watan/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/watan/bin/watan --version

# ---- final stage: base image + the venv, nothing else ------------------------------
FROM ${BASE_IMAGE}

ARG WATAN_UID=10001
ARG WATAN_GID=10001

LABEL org.opencontainers.image.title="watan" \
      org.opencontainers.image.description="Watan federated NGO node" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# libsodium23: the system libsodium that pysodium loads for ristretto255 (pseudonyms,
# SPEC §13); PyNaCl carries its own copy but does not expose those functions.
# hadolint ignore=DL3008
# (Installed only where the base lacks it, so an offline build on a base that has it works.)
RUN if ! dpkg-query -W -f='${Status}' libsodium23 2>/dev/null | grep -q 'ok installed'; then \
        apt-get update \
     && apt-get install -y --no-install-recommends libsodium23 \
     && rm -rf /var/lib/apt/lists/*; \
    fi

# A fixed, non-root uid/gid, so a /data volume (or a host directory) keeps its owner
# across image upgrades. /data is the node's directory: 0700 like `watan up` makes it.
RUN groupadd --gid "${WATAN_GID}" watan \
 && useradd --uid "${WATAN_UID}" --gid watan --no-log-init --no-create-home \
            --home-dir /data --shell /usr/sbin/nologin watan \
 && mkdir -p /data \
 && chown "${WATAN_UID}:${WATAN_GID}" /data \
 && chmod 0700 /data

COPY --from=build /opt/watan /opt/watan

ENV PATH=/opt/watan/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER ${WATAN_UID}:${WATAN_GID}
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8470

# No curl in slim images: the venv's Python asks /healthz (200, or 503 when the
# database is unreachable; urlopen raises on anything but 2xx). It assumes the default
# port: if you pass another --port, override the healthcheck too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/watan/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8470/healthz', timeout=4)"]

# Inside the container the node must listen on all interfaces for `-p` to reach it;
# publish the port on the host's 127.0.0.1 behind a TLS proxy (docs/deploy.md).
# Arguments after the image name replace CMD: `docker run IMAGE status --data /data`.
ENTRYPOINT ["/opt/watan/bin/watan"]
CMD ["up", "--data", "/data", "--host", "0.0.0.0", "--port", "8470"]
