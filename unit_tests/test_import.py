"""``import finrl`` stays cheap: the container health check runs it every 30 seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # each test starts a Python process

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "stable_baselines3", "gymnasium", "yfinance", "alpaca")

PROBE = """
import json, sys
import {module}
mod = sys.modules[{module!r}.split('.')[0]]
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)
print(json.dumps({{"loaded": loaded, "version": getattr(mod, "__version__", None)}}))
"""


def import_in_subprocess(module: str) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_finrl_loads_no_heavy_modules() -> None:
    report = import_in_subprocess("finrl")
    assert report["loaded"] == []


def test_finrl_has_version() -> None:
    version = import_in_subprocess("finrl")["version"]
    assert isinstance(version, str)
    assert version.strip()


def test_probe_detects_heavy_imports() -> None:
    # control: the same probe does see pandas when a module that needs it is imported
    report = import_in_subprocess("finrl.meta.data.market_data")
    assert "pandas" in report["loaded"]
