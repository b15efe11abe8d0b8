"""The spy-rl command as a real process: exit codes and stderr as a shell or a container sees them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "ALPACA_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close,volume\n2020-01-02,1,1,1,1,0\n")
    result = run_module("data", "validate", "--csv", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: non-positive volume on 2020-01-02"
    ok = run_module("data", "fetch", "--source", "sample", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert list((tmp_path / "datasets").glob("sample-*/features.csv"))  # default folder, relative to cwd
