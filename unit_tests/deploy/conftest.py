"""Shared helpers for the deployment tests: repo paths, the dev tools' binaries, YAML loading."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from unit_tests.conftest import default_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PARALLEL_FILE = REPO_ROOT / "docker-compose.parallel.yml"
MONITORING_FILE = REPO_ROOT / "docker-compose.monitoring.yml"
GPU_FILE = REPO_ROOT / "docker-compose.gpu.yml"
PAPER_TRADING_MODULE = "finrl.applications.spy_rl_trading.paper_trading"
PAPER_TRADING_FILE = REPO_ROOT / "finrl" / "applications" / "spy_rl_trading" / "paper_trading.py"
# the artifact folders: settings defaults, Dockerfile directories, Compose volumes, k8s claims
ARTIFACT_DIRS = ("trained_models", "tensorboard_logs", "datasets", "results", "logs")
METRICS_PORT = default_settings().metrics_port  # SPY_METRICS_PORT default of the paper trader


def tool(name: str) -> str:
    """A dev tool's executable: beside the running interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: it is a locked dev dependency (make venv installs it)")
    return found


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", REPO_ROOT)
    kwargs.setdefault("timeout", 300)
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def check(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = run(args, **kwargs)
    assert result.returncode == 0, f"{' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def module_of(command: list[str]) -> str | None:
    """The module of a ``python -m MODULE ...`` command, else None."""
    if len(command) >= 3 and Path(command[0]).name.startswith("python") and command[1] == "-m":
        return command[2]
    return None


def assert_entry_module(module: str) -> None:
    """The module a container runs must exist; paper_trading only once its file exists."""
    if module == PAPER_TRADING_MODULE and not PAPER_TRADING_FILE.exists():
        pytest.skip(f"{PAPER_TRADING_FILE.relative_to(REPO_ROOT)} does not exist yet (checked once it does)")
    assert importlib.util.find_spec(module) is not None, f"entry module {module} does not exist"
