# The operator's image, for people who have Docker (or buildah, podman):
#
#     docker build -t component-operator:0.1.0 .
#
# It is the image testenv/images/build.py makes without Docker (the one the testenv and the
# e2e tests run): Debian bookworm's python3 with the operator in the virtualenv /opt/venv,
# the static data-plane agent at /usr/local/bin/component-operator-agent (job pods' init
# container runs it from this image), user 65532:65532, entrypoint
# /opt/venv/bin/component-operator, cmd "run"; it runs with a read-only root filesystem
# (only /tmp needs to be writable).
#
# BASE_IMAGE is debian:bookworm-slim rather than python:3.11-slim-bookworm: the operator then
# runs on Debian's python3 (security updates from Debian), like the project's own image, and
# not on a second, separately built interpreter. Any Debian bookworm image works; what it
# lacks (python3, python3-venv, ca-certificates; binutils and libpython3.11 for the build
# stage) is installed with apt-get. scripts/build_dockerfile.sh builds this file with
# buildah from the project's base image (component-operator-base, made by build.py:
# everything is there already, nothing is installed), without Docker and without a registry.
#
# Build arguments: BASE_IMAGE; VERSION (the label; keep it equal to pyproject.toml's
# version, a unit test checks); PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST,
# PIP_CERT (a CA bundle, e.g. mounted with `buildah bud -v`) for a package mirror or proxy.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8
# PyInstaller and staticx (the agent) need objdump, objcopy, strip and libpython3.11.so.1.0.
RUN set -eu; missing=""; \
    for package in python3 python3-venv ca-certificates binutils libpython3.11; do \
      dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The operator: its dependencies pinned by pyproject.toml; pip and setuptools are not kept
# (nothing is installed at run time); bytecode compiled hash-based and unchecked, so it stays
# valid whatever the files' times.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile /src \
 && /opt/venv/bin/component-operator --version
# The static agent, built by the script (and with the pins) the testenv uses; it reads the
# versions of the agent's runtime dependencies from the project's .venv, here /opt/venv.
COPY testenv/scripts/build_agent.sh testenv/scripts/build_agent.sh
RUN ln -s /opt/venv /src/.venv \
 && COMPONENT_OPERATOR_CACHE=/tmp/cache testenv/scripts/build_agent.sh > /tmp/agent-path \
 && install -D -m 0755 "$(tail -n 1 /tmp/agent-path)" /out/component-operator-agent \
 && rm -rf /tmp/cache /tmp/agent-path /src/.venv \
 && /out/component-operator-agent version
RUN /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
# python3 (the interpreter the virtualenv was made with: the same base, the same version),
# and the user 65532 by name, as in the project's image.
RUN set -eu; missing=""; \
    for package in python3 python3-venv ca-certificates; do \
      dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/apt/*.bin; \
    fi; \
    grep -q '^nonroot:' /etc/passwd || echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >> /etc/passwd; \
    grep -q '^nonroot:' /etc/group || echo 'nonroot:x:65532:' >> /etc/group; \
    chmod 1777 /tmp
COPY --from=build /opt/venv /opt/venv
COPY --from=build /out/component-operator-agent /usr/local/bin/component-operator-agent
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
LABEL org.opencontainers.image.title="component-operator" \
      org.opencontainers.image.description="component-operator: the Kubernetes operator (kopf) and its static data-plane agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="component-operator Dockerfile"
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/opt/venv/bin/component-operator"]
CMD ["run"]
