"""Dockerfile and build context, statically (hadolint: test_external_tools): the facts the Compose
and Kubernetes files rely on (two images: the full one for training and the inference one without torch; non-root
user, artifact folders owned by it, entry modules, healthchecks)."""

from __future__ import annotations

import re
import shlex
from fnmatch import fnmatch

import pytest

from unit_tests.deploy.conftest import ARTIFACT_DIRS, REPO_ROOT, assert_entry_module, module_of

pytestmark = pytest.mark.unit

DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, runs of whitespace as one space and
    comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
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


# the two images: target -> (the builder stage whose venv it copies, its default entry module)
IMAGES = {
    "runtime": ("builder", "finrl.applications.spy_rl_trading.example_training"),
    "inference": ("inference-builder", "finrl.applications.spy_rl_trading.example_backtesting"),
}
TRAINING_PACKAGES = ("torch", "stable_baselines3", "tensorboard")


def runs(name: str) -> list[str]:
    return [rest for keyword, rest in stage(name) if keyword == "RUN"]


def test_no_syntax_directive_and_base_image_is_a_build_arg() -> None:
    """A `# syntax=` line makes BuildKit fetch a frontend image from a registry."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.IGNORECASE | re.MULTILINE)
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert froms[0] == "${BASE_IMAGE} AS requirements"
    assert "${BASE_IMAGE} AS runtime-base" in froms
    assert "runtime-base AS runtime" in froms and "runtime-base AS inference" in froms
    assert "inference-builder AS builder" in froms, "the full venv is the inference venv plus the train extra"
    assert froms[-1] == "runtime AS app", "the default target is the full runtime image"


def test_requirements_are_the_lock_exported_with_and_without_the_train_extra() -> None:
    text = "\n".join(runs("requirements"))
    assert 'pip install "poetry==${POETRY_VERSION}" "poetry-plugin-export==' in text, "Poetry from pip"
    exports = [line.strip() for line in text.split("&&") if "poetry export" in line]
    assert "poetry export --format requirements.txt --output /build/requirements-inference.txt" in exports
    assert any("--extras train" in e and "/build/requirements.export.txt" in e for e in exports)
    assert any("--only dev" in e for e in exports)
    assert not any("--extras" in e or "--with" in e for e in exports if "requirements-inference" in e)
    assert "tools/export_requirements.py strip-torch /build/requirements.export.txt" in text


def test_inference_builder_installs_only_the_main_dependencies_hash_pinned() -> None:
    (install,) = runs("inference-builder")
    assert "--require-hashes" in install and "-r /build/requirements-inference.txt" in install
    assert "/build/requirements.txt" not in install and "torch" not in install
    assert "--mount=type=cache,target=/root/.cache/pip" in install
    assert "-name tests -prune" in install, "test suites are trimmed"
    assert not any("wheelhouse" in r for r in runs("inference-builder")), "no torch wheel for inference"


def test_builder_adds_torch_first_then_the_train_extra_hash_pinned() -> None:
    builder = runs("builder")
    torch_step = next(i for i, r in enumerate(builder) if "torch-version" in r)
    locked_step = next(i for i, r in enumerate(builder) if "--require-hashes -r /build/requirements.txt" in r)
    assert torch_step < locked_step
    assert "--mount=type=cache,target=/root/.cache/pip" in builder[locked_step]
    assert "--mount=type=bind,source=wheelhouse" in builder[torch_step]
    args = {rest.split("=")[0] for keyword, rest in stage("builder") if keyword == "ARG"}
    assert {"TORCH_FLAVOUR", "TORCH_INDEX_URL"} <= args


def test_runtime_base_creates_the_user_and_owned_artifact_folders() -> None:
    setup = " ".join(runs("runtime-base"))
    assert "useradd --system --uid" in setup and " finrl" in setup
    for name in ARTIFACT_DIRS:
        assert f"/app/{name}" in setup.split("chown", 1)[0], f"/app/{name} is not created"
        assert f"/app/{name}" in setup.split("chown", 1)[1], f"/app/{name} is not owned by finrl"
    uid = next(rest for keyword, rest in instructions() if keyword == "ARG" and rest.startswith("FINRL_UID="))
    assert int(uid.split("=")[1]) > 0
    env = " ".join(rest for keyword, rest in stage("runtime-base") if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/app/.venv/bin:$PATH" in env


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_images_run_as_non_root_with_healthcheck_and_default_command(image: str) -> None:
    builder, entry_module = IMAGES[image]
    instructions_ = stage(image)
    assert ("ARG", "FINRL_UID") in instructions_ and ("ARG", "FINRL_GID") in instructions_
    users = [rest for keyword, rest in instructions_ if keyword == "USER"]
    assert users == ["${FINRL_UID}:${FINRL_GID}"]
    user_index = [keyword for keyword, _ in instructions_].index("USER")
    assert all(keyword != "RUN" for keyword, _ in instructions_[user_index:]), "nothing runs as root after USER"
    copies = [rest for keyword, rest in instructions_ if keyword == "COPY"]
    assert f"--from={builder} /app/.venv /app/.venv" in copies
    (healthcheck,) = [rest for keyword, rest in instructions_ if keyword == "HEALTHCHECK"]
    assert "--interval=30s" in healthcheck
    assert healthcheck.endswith('CMD ["python", "-c", "import finrl"]'), "light: no CLI, no model"
    (cmd,) = [rest for keyword, rest in instructions_ if keyword == "CMD"]
    command = shlex.split(cmd.strip("[]").replace(",", " "))
    assert module_of(command) == entry_module
    assert_entry_module(module_of(command))


def test_inference_image_refuses_training_packages() -> None:
    """The build fails if torch, stable-baselines3 or TensorBoard ever reach the inference venv."""
    (install,) = runs("inference")
    assert "-m pip --python /app/.venv/bin/python check" in install
    assert "find_spec" in install and all(f"'{name}'" in install for name in TRAINING_PACKAGES)
    assert not any("--from=builder" in rest for keyword, rest in stage("inference") if keyword == "COPY")
    (full,) = runs("runtime")
    assert "import finrl, torch" in full


def test_test_stage_adds_the_locked_dev_tools_and_unit_tests() -> None:
    test = stage("test")
    text = " ".join(rest for _, rest in test)
    assert "--require-hashes -r /build/requirements-dev.txt" in text
    assert "COPY unit_tests ./unit_tests" in " ".join(f"{k} {r}" for k, r in test)
    assert test[-2][0] == "USER" and test[-2][1] == "${FINRL_UID}:${FINRL_GID}"
    assert ("ARG", "FINRL_UID") in test


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
        ".trivyignore",
        "docker-compose.gpu.yml",
        "k8s/components/gpu-train/Kustomization",
    ):
        assert ignored(dropped, patterns), f"{dropped} must stay out of the build context"
    assert (REPO_ROOT / "wheelhouse").is_dir(), "the torch bind mount needs wheelhouse/ to exist"
