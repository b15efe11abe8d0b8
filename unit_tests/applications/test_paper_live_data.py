"""`spy-rl paper --broker alpaca` against the fake Alpaca as an operator runs it (issue 12):

* failure 1: a `--dry-run` at 12:00 ET must not leave the session's partial bar to the evening run,
  which must fetch and decide on the true close;
* failure 7: live data comes from `--live-source`/`--live-vix-source`, never from the model's
  training files, and a live file that does not reach the last closed session stops the cycle
  with one line naming that file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import write_csv
from unit_tests.fakes.alpaca_server import NEW_YORK, FakeAlpacaServer
from unit_tests.meta.test_final_bars import PARTIAL_CLOSE, TRUE_CLOSE, bars_until

pytestmark = pytest.mark.integration
runner = CliRunner()

NOON = datetime(2024, 12, 26, 12, 0, tzinfo=NEW_YORK)
EVENING = datetime(2024, 12, 26, 19, 30, tzinfo=NEW_YORK)


@pytest.fixture
def alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpacaServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeAlpacaServer(bars={"SPY": bars_until("2024-12-26", PARTIAL_CLOSE).drop(columns="vix")}) as server:
        server.enable_trading(cash=100_000.0, now=NOON)
        yield server


def paper(models: Path, work: Path, server: FakeAlpacaServer, *args: str, env: dict[str, str] | None = None) -> Result:
    """``spy-rl paper --once --broker alpaca`` against ``server`` (its keys unless ``env`` replaces them)."""
    env = {"ALPACA_API_KEY": server.api_key, "ALPACA_API_SECRET": server.api_secret,
           "ALPACA_BASE_URL": server.base_url, "SPY_ALPACA_DATA_URL": server.base_url, **(env or {})}  # fmt: skip
    return runner.invoke(
        app,
        ["paper", "--once", "--broker", "alpaca", "--models-dir", str(models), "--datasets-dir", str(work / "datasets"),
         "--logs-dir", str(work / "logs"), "--metrics-port", "0", *args],
        env=env,
    )  # fmt: skip


def decisions(work: Path) -> dict[str, dict[str, Any]]:
    entries = [json.loads(line) for line in (work / "logs" / "journal.jsonl").read_text().splitlines()]
    return {e["session"]: e for e in entries if e["event"] == "decision"}


def vix_file(path: Path, last: str = "2024-12-26") -> Path:
    frame = bars_until(last, TRUE_CLOSE)
    return write_csv(frame[["vix"]].rename(columns={"vix": "close"}), path)


def test_a_noon_dry_run_leaves_no_partial_bar_to_the_evening_decision(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer
) -> None:
    vix = vix_file(tmp_path / "vix.csv")
    live = ("--live-source", "alpaca", "--live-vix-csv", str(vix))
    noon = paper(latest_models, tmp_path, alpaca, *live, "--dry-run")
    # at noon the last decided session is the 24th (whose order's auction, on the 26th, has passed)
    assert "session: 2024-12-24" in noon.stdout, noon.output + noon.stderr
    assert not any(PARTIAL_CLOSE in (p.read_text()) for p in (tmp_path / "datasets").rglob("*.csv"))
    noon_requests = len(alpaca.requests_to("/v2/stocks/bars"))
    assert noon_requests > 0

    assert alpaca.trading is not None
    alpaca.set_bars("SPY", bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"))  # the session closed
    alpaca.trading.set_now(EVENING)
    evening = paper(latest_models, tmp_path, alpaca, *live)
    assert evening.exit_code == 0, evening.output + evening.stderr
    assert "session: 2024-12-26" in evening.stdout
    assert len(alpaca.requests_to("/v2/stocks/bars")) > noon_requests  # the evening run fetched again
    decided = decisions(tmp_path)
    assert decided["2024-12-26"]["close"] == TRUE_CLOSE
    assert all(d["close"] != PARTIAL_CLOSE for d in decided.values())


def test_live_data_never_comes_from_the_models_training_files(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer
) -> None:
    """The model was trained on the sample: the default live source is Yahoo, not the sample (and
    offline there is none), so the run stops with one line instead of deciding on 2018's data."""
    alpaca.trading.set_now(EVENING)  # type: ignore[union-attr]
    result = paper(latest_models, tmp_path, alpaca, "--offline")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1, result.output + result.stderr
    assert "offline and no cached yahoo data" in errors[0] and "--live-source sample" in errors[0]
    assert not (tmp_path / "logs" / "journal.jsonl").exists() or not decisions(tmp_path)


def test_a_live_csv_that_misses_the_last_closed_session_is_named(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer
) -> None:
    alpaca.trading.set_now(datetime(2024, 12, 27, 19, 30, tzinfo=NEW_YORK))  # type: ignore[union-attr]
    spy = write_csv(bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"), tmp_path / "live-spy.csv")
    vix = vix_file(tmp_path / "vix.csv")
    result = paper(
        latest_models, tmp_path, alpaca, "--live-source", "csv", "--live-csv", str(spy), "--live-vix-csv", str(vix)
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1, result.output + result.stderr
    assert f"the live bars file {spy} ends 2024-12-26: the 2024-12-27 decision needs" in errors[0]
    assert "Traceback" not in result.stderr


def test_a_stale_live_vix_file_is_named_not_the_bars(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer
) -> None:
    alpaca.trading.set_now(EVENING)  # type: ignore[union-attr]
    spy = write_csv(bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"), tmp_path / "live-spy.csv")
    vix = vix_file(tmp_path / "vix.csv", last="2024-12-20")
    result = paper(
        latest_models, tmp_path, alpaca, "--live-source", "csv", "--live-csv", str(spy), "--live-vix-csv", str(vix)
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1, result.output + result.stderr
    assert f"VIX from VIX CSV file {vix} ends 2024-12-20" in errors[0]


def test_the_csv_live_source_needs_its_own_file(latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer) -> None:
    result = paper(latest_models, tmp_path, alpaca, "--live-source", "csv")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1, result.output + result.stderr
    assert "--live-csv PATH (or set SPY_LIVE_CSV_PATH)" in errors[0]


def test_the_simulated_broker_refuses_a_live_file_nobody_updates(latest_models: Path, tmp_path: Path) -> None:
    """The simulated market's clock is its data's: without a check against the real clock, a stale
    file would replay its last day as today's, exit 0 and keep the heartbeat fresh."""
    spy = write_csv(bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"), tmp_path / "live-spy.csv")
    vix = vix_file(tmp_path / "vix.csv")
    live = ("--live-source", "csv", "--live-csv", str(spy), "--live-vix-csv", str(vix))
    common = ["paper", "--broker", "simulated", *live, "--models-dir", str(latest_models),
              "--datasets-dir", str(tmp_path / "datasets"), "--logs-dir", str(tmp_path / "logs"),
              "--metrics-port", "0"]  # fmt: skip
    for mode in ("--once", "--check"):
        result = runner.invoke(app, [*common, mode])
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1, result.output + result.stderr
        assert f"the live bars file {spy} ends 2024-12-26: the last closed session is " in errors[0]
    assert not (tmp_path / "logs" / "journal.jsonl").exists()
