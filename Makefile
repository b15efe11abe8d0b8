# Developer tasks for finrl (GNU make).
#
#   make venv   create/refresh .venv from poetry.lock: the package with its `train` extra
#               (CPU-only torch, stable-baselines3, TensorBoard), its `tune` extra (Optuna,
#               psycopg, plotly) and the dev group
#   make run    train + backtest on the offline sample (spy-rl $(RUN_ARGS))
#   make test   run pytest (PYTEST_ARGS)
#   make test-fast    only the fast tests: pytest -m unit (PYTEST_ARGS)
#   make lint   ruff check + ruff format --check + mypy (strict, over finrl/)
#   make bench  benchmarks: env steps/s vs FinRL, PPO speed (prints ratios)
#   make lock   regenerate poetry.lock and check it
#   make clean  remove virtualenvs and caches (keeps models, datasets, results)
#   make wheelhouse   CPU torch wheel into wheelhouse/ for the Docker build
#   make docker-build build both images with docker compose: finrl:latest (training, full)
#               and finrl-inference:latest (backtests, paper trading; no torch)
#
# Torch: installed first, as `torch==<version in poetry.lock>`, so that pip never
# pulls the CUDA build and its nvidia-* wheels. Where your default index only
# offers CUDA builds, point pip at PyTorch's CPU wheel index, e.g.
#   make venv PIP_TORCH_ARGS="--index-url <pytorch-cpu-index-url>"

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := venv

PYTHON ?= python3
VENV ?= .venv
TOOLS_VENV ?= .venv-tools
POETRY_VERSION ?= 2.5.1
POETRY_EXPORT_VERSION ?= 1.10.1
PIP_TORCH_ARGS ?=
RUN_ARGS ?= pipeline --source sample
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard finrl unit_tests benchmarks tools)

REQUIREMENTS := requirements.lock.txt
VENV_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS_VENV)/.installed
POETRY := $(TOOLS_VENV)/bin/poetry
# Shim for package indexes without per-release JSON; present only next to a
# checkout that has ../shared (not on users' machines).
POETRY_COMPAT := ../shared/tools/poetry_compat.py
ifneq ($(wildcard $(POETRY_COMPAT)),)
POETRY_LOCK := $(TOOLS_VENV)/bin/python $(POETRY_COMPAT)
else
POETRY_LOCK := $(POETRY)
endif

CHECK_PYTHON = $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' \
	|| { echo "error: $(PYTHON) must be Python 3.11 or 3.12 (set PYTHON=...)" >&2; exit 1; }

.PHONY: venv run test test-fast lint lock clean bench wheelhouse docker-build

# venv: project virtualenv; reinstalled only when poetry.lock or pyproject.toml change
venv: $(VENV_STAMP)

$(VENV_STAMP): poetry.lock pyproject.toml tools/export_requirements.py | $(TOOLS_STAMP)
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	torch_version=$$($(PYTHON) tools/export_requirements.py torch-version poetry.lock); \
	$(VENV)/bin/python -m pip install --no-deps $(PIP_TORCH_ARGS) "torch==$$torch_version"
	$(POETRY) export --format requirements.txt --extras train --extras tune --with dev --output $(VENV)/requirements.export.txt
	$(PYTHON) tools/export_requirements.py strip-torch $(VENV)/requirements.export.txt $(REQUIREMENTS)
	$(VENV)/bin/python -m pip install --no-deps --require-hashes -r $(REQUIREMENTS)
	$(VENV)/bin/python -m pip install --no-deps -e .
	$(VENV)/bin/python -m pip check
	touch $@

# tools venv: Poetry + poetry-plugin-export, used for export and lock
$(TOOLS_STAMP):
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet \
		"poetry==$(POETRY_VERSION)" "poetry-plugin-export==$(POETRY_EXPORT_VERSION)"
	touch $@

# run: the application entry point (change RUN_ARGS for other commands)
run: venv
	$(VENV)/bin/spy-rl $(RUN_ARGS)

# bench: speed ratios measured in one run (downloads the FinRL reference wheel once)
bench: venv
	$(VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)

# test: pytest; exit status 5 means no tests were collected, a failure here too
test: venv
	@rc=0; $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# test-fast: the `unit` marker only (no integration, slow or docker tests); same exit-5 rule
test-fast: venv
	@rc=0; $(VENV)/bin/python -m pytest -m unit $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# lint: ruff lint and formatting check
lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

# lock: re-resolve poetry.lock from pyproject.toml and verify it
lock: $(TOOLS_STAMP)
	$(POETRY_LOCK) lock
	$(POETRY_LOCK) check --lock

# wheelhouse: the locked torch version as a CPU wheel for the image's Python (Docker build input)
WHEELHOUSE_PYTHON ?= 3.11
WHEELHOUSE_PLATFORM ?= manylinux_2_28_x86_64
wheelhouse:
	torch_version=$$($(PYTHON) tools/export_requirements.py torch-version poetry.lock); \
	if compgen -G "wheelhouse/torch-$$torch_version[+-]*.whl" >/dev/null; then \
		echo "wheelhouse: torch $$torch_version already present"; \
	else \
		$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version $(WHEELHOUSE_PYTHON) \
			--platform $(WHEELHOUSE_PLATFORM) $(PIP_TORCH_ARGS) -d wheelhouse "torch==$$torch_version"; \
	fi

# docker-build: both images, as docker compose builds them (train: full, backtest: inference)
docker-build: wheelhouse
	docker compose build train backtest

# clean: virtualenvs, exported requirements, build outputs and caches
clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(REQUIREMENTS) .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
