# Developer tasks for finrl (GNU make).
#
#   make venv   create/refresh .venv from poetry.lock: the package with its `train` extra
#               (CPU-only torch, stable-baselines3, TensorBoard), its `tune` extra (Optuna,
#               psycopg, plotly) and the dev group
#   make run    train + backtest on the offline sample (spy-rl $(RUN_ARGS))
#   make test   run pytest (PYTEST_ARGS)
#   make test-fast    only the fast tests: pytest -m unit (PYTEST_ARGS)
#   make test COVERAGE=1 (or make test-cov)   the same with line coverage of finrl/; fails under
#               the floor of pyproject.toml's [tool.coverage.report] (.ci/run runs this)
#   make audit  bandit over finrl/: fails on any medium or high finding without a reasoned # nosec
#   make sbom   CycloneDX SBOM (JSON) of the locked requirements into build/sbom.cdx.json
#   make pip-audit    known vulnerabilities in the locked requirements (GitHub workflow; needs
#               the package index's vulnerability data, so .ci/run does not run it)
#   make lint   ruff check + ruff format --check + mypy (strict, over finrl/)
#   make bench  benchmarks: env steps/s vs FinRL, PPO speed (prints ratios)
#   make lock   regenerate poetry.lock and check it
#   make clean  remove virtualenvs and caches (keeps models, datasets, results)
#   make wheelhouse   CPU torch wheel into wheelhouse/ for the Docker build
#   make docker-build build both images with docker compose: finrl:latest (training, full)
#               and finrl-inference:latest (backtests, paper trading; no torch)
#   make docker-buildx   both images for linux/amd64 and linux/arm64 with Buildx; pushed only
#               with REGISTRY=<registry>/<owner> (IMAGE_TAG, BUILDX_PLATFORMS, BUILDX_IMAGES)
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

.PHONY: venv run test test-fast test-cov lint audit sbom pip-audit lock clean bench wheelhouse docker-build

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

# test: pytest; exit status 5 means no tests were collected, a failure here too. COVERAGE=1 (what
# .ci/run runs) adds line coverage of finrl/ (terminal and build/coverage.xml) and fails under the
# floor of pyproject.toml's [tool.coverage.report]
COV_ARGS = $(if $(filter 1,$(COVERAGE)),--cov --cov-report=term --cov-report=xml:build/coverage.xml)
test: venv
	@mkdir -p build; rc=0; $(VENV)/bin/python -m pytest $(COV_ARGS) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# test-fast: the `unit` marker only (no integration, slow or docker tests); same exit-5 rule
test-fast: venv
	@rc=0; $(VENV)/bin/python -m pytest -m unit $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# test-cov: make test COVERAGE=1
test-cov:
	@$(MAKE) --no-print-directory test COVERAGE=1

# audit: bandit's static security checks over the package, failing on medium or high severity
# with medium or high confidence; a finding is fixed or carries `# nosec BXXX`, its reason in a comment above
audit: venv
	$(VENV)/bin/bandit --recursive finrl --severity-level medium --confidence-level medium --quiet

# sbom: CycloneDX 1.6 JSON of the locked requirements of the training image and make venv (main
# dependencies with the train and tune extras, torch included; not the dev group). The root
# component comes from [project] alone: cyclonedx-py prefers [tool.poetry], which has no name here.
SBOM := build/sbom.cdx.json
sbom: venv
	@mkdir -p build
	$(POETRY) export --format requirements.txt --extras train --extras tune --output build/requirements.sbom.txt
	$(VENV)/bin/python -c 'import json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("[project]", *(f"{k} = {json.dumps(p[k])}" for k in ("name", "version", "description", "license")), sep="\n")' \
		>build/sbom-project.toml
	$(VENV)/bin/python -W ignore::UserWarning -m cyclonedx_py requirements --pyproject build/sbom-project.toml \
		--output-reproducible --spec-version 1.6 --output-format JSON --output-file $(SBOM) build/requirements.sbom.txt
	@echo "sbom: $(SBOM)"

# pip-audit: every locked requirement (main, train, tune, dev; torch included) against the index's
# vulnerability data; fails on a known vulnerability unless .pip-audit-allowlist lists its ID (with a
# reason), and (--strict) on a package it cannot look up. An index without per-release vulnerability
# data answers "not found" for every package: that is a failure here, never a pass.
PIP_AUDIT_ALLOWLIST := .pip-audit-allowlist
pip-audit: venv
	@mkdir -p build
	$(POETRY) export --format requirements.txt --extras train --extras tune --with dev --output build/requirements.audit.txt
	ignore=$$(sed -e 's/#.*//' $(PIP_AUDIT_ALLOWLIST) | awk 'NF { printf " --ignore-vuln %s", $$1 }'); \
	$(VENV)/bin/pip-audit --strict --disable-pip --require-hashes --progress-spinner off \
		--requirement build/requirements.audit.txt $$ignore

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

# docker-buildx: the images of BUILDX_IMAGES (app: finrl, inference: finrl-inference) for every
# platform of BUILDX_PLATFORMS, in the Buildx builder BUILDX_BUILDER (a docker-container builder,
# created if missing: the docker driver builds one platform at a time). The other architecture runs
# under QEMU (once per host: docker run --privileged --rm tonistiigi/binfmt --install arm64). With
# REGISTRY set, both are pushed as REGISTRY/finrl[-inference]:IMAGE_TAG (multi-platform manifests
# with an SBOM and provenance attestation); without it they are built into the build cache only.
# A CPU torch wheel per architecture goes to wheelhouse/ first (PIP_TORCH_ARGS: PyTorch's CPU index;
# PyPI's aarch64 wheel needs CUDA libraries). `make -n docker-buildx` prints the commands.
comma := ,
BUILDX_PLATFORMS ?= linux/amd64,linux/arm64
BUILDX_IMAGES ?= app inference
BUILDX_BUILDER ?= finrl-multiarch
BUILDX_ARGS ?=
REGISTRY ?=
IMAGE_TAG ?= latest
BUILDX_OUTPUT = $(if $(REGISTRY),--push --sbom=true --provenance=mode=max,--output type=cacheonly)
BUILDX = docker buildx build --builder $(BUILDX_BUILDER) --platform $(BUILDX_PLATFORMS) $(BUILDX_OUTPUT) $(BUILDX_ARGS)
.PHONY: docker-buildx
docker-buildx:
	@if [ -n "$(filter app,$(BUILDX_IMAGES))" ]; then \
		torch_version=$$($(PYTHON) tools/export_requirements.py torch-version poetry.lock); \
		for platform in $(subst $(comma), ,$(BUILDX_PLATFORMS)); do \
			case $$platform in (linux/amd64) arch=x86_64 ;; (linux/arm64) arch=aarch64 ;; \
				(*) echo "error: no torch wheel platform for $$platform" >&2; exit 1 ;; esac; \
			if compgen -G "wheelhouse/torch-$$torch_version[+-]*_$$arch.whl" >/dev/null; then \
				echo "wheelhouse: torch $$torch_version for $$arch already present"; \
			else \
				echo "wheelhouse: torch $$torch_version for $$arch"; \
				$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version $(WHEELHOUSE_PYTHON) \
					--platform manylinux_2_28_$$arch $(PIP_TORCH_ARGS) -d wheelhouse "torch==$$torch_version"; \
			fi; \
		done; \
	fi
	docker buildx inspect $(BUILDX_BUILDER) >/dev/null 2>&1 \
		|| docker buildx create --name $(BUILDX_BUILDER) --driver docker-container
	$(if $(filter inference,$(BUILDX_IMAGES)),$(BUILDX) --target inference -t $(if $(REGISTRY),$(REGISTRY)/)finrl-inference:$(IMAGE_TAG) .)
	$(if $(filter app,$(BUILDX_IMAGES)),$(BUILDX) --target app -t $(if $(REGISTRY),$(REGISTRY)/)finrl:$(IMAGE_TAG) .)

# clean: virtualenvs, exported requirements, build outputs (coverage, SBOM) and caches
clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(REQUIREMENTS) .pytest_cache .ruff_cache .hypothesis .coverage .coverage.* build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
