"""A download without network: one ``error:`` line that says how to work offline, none of the
dependencies' noise (yfinance's DNS errors, pandas' deprecation warnings) unless ``--log-level DEBUG``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


def fetch_without_network(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    unreachable = "http://127.0.0.1:9"  # the discard port: every request fails at once, here, not after a DNS wait
    env = {
        **os.environ, "PYTHONPATH": str(REPO_ROOT), "HTTPS_PROXY": unreachable, "HTTP_PROXY": unreachable,
        "https_proxy": unreachable, "http_proxy": unreachable, "NO_PROXY": "", "no_proxy": "",
        "SPY_DATA_TIMEOUT": "5", "SPY_DATA_RETRIES": "0",
    }  # fmt: skip
    command = [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_yahoo_without_network_is_one_line_naming_the_offline_sources(tmp_path: Path) -> None:
    args = ("--log-level", "WARNING", "data", "fetch", "--source", "yahoo", "--datasets-dir", str(tmp_path / "ds"))
    result = fetch_without_network(tmp_path, *args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "--source csv --csv FILE or --source sample" in lines[0], lines[0]
    assert result.stdout == ""


def test_debug_shows_what_the_dependencies_said(tmp_path: Path) -> None:
    args = ("--log-level", "DEBUG", "data", "fetch", "--source", "yahoo", "--datasets-dir", str(tmp_path / "ds"))
    result = fetch_without_network(tmp_path, *args)
    assert result.returncode == 1
    assert "[yfinance]" in result.stderr or "yfinance" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")
