# syntax=docker/dockerfile:1
# federation-operator image: one image, two commands (`federation-operator run` / `serve`).
#
# The base is pinned by exact tag here because our build machines cannot pull images; pin it by
# digest too when cutting a release (python:3.11.14-slim-bookworm@sha256:<digest>), so that a
# rebuilt tag cannot change what ships.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: a wheel of this repository, installed with the locked runtime dependencies -------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, from the lock alone, so that a code change reuses this layer.
COPY requirements/runtime.lock requirements/runtime.lock
# --no-deps: the lock is complete (pip check below proves it); pip enforces hashes if it has them.
RUN /opt/venv/bin/pip install --no-deps -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
 && /opt/venv/bin/pip check

# --- runtime: the venv only, no build tools, no shell needed at run time ----------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="federation-operator" \
      org.opencontainers.image.description="Bilateral mTLS + shared-secret federation operator and server" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# The chart runs it with a read-only root filesystem and an emptyDir on /tmp; 65532 is the
# conventional "nonroot" uid, matching the chart's securityContext.
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["federation-operator"]
CMD ["--help"]
