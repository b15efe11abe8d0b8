"""spy-rl paper / the paper_trading entry module: --once, guards, and the long-running service process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
runner = CliRunner()


def paper(latest_workdir: Path, logs: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(
        app,
        ["paper", "--live-source", "sample", "--models-dir", str(latest_workdir / "trained_models"),
         "--datasets-dir", str(latest_workdir / "datasets"), "--logs-dir", str(logs), "--metrics-port", "0", *args],
        env=env,
    )  # fmt: skip


def test_once_is_idempotent_across_runs(latest_workdir: Path, tmp_path: Path) -> None:
    first = paper(latest_workdir, tmp_path, "--once")
    assert first.exit_code == 0, first.output
    assert "session: 2018-12-31" in first.stdout
    second = paper(latest_workdir, tmp_path, "--once")
    assert second.exit_code == 0, second.output
    account = json.loads((tmp_path / "simulated_account.json").read_text())
    assert len(account["orders"]) <= 1
    if account["orders"]:
        assert "outcome: exists" in second.stdout
    (health,) = [json.loads((tmp_path / "health.json").read_text())]
    assert health["status"] == "ok" and health["last_session"] == "2018-12-31"
    assert runner.invoke(app, ["health", "--logs-dir", str(tmp_path)]).exit_code == 0


def test_dry_run_once_sends_no_order(latest_workdir: Path, tmp_path: Path) -> None:
    result = paper(latest_workdir, tmp_path, "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "simulated_account.json").read_text())["orders"] == {}


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (["--once", "--trading-mode", "live"], None, 2, "SPY_LIVE_TRADING_CONFIRMED=true"),
        (["--once", "--broker", "alpaca"], None, 2, "ALPACA_API_KEY and ALPACA_API_SECRET"),
        (["--once", "--model", "no-such-run"], None, 1, "model bundle not found: no-such-run"),
        (["--once", "--broker", "alpaca"], {"ALPACA_BASE_URL": "https://api.alpaca.markets"}, 2, "not a paper"),
    ],
)
def test_guards_end_in_one_line(
    latest_workdir: Path, tmp_path: Path, args: list[str], env: dict[str, str] | None, code: int, fragment: str
) -> None:
    result = paper(latest_workdir, tmp_path, *args, env=env)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_health_command_fails_on_a_stale_or_missing_heartbeat(tmp_path: Path) -> None:
    assert runner.invoke(app, ["health", "--logs-dir", str(tmp_path)]).exit_code == 1
    (tmp_path / "health.json").write_text(json.dumps({"status": "ok", "heartbeat": "2020-01-01T00:00:00+00:00"}))
    result = runner.invoke(app, ["health", "--logs-dir", str(tmp_path)])
    assert result.exit_code == 1 and "stale" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_service_serves_metrics_and_stops_cleanly_on_sigterm(latest_workdir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "ALPACA_"))}
    env |= {"PYTHONPATH": str(REPO_ROOT), "SPY_LOG_JSON": "true", "SPY_METRICS_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "finrl.applications.spy_rl_trading.paper_trading", "--live-source", "sample",
         "--models-dir", str(latest_workdir / "trained_models"), "--datasets-dir", str(latest_workdir / "datasets"),
         "--logs-dir", str(tmp_path)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "health.json").exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for name in ("finrl_portfolio_nav", "finrl_position_shares", "finrl_last_decision_timestamp_seconds",
                     "finrl_orders_total", "finrl_errors_total"):  # fmt: skip
            assert name in text, name
        assert 'finrl_cycles_total{outcome="' in text
        assert "finrl_halted 0.0" in text and 'finrl_feature_psi{feature="log_return"}' in text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "signal_received" in events and events[-1] == "service_stop"
    assert "Traceback" not in stderr


def test_alpaca_bad_keys_exit_non_zero_with_one_line_and_no_secret(latest_workdir: Path, tmp_path: Path) -> None:
    from unit_tests.fakes.alpaca_server import FakeAlpacaServer

    secret = "SECRETabcdef0123456789"
    with FakeAlpacaServer() as server:
        server.enable_trading()
        env = {"ALPACA_API_KEY": "PKWRONGKEY0000", "ALPACA_API_SECRET": secret, "ALPACA_BASE_URL": server.base_url}
        result = paper(latest_workdir, tmp_path, "--once", "--broker", "alpaca", "--log-json", env=env)
    assert result.exit_code == 3, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ALPACA_API_KEY" in errors[0], result.stderr
    assert secret not in result.output + result.stderr and "PKWRONGKEY0000" not in result.output + result.stderr
    assert "Traceback" not in result.stderr
