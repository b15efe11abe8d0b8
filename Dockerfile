# finrl: SPY RL trading image (training, backtests, TensorBoard, paper trading).
#
#   make wheelhouse && docker compose build        # CPU torch from ./wheelhouse
#   docker build --build-arg TORCH_INDEX_URL=<pytorch cpu index> -t finrl .
#   docker build --build-arg TORCH_FLAVOUR=cuda -t finrl:cuda .   # torch + CUDA wheels from the lock
#
# builder: Poetry (from pip) exports poetry.lock to a hash-pinned requirements file; pip installs it
#          into the in-project venv /app/.venv, torch first and separately (CPU build by default).
# runtime: the same base image, the venv, a non-root user `finrl`, and the artifact folders owned
#          by it, so that fresh named volumes mounted on them are writable.
# No `# syntax=` line on purpose: the built-in BuildKit frontend handles cache/bind mounts.

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder

# cpu: torch from ./wheelhouse (make wheelhouse) or TORCH_INDEX_URL; cuda: torch and nvidia-* from the lock
ARG TORCH_FLAVOUR=cpu
ARG TORCH_INDEX_URL=""
ARG POETRY_VERSION=2.5.1
ARG POETRY_EXPORT_VERSION=1.10.1

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-euc"]
WORKDIR /app

RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip install "poetry==${POETRY_VERSION}" "poetry-plugin-export==${POETRY_EXPORT_VERSION}" \
    && python -m venv /app/.venv

COPY pyproject.toml poetry.lock ./
COPY tools/export_requirements.py tools/

# the lock as hash-pinned requirements files (main group; dev group for the test stage);
# CPU builds leave torch and the CUDA wheels out
RUN mkdir -p /build \
    && poetry export --format requirements.txt --output /build/requirements.export.txt \
    && poetry export --format requirements.txt --only dev --output /build/requirements-dev.txt \
    && if [ "$TORCH_FLAVOUR" = cuda ]; then \
        cp /build/requirements.export.txt /build/requirements.txt; \
    else \
        python tools/export_requirements.py strip-torch /build/requirements.export.txt /build/requirements.txt; \
    fi

# torch first, on its own: a wheel in ./wheelhouse wins, else TORCH_INDEX_URL (PyTorch's CPU index)
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    --mount=type=cache,target=/root/.cache/pip \
    torch_version="$(python tools/export_requirements.py torch-version poetry.lock)"; \
    if [ "$TORCH_FLAVOUR" = cuda ]; then \
        echo "torch ${torch_version} (CUDA) comes with the locked requirements"; \
    elif compgen -G "/wheelhouse/torch-${torch_version}[+-]*.whl" >/dev/null; then \
        /app/.venv/bin/pip install --no-deps --no-index --find-links /wheelhouse "torch==${torch_version}"; \
    elif [ -n "$TORCH_INDEX_URL" ]; then \
        /app/.venv/bin/pip install --no-deps --index-url "$TORCH_INDEX_URL" "torch==${torch_version}"; \
    else \
        echo "error: CPU torch ${torch_version} needs a wheel in ./wheelhouse (make wheelhouse)," \
            "--build-arg TORCH_INDEX_URL=<PyTorch CPU index>, or --build-arg TORCH_FLAVOUR=cuda" >&2; \
        exit 1; \
    fi; \
    # C++ headers and test binaries: only for building extensions, not for running (about 150 MB)
    rm -rf /app/.venv/lib/python3*/site-packages/torch/include /app/.venv/lib/python3*/site-packages/torch/test

RUN --mount=type=cache,target=/root/.cache/pip \
    /app/.venv/bin/pip install --no-deps --require-hashes -r /build/requirements.txt

# the package itself as a wheel, installed in the runtime stage: a code or README change leaves
# the large dependency layers alone
COPY README.md ./
COPY finrl ./finrl
RUN poetry build --format wheel --output /build/dist


FROM ${BASE_IMAGE} AS runtime

ARG FINRL_UID=1000
ARG FINRL_GID=1000

LABEL org.opencontainers.image.title="finrl" \
      org.opencontainers.image.description="Reinforcement-learning trading for SPY: training, backtests, paper trading" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    HOME=/home/finrl \
    MPLCONFIGDIR=/tmp \
    MPLBACKEND=Agg \
    XDG_CACHE_HOME=/tmp

RUN groupadd --system --gid "${FINRL_GID}" finrl \
    && useradd --system --uid "${FINRL_UID}" --gid finrl --create-home --home-dir /home/finrl \
        --shell /usr/sbin/nologin finrl \
    && mkdir -p /app/trained_models /app/tensorboard_logs /app/datasets /app/results /app/logs \
    && chown finrl:finrl /app/trained_models /app/tensorboard_logs /app/datasets /app/results /app/logs

WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /build/dist /build/dist
RUN /app/.venv/bin/pip install --no-cache-dir --no-deps --no-index /build/dist/finrl-*.whl \
    && rm -rf /build \
    && /app/.venv/bin/pip check \
    && /app/.venv/bin/python -c "import finrl, torch; print('finrl', finrl.__version__, 'torch', torch.__version__)"

USER ${FINRL_UID}:${FINRL_GID}

# tensorboard --port 6006; paper trading metrics on SPY_METRICS_PORT (9108)
EXPOSE 6006 9108

HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import finrl"]

CMD ["python", "-m", "finrl.applications.spy_rl_trading.example_training"]


# test: the runtime image plus the locked dev tools and the unit tests
#   docker build --target test -t finrl:test . && docker run --rm finrl:test
FROM runtime AS test
USER 0
COPY --from=builder /build/requirements-dev.txt /build/requirements-dev.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /app/.venv/bin/pip install --no-deps --require-hashes -r /build/requirements-dev.txt \
    && /app/.venv/bin/pip check
COPY pyproject.toml ./
COPY unit_tests ./unit_tests
USER ${FINRL_UID}:${FINRL_GID}
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "unit and not docker", "unit_tests"]


# the default target: the runtime image
FROM runtime AS app
