"""spy-rl paper --once as cron sees it: an exit code per outcome, and one instance per state folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.trade.exit_codes import CycleExit
from finrl.trade.instance_lock import instance_lock
from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
runner = CliRunner()


def paper_args(latest_workdir: Path, logs: Path, *args: str) -> list[str]:
    return ["paper", "--once", "--live-source", "sample", "--broker", "simulated",
            "--models-dir", str(latest_workdir / "trained_models"), "--datasets-dir", str(latest_workdir / "datasets"),
            "--logs-dir", str(logs), *args]  # fmt: skip


def paper_once(latest_workdir: Path, logs: Path, *args: str) -> Result:
    return runner.invoke(app, paper_args(latest_workdir, logs, *args))


def journal_events(logs: Path) -> list[str]:
    path = logs / "journal.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []


def outcome(result: Result) -> str:
    return next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("outcome: "))


def test_submitted_then_exists_then_dry_run_exit_zero(latest_workdir: Path, tmp_path: Path) -> None:
    dry = paper_once(latest_workdir, tmp_path / "dry", "--dry-run")
    assert dry.exit_code == CycleExit.OK, dry.output
    first = paper_once(latest_workdir, tmp_path / "live")
    assert first.exit_code == CycleExit.OK, first.output
    again = paper_once(latest_workdir, tmp_path / "live")
    assert again.exit_code == CycleExit.OK, again.output
    assert {outcome(first), outcome(again)} <= {"submitted", "exists", "no_trade"}


def test_a_halted_account_exits_with_the_halt_code(latest_workdir: Path, tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "trader_state.json").write_text(json.dumps({"halted": True, "halt_reason": "max_drawdown: test"}))
    result = paper_once(latest_workdir, tmp_path)
    assert outcome(result) == "halted", result.output
    assert result.exit_code == CycleExit.HALTED, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "halted" in errors[0] and f"exit {int(CycleExit.HALTED)}" in errors[0]


def test_a_risk_blocked_order_exits_with_its_code(latest_workdir: Path, tmp_path: Path) -> None:
    wanted = paper_once(latest_workdir, tmp_path / "probe", "--dry-run")
    if outcome(wanted) != "dry_run":
        pytest.skip(f"the sample model does not trade on its last session ({outcome(wanted)})")
    result = paper_once(latest_workdir, tmp_path / "blocked", "--max-order-notional", "1")
    assert outcome(result) == "risk_blocked", result.output
    assert result.exit_code == CycleExit.RISK_BLOCKED, result.output
    assert "order_submitted" not in journal_events(tmp_path / "blocked")


def test_a_second_instance_on_one_folder_exits_with_the_lock_code(latest_workdir: Path, tmp_path: Path) -> None:
    """The issue's failure: two --once runs on one folder both submitted. The test holds the lock as the
    first instance would (same helper, another open file), then runs the real command as a process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "ALPACA_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    with instance_lock(tmp_path):
        second = subprocess.run(
            [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", *paper_args(latest_workdir, tmp_path)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert second.returncode == CycleExit.LOCKED, second.stderr[-3000:]
    (line,) = [line for line in second.stderr.splitlines() if line.strip()]
    assert line.startswith("error:") and str(tmp_path) in line and f"pid {os.getpid()}" in line
    assert "order_submitted" not in journal_events(tmp_path)
    assert not (tmp_path / "simulated_account.json").exists()  # it stopped before touching the account
    first = paper_once(latest_workdir, tmp_path)  # once the holder is gone, the folder is free again
    assert first.exit_code == CycleExit.OK, first.output
    assert journal_events(tmp_path).count("order_submitted") <= 1


@pytest.mark.parametrize(
    ("failure", "expected", "code"),
    [
        ({"status": 422}, "rejected", CycleExit.REJECTED),  # e.g. the auction has passed
        ({"status": 503, "count": 10}, "unavailable", CycleExit.UNKNOWN),  # outlasts the retries
    ],
)
def test_broker_refusals_and_silence_exit_non_zero(
    latest_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: dict[str, int], expected: str,
    code: CycleExit,
) -> None:  # fmt: skip
    """Against the project's fake Alpaca, its clock just after the sample's last session's 19:05 ET."""
    from datetime import datetime

    from unit_tests.fakes.alpaca_server import NEW_YORK, FakeAlpacaServer

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeAlpacaServer(api_key="fake-key-id", api_secret="fake-secret-key") as server:
        server.enable_trading(now=datetime(2018, 12, 31, 19, 30, tzinfo=NEW_YORK)).set_price("SPY", 250.0)
        server.fail_next(failure.get("count", 1), status=failure["status"], path="/v2/orders", method="POST")
        env = {"ALPACA_API_KEY": "fake-key-id", "ALPACA_API_SECRET": "fake-secret-key",
               "ALPACA_BASE_URL": server.base_url}  # fmt: skip
        args = paper_args(latest_workdir, tmp_path)
        args[args.index("simulated")] = "alpaca"
        result = runner.invoke(app, args, env=env)
    assert outcome(result) == expected, result.output
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
