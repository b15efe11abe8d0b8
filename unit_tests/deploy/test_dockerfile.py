"""Dockerfile and build context, statically: hadolint, and the facts the Compose and Kubernetes
files rely on (non-root user, artifact folders owned by it, entry module, healthcheck)."""

from __future__ import annotations

import re
import shlex
from fnmatch import fnmatch

import pytest

from unit_tests.deploy.conftest import ARTIFACT_DIRS, REPO_ROOT, assert_entry_module, check, module_of, tool

pytestmark = pytest.mark.unit

DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of one build stage (after `FROM ... AS name`)."""
    current, stages = None, {}
    for keyword, rest in instructions():
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            stages[current] = []
        elif current is not None:
            stages[current].append((keyword, rest))
    return stages[name]


def test_hadolint_passes() -> None:
    check([tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)])


def test_no_syntax_directive_and_base_image_is_a_build_arg() -> None:
    """A `# syntax=` line makes BuildKit fetch a frontend image from a registry."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.IGNORECASE | re.MULTILINE)
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert froms[0] == "${BASE_IMAGE} AS builder"
    assert "${BASE_IMAGE} AS runtime" in froms
    assert froms[-1] == "runtime AS app", "the default target is the runtime image"


def test_builder_installs_the_lock_hash_pinned_with_torch_first() -> None:
    runs = [rest for keyword, rest in stage("builder") if keyword == "RUN"]
    text = "\n".join(runs)
    assert 'pip install "poetry==${POETRY_VERSION}" "poetry-plugin-export==' in text, "Poetry from pip"
    assert "poetry export --format requirements.txt" in text
    assert "tools/export_requirements.py strip-torch" in text
    torch_step = next(i for i, r in enumerate(runs) if "torch-version" in r)
    locked_step = next(i for i, r in enumerate(runs) if "--require-hashes -r /build/requirements.txt" in r)
    assert torch_step < locked_step
    assert "--mount=type=cache,target=/root/.cache/pip" in runs[locked_step]
    assert "--mount=type=bind,source=wheelhouse" in runs[torch_step]
    args = {rest.split("=")[0] for keyword, rest in stage("builder") if keyword == "ARG"}
    assert {"TORCH_FLAVOUR", "TORCH_INDEX_URL"} <= args


def test_runtime_runs_as_non_root_with_owned_artifact_folders() -> None:
    runtime = stage("runtime")
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users == ["${FINRL_UID}:${FINRL_GID}"]
    uid = next(rest for keyword, rest in runtime if keyword == "ARG" and rest.startswith("FINRL_UID="))
    assert int(uid.split("=")[1]) > 0
    setup = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "useradd --system --uid" in setup and " finrl" in setup
    for name in ARTIFACT_DIRS:
        assert f"/app/{name}" in setup.split("chown", 1)[0], f"/app/{name} is not created"
        assert f"/app/{name}" in setup.split("chown", 1)[1], f"/app/{name} is not owned by finrl"
    user_index = [keyword for keyword, _ in runtime].index("USER")
    assert all(keyword != "RUN" for keyword, _ in runtime[user_index:]), "nothing runs as root after USER"


def test_runtime_environment_healthcheck_and_default_command() -> None:
    runtime = stage("runtime")
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/app/.venv/bin:$PATH" in env
    (healthcheck,) = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    assert "--interval=30s" in healthcheck
    assert healthcheck.endswith('CMD ["python", "-c", "import finrl"]')
    (cmd,) = [rest for keyword, rest in runtime if keyword == "CMD"]
    command = shlex.split(cmd.strip("[]").replace(",", " "))
    assert module_of(command) == "finrl.applications.spy_rl_trading.example_training"
    assert_entry_module(module_of(command))


def test_test_stage_adds_the_locked_dev_tools_and_unit_tests() -> None:
    test = stage("test")
    text = " ".join(rest for _, rest in test)
    assert "--require-hashes -r /build/requirements-dev.txt" in text
    assert "COPY unit_tests ./unit_tests" in " ".join(f"{k} {r}" for k, r in test)
    assert test[-2][0] == "USER" and test[-2][1] == "${FINRL_UID}:${FINRL_GID}"


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the simple patterns used here (last match wins, ! re-includes)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, pattern) for prefix in prefixes):
            result = not negate
    return result


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for kept in (
        "README.md",
        "pyproject.toml",
        "poetry.lock",
        "tools/export_requirements.py",
        "finrl/__init__.py",
        "wheelhouse/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "unit_tests/conftest.py",
    ):
        assert not ignored(kept, patterns), f"{kept} must reach the build context"
    for dropped in (
        ".venv/bin/python",
        ".venv-tools/bin/poetry",
        ".git/HEAD",
        "trained_models/latest",
        "datasets/x/bars.csv",
        "results/r/metrics.json",
        "tensorboard_logs/run/events",
        "logs/journal.jsonl",
        ".env",
        "finrl/__pycache__/x.pyc",
        ".pytest_cache/v",
        "unit_tests/deploy/test_dockerfile.py",
    ):
        assert ignored(dropped, patterns), f"{dropped} must stay out of the build context"
    assert (REPO_ROOT / "wheelhouse").is_dir(), "the torch bind mount needs wheelhouse/ to exist"
