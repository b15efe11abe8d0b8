"""`spy-rl paper --check`: a preflight with one line per check, exit 1 on any problem, nothing sent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result

from finrl.applications.spy_rl_trading.paper_check import Preflight
from finrl.applications.spy_rl_trading.settings import load_settings
from unit_tests.applications.test_paper_live_data import EVENING, alpaca, paper, vix_file  # noqa: F401
from unit_tests.conftest import write_csv
from unit_tests.fakes.alpaca_server import FakeAlpacaServer
from unit_tests.meta.test_final_bars import TRUE_CLOSE, bars_until

pytestmark = pytest.mark.integration

CHECKS = ["model", "broker", "account", "clock", "calendar", "data", "model decides"]


def errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def settled(server: FakeAlpacaServer, tmp_path: Path) -> tuple[str, ...]:
    """The fake at 19:30 ET on 2024-12-26 with the session's final bar, a VIX file through it."""
    assert server.trading is not None
    server.set_bars("SPY", bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"))
    server.trading.set_now(EVENING)
    return "--live-source", "alpaca", "--live-vix-csv", str(vix_file(tmp_path / "vix.csv"))


def test_every_check_passes_on_a_healthy_setup(latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer) -> None:  # noqa: F811
    live = settled(alpaca, tmp_path)
    settings = load_settings(
        broker="alpaca", trained_models_dir=latest_models, datasets_dir=tmp_path / "datasets",
        logs_dir=tmp_path / "logs", live_source="alpaca", live_vix_csv_path=Path(live[-1]),
        alpaca_api_key=alpaca.api_key, alpaca_api_secret=alpaca.api_secret, alpaca_base_url=alpaca.base_url,
        alpaca_data_url=alpaca.base_url,
    )  # fmt: skip
    lines = Preflight(settings, machine_clock=lambda: EVENING + timedelta(seconds=3)).run()
    assert [line.check for line in lines] == CHECKS
    assert all(line.status == "ok" for line in lines), [line.render() for line in lines]
    rendered = {line.check: line.render() for line in lines}
    assert rendered["calendar"] == (
        "ok: calendar: last session due for a decision 2024-12-26; next decision 2024-12-27 19:05 ET"
    )
    assert "final through 2024-12-26" in rendered["data"]
    assert not alpaca.requests_to("/v2/orders", "POST")


def test_cli_reports_a_clock_off_the_brokers_and_exits_1(
    latest_models: Path,
    tmp_path: Path,
    alpaca: FakeAlpacaServer,  # noqa: F811
) -> None:
    """The fake's clock says 2024: this machine's is years off. Every other check still runs."""
    result = paper(latest_models, tmp_path, alpaca, *settled(alpaca, tmp_path), "--check")
    assert result.exit_code == 1, result.output + result.stderr
    (error,) = errors(result)
    assert error.startswith("error: clock: this machine's clock is") and " days, " in error
    assert error.endswith("off alpaca's: sync it (NTP)")
    oks = [line.split(":")[1].strip() for line in result.stdout.splitlines() if line.startswith("ok:")]
    assert oks == [c for c in CHECKS if c != "clock"]
    assert not alpaca.requests_to("/v2/orders", "POST") and not (tmp_path / "logs" / "journal.jsonl").exists()


def test_a_stale_live_file_is_one_line_and_the_model_check_is_skipped(
    latest_models: Path,
    tmp_path: Path,
    alpaca: FakeAlpacaServer,  # noqa: F811
) -> None:
    settled(alpaca, tmp_path)
    spy = write_csv(bars_until("2024-12-24", TRUE_CLOSE).drop(columns="vix"), tmp_path / "spy.csv")
    vix = vix_file(tmp_path / "vix.csv", last="2024-12-24")
    result = paper(latest_models, tmp_path, alpaca, "--live-source", "csv", "--live-csv", str(spy),
                   "--live-vix-csv", str(vix), "--check")  # fmt: skip
    assert result.exit_code == 1
    data_errors = [line for line in errors(result) if line.startswith("error: data:")]
    assert data_errors == [
        f"error: data: the live bars file {spy} ends 2024-12-24: the last closed session is 2024-12-26: "
        "append it to the file after the close plus --decision-delay-minutes (a bar written earlier is not final)"
    ]
    assert "skipped: later checks: they need data to pass" in result.stdout


@pytest.mark.parametrize(
    ("setup", "env", "check", "fragment"),
    [
        ("blocked", {}, "account", "trading is blocked: the broker would refuse every order"),
        ("none", {"ALPACA_API_KEY": "PKWRONG000", "ALPACA_API_SECRET": "wrong-secret-123"}, "account", "401"),
        ("none", {"ALPACA_API_KEY": "", "ALPACA_API_SECRET": ""}, "broker", "needs ALPACA_API_KEY"),
    ],
)
def test_account_and_key_problems_are_named(
    latest_models: Path,
    tmp_path: Path,
    alpaca: FakeAlpacaServer,  # noqa: F811
    setup: str,
    env: dict[str, str],
    check: str,
    fragment: str,
) -> None:
    live = settled(alpaca, tmp_path)
    if setup == "blocked":
        alpaca.trading.trading_blocked = True  # type: ignore[union-attr]
    result = paper(latest_models, tmp_path, alpaca, *live, "--check", env=env)
    assert result.exit_code == 1, result.output
    found = [line for line in errors(result) if line.startswith(f"error: {check}:")]
    assert len(found) == 1 and fragment in found[0], result.stderr
    assert "wrong-secret-123" not in result.output + result.stderr
