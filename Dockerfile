# finrl: SPY RL trading images, two targets of one Dockerfile.
#
#   app (default)  finrl:latest            training, tuning and TensorBoard: the package with its
#                                          `train` extra (CPU torch, stable-baselines3, TensorBoard)
#                                          and its `tune` extra (Optuna, psycopg, plotly)
#   inference      finrl-inference:latest  backtests and paper trading: the package alone, acting
#                                          with the NumPy policy; no torch, stable-baselines3 or TensorBoard
#
#   make wheelhouse && docker compose build                   # both; CPU torch from ./wheelhouse
#   docker build --target inference -t finrl-inference .      # needs no torch wheel
#   docker build --build-arg TORCH_INDEX_URL=<pytorch cpu index> -t finrl .
#   docker build --build-arg TORCH_FLAVOUR=cuda -t finrl-cuda .   # torch + CUDA wheels from the lock (GPU)
#
# requirements       Poetry (from pip) exports poetry.lock to hash-pinned requirements files: main
#                    dependencies (inference), main + `train` and `tune` extras (training), dev group
# inference-builder  the main dependencies in the in-project venv /app/.venv, less their test suites
# builder            that venv plus torch (first, on its own; CPU build by default) and the train and tune extras
# wheel              the package itself as a wheel: a code or README change leaves the dependency
#                    layers alone
# runtime-base       the same base image, a non-root user `finrl` and the artifact folders owned by
#                    it, so that fresh named volumes mounted on them are writable
# inference, runtime runtime-base + a venv + the wheel; test: runtime + dev tools + the unit tests
# The venvs have no pip of their own: the base image's pip installs into them (pip --python).
# No `# syntax=` line on purpose: the built-in BuildKit frontend handles cache/bind mounts.

ARG BASE_IMAGE=python:3.11-slim
ARG FINRL_UID=1000
ARG FINRL_GID=1000

FROM ${BASE_IMAGE} AS requirements

ARG POETRY_VERSION=2.5.1
ARG POETRY_EXPORT_VERSION=1.10.1

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-euc"]
WORKDIR /app

RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip install "poetry==${POETRY_VERSION}" "poetry-plugin-export==${POETRY_EXPORT_VERSION}"

COPY pyproject.toml poetry.lock ./
COPY tools/export_requirements.py tools/

# requirements-inference.txt: the main group alone; requirements.export.txt: with the train and tune extras
# (torch and the CUDA wheels left out of requirements.txt for CPU builds); requirements-dev.txt
RUN mkdir -p /build \
    && poetry export --format requirements.txt --output /build/requirements-inference.txt \
    && poetry export --format requirements.txt --extras train --extras tune --output /build/requirements.export.txt \
    && poetry export --format requirements.txt --only dev --output /build/requirements-dev.txt \
    && python tools/export_requirements.py strip-torch /build/requirements.export.txt /build/requirements-cpu.txt


FROM requirements AS inference-builder

# The locked main dependencies in a venv without pip and setuptools (the base image's pip installs
# into it with --python). Left out, as nothing imports them at run time: test suites (about 100 MB:
# scipy, statsmodels, pandas, numpy) and C/Cython sources and headers (only for building extensions).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv --without-pip /app/.venv \
    && python -m pip --python /app/.venv/bin/python install --no-deps --require-hashes \
        -r /build/requirements-inference.txt \
    && site=$(echo /app/.venv/lib/python3*/site-packages) \
    && find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.pyx' \
        -o -name '*.pxd' -o -name '*.pxi' \) -delete


FROM inference-builder AS builder

ARG TORCH_FLAVOUR=cpu
ARG TORCH_INDEX_URL=""

SHELL ["/bin/bash", "-o", "pipefail", "-euc"]

# cpu: torch from ./wheelhouse (make wheelhouse) or TORCH_INDEX_URL; cuda: torch and nvidia-* from the lock
RUN if [ "$TORCH_FLAVOUR" = cuda ]; then \
        cp /build/requirements.export.txt /build/requirements.txt; \
    else \
        cp /build/requirements-cpu.txt /build/requirements.txt; \
    fi

# torch first, on its own: a wheel in ./wheelhouse for this machine (x86_64, aarch64: a Buildx build for
# both platforms needs both; make docker-buildx fetches them) wins, else TORCH_INDEX_URL (PyTorch's CPU index)
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    --mount=type=cache,target=/root/.cache/pip \
    torch_version="$(python tools/export_requirements.py torch-version poetry.lock)"; \
    arch="$(uname -m)"; \
    if [ "$TORCH_FLAVOUR" = cuda ]; then \
        echo "torch ${torch_version} (CUDA) comes with the locked requirements"; \
    elif compgen -G "/wheelhouse/torch-${torch_version}[+-]*_${arch}.whl" >/dev/null; then \
        python -m pip --python /app/.venv/bin/python install --no-deps --no-index --find-links /wheelhouse \
            "torch==${torch_version}"; \
    elif [ -n "$TORCH_INDEX_URL" ]; then \
        python -m pip --python /app/.venv/bin/python install --no-deps --index-url "$TORCH_INDEX_URL" \
            "torch==${torch_version}"; \
    else \
        echo "error: CPU torch ${torch_version} for ${arch} needs a wheel in ./wheelhouse (make wheelhouse)," \
            "--build-arg TORCH_INDEX_URL=<PyTorch CPU index>, or --build-arg TORCH_FLAVOUR=cuda" >&2; \
        exit 1; \
    fi; \
    # C++ headers and test binaries: only for building extensions, not for running (about 150 MB)
    rm -rf /app/.venv/lib/python3*/site-packages/torch/include /app/.venv/lib/python3*/site-packages/torch/test

# the train and tune extras and what they need (the main dependencies are there already), less test suites
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip --python /app/.venv/bin/python install --no-deps --require-hashes -r /build/requirements.txt \
    && find /app/.venv/lib/python3*/site-packages -mindepth 2 -type d -name tests -prune -exec rm -rf {} +


FROM requirements AS wheel
COPY README.md ./
COPY finrl ./finrl
RUN poetry build --format wheel --output /build/dist


FROM ${BASE_IMAGE} AS runtime-base

ARG FINRL_UID
ARG FINRL_GID

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


# inference: backtests and paper trading (the NumPy policy); no torch, stable-baselines3, TensorBoard
FROM runtime-base AS inference

ARG FINRL_UID
ARG FINRL_GID

LABEL org.opencontainers.image.description="Reinforcement-learning trading for SPY: backtests and paper trading (no torch)"

COPY --from=inference-builder /app/.venv /app/.venv
COPY --from=wheel /build/dist /build/dist
RUN /usr/local/bin/python -m pip --python /app/.venv/bin/python install --no-cache-dir --no-deps --no-index \
        /build/dist/finrl-*.whl \
    && rm -rf /build \
    && /usr/local/bin/python -m pip --python /app/.venv/bin/python check \
    && /app/.venv/bin/python -c "import importlib.util, finrl; \
found = [m for m in ('torch', 'stable_baselines3', 'tensorboard') if importlib.util.find_spec(m)]; \
assert not found, f'training packages in the inference image: {found}'; \
print('finrl', finrl.__version__, 'inference (no torch)')"

USER ${FINRL_UID}:${FINRL_GID}

# paper trading metrics on SPY_METRICS_PORT (9108)
EXPOSE 9108

HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import finrl"]

CMD ["python", "-m", "finrl.applications.spy_rl_trading.example_backtesting"]


# runtime: training and TensorBoard (also runs everything the inference image runs)
FROM runtime-base AS runtime

ARG FINRL_UID
ARG FINRL_GID

COPY --from=builder /app/.venv /app/.venv
COPY --from=wheel /build/dist /build/dist
RUN /usr/local/bin/python -m pip --python /app/.venv/bin/python install --no-cache-dir --no-deps --no-index \
        /build/dist/finrl-*.whl \
    && rm -rf /build \
    && /usr/local/bin/python -m pip --python /app/.venv/bin/python check \
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
ARG FINRL_UID
ARG FINRL_GID
USER 0
COPY --from=requirements /build/requirements-dev.txt /build/requirements-dev.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /usr/local/bin/python -m pip --python /app/.venv/bin/python install --no-deps --require-hashes \
        -r /build/requirements-dev.txt \
    && /usr/local/bin/python -m pip --python /app/.venv/bin/python check
COPY pyproject.toml ./
COPY unit_tests ./unit_tests
USER ${FINRL_UID}:${FINRL_GID}
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "unit and not docker", "unit_tests"]


# the default target: the full runtime image
FROM runtime AS app
