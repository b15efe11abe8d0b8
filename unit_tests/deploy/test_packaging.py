"""Packaging for two images: the training stack (torch, stable-baselines3, TensorBoard) is the
optional extra `train`, so that `pip install finrl` and the inference image, which installs the lock
without extras, carry none of it; `make venv` installs the extra for development."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from unit_tests.deploy.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

TRAINING = {"torch", "stable-baselines3", "tensorboard"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def locked() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((REPO_ROOT / "poetry.lock").read_text(encoding="utf-8"))
    return {canonical(package["name"]): package for package in lock["package"]}


def closure(roots: set[str], packages: dict[str, dict[str, Any]]) -> set[str]:
    """Every locked package the roots need, following each package's dependencies (extras aside)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(canonical(dependency) for dependency in packages[name].get("dependencies", {}))
    return seen


def test_training_packages_are_the_optional_train_extra_only() -> None:
    project = pyproject()["project"]
    main = {canonical(Requirement(r).name) for r in project["dependencies"]}
    train = {canonical(Requirement(r).name): Requirement(r) for r in project["optional-dependencies"]["train"]}
    assert set(train) == TRAINING
    assert not main & TRAINING
    assert Version("2.13.0") in train["torch"].specifier, "the locked CPU torch (2.13) must stay allowed"


def test_the_main_dependencies_pull_in_no_torch_in_the_lock() -> None:
    packages = locked()
    main = {canonical(Requirement(r).name) for r in pyproject()["project"]["dependencies"]}
    needed = closure(main, packages)
    assert not needed & TRAINING, f"a main dependency needs {needed & TRAINING}"
    assert not {name for name in needed if name.startswith(("nvidia-", "cuda-")) or name == "triton"}
    for name in TRAINING:
        assert packages[name]["optional"] is True
        assert packages[name]["markers"] == 'extra == "train"'


def export_requirements() -> ModuleType:
    """tools/export_requirements.py, loaded in this process (a unit test starts no process)."""
    spec = importlib.util.spec_from_file_location("export_requirements", REPO_ROOT / "tools" / "export_requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_locked_torch_is_what_the_image_and_make_venv_install(capsys: pytest.CaptureFixture[str]) -> None:
    """`export_requirements.py torch-version poetry.lock`, as the Dockerfile and the Makefile call it."""
    packages = locked()
    assert export_requirements().main(["torch-version", str(REPO_ROOT / "poetry.lock")]) == 0
    version = capsys.readouterr().out.strip()
    assert version == packages["torch"]["version"]
    assert Version(version).release[:2] == (2, 13)


def test_dev_group_has_mypy_and_stubs_for_the_locked_pandas() -> None:
    dev = pyproject()["tool"]["poetry"]["group"]["dev"]["dependencies"]
    assert {"mypy", "pandas-stubs"} <= set(dev)
    packages = locked()
    stubs, pandas = Version(packages["pandas-stubs"]["version"]), Version(packages["pandas"]["version"])
    assert stubs.release[:2] == pandas.release[:2], "pandas-stubs follows pandas' major.minor"
    assert packages["mypy"]["groups"] == ["dev"] and packages["pandas-stubs"]["groups"] == ["dev"]


def test_make_venv_installs_the_train_extra_and_test_fast_runs_unit_tests() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    # the venv's export (make sbom and make pip-audit export the lock on their own)
    (export,) = [line for line in makefile.splitlines() if "--output $(VENV)/requirements.export.txt" in line]
    assert "--extras train" in export and "--with dev" in export
    recipe = makefile.split("\ntest-fast:", 1)[1].split("\n\n", 1)[0]
    assert "-m pytest -m unit $(PYTEST_ARGS)" in recipe
    assert "$$rc -eq 5" in recipe and "exit $$rc" in recipe, "exit 5 (no tests collected) fails too"
    assert "test-fast" in makefile.split(".PHONY:", 1)[1].splitlines()[0]
