"""The Alpaca key and secret never reach the screen or a file, whichever client's error quotes them (issue 13).

Each HTTP client the CLI drives (Alpaca trading, Alpaca bars, Yahoo's VIX) is made to answer with an
error whose body or text echoes the request's credentials, as a misbehaving proxy or API does; the
command must end in one ``error:`` line, and neither stdout, stderr (console or JSON logs) nor any file
it wrote (logs folder, journal, health, account, dataset cache) may hold the key or the secret, plain,
URL-encoded or JSON-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.applications.spy_rl_trading.cli_support import user_errors
from finrl.masking import MASK, _secrets, register_secrets
from finrl.meta.data import sources
from unit_tests.conftest import make_bars
from unit_tests.fakes.alpaca_server import NEW_YORK, FakeAlpacaServer

pytestmark = pytest.mark.integration
runner = CliRunner()

KEY = "PKLEAKKEY0123456789"
SECRET = "leak/Secret+Value=987654321"  # "/", "+" and "=" change under URL encoding
FORMS = (KEY, SECRET, quote(SECRET, safe=""), quote(SECRET))
EVENING = datetime(2016, 12, 28, 19, 30, tzinfo=NEW_YORK)


def echoing_body() -> dict[str, Any]:
    """An error body that repeats the request, credentials included (as the issue's 403 did)."""
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    return {
        "message": f"forbidden: {json.dumps(headers)}",
        "request": {"headers": headers, "url": f"/v2/x?key={KEY}&secret={quote(SECRET, safe='')}"},
    }


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """The process-wide registry of secrets starts and ends empty (other tests see no masking)."""
    _secrets.clear()
    yield
    _secrets.clear()


@pytest.fixture
def alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpacaServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr("alpaca.common.rest.DEFAULT_RETRY_WAIT_SECONDS", 0)
    bars = make_bars(250, start="2016-01-04", vix=False)
    with FakeAlpacaServer(api_key=KEY, api_secret=SECRET, bars={"SPY": bars}) as server:
        server.enable_trading(cash=100_000.0, now=EVENING)
        yield server


def env_for(server: FakeAlpacaServer, **more: str) -> dict[str, str]:
    return {"ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET, "ALPACA_BASE_URL": server.base_url,
            "SPY_ALPACA_DATA_URL": server.base_url, "SPY_DATA_RETRIES": "0", **more}  # fmt: skip


def assert_one_line_and_nothing_leaks(result: Result, *folders: Path) -> None:
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1, output
    assert "Traceback" not in output
    written = {p: p.read_bytes().decode("utf-8", "replace") for f in folders for p in f.rglob("*") if p.is_file()}
    for form in FORMS:
        assert form not in output, (form, output)
        leaked = [str(path) for path, text in written.items() if form in text]
        assert not leaked, (form, leaked)


def log_flags(json_logs: bool) -> list[str]:
    return ["--log-json"] if json_logs else ["--log-console"]


# ---------------------------------------------------------------- trading (alpaca-py's TradingClient)


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
@pytest.mark.parametrize("status", [403, 422])
def test_a_trading_error_echoing_the_keys_shows_neither(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer, status: int, json_logs: bool
) -> None:
    alpaca.fail_next(50, status=status, body=echoing_body(), path="/v2/account")
    alpaca.fail_next(50, status=status, body=echoing_body(), path="/v2/clock")
    result = runner.invoke(
        app,
        [*log_flags(json_logs), "paper", "--once", "--broker", "alpaca", "--live-source", "sample",
         "--models-dir", str(latest_models), "--datasets-dir", str(tmp_path / "datasets"),
         "--logs-dir", str(tmp_path / "logs"), "--metrics-port", "0"],
        env=env_for(alpaca),
    )  # fmt: skip
    assert_one_line_and_nothing_leaks(result, tmp_path)
    # the client did ask and got the echo, and the line shows it masked (not a failure before the call)
    assert alpaca.requests_to("/v2/clock") or alpaca.requests_to("/v2/account"), result.output
    assert MASK in result.stderr, result.stderr


# ---------------------------------------------------------------- bars (alpaca-py's StockHistoricalDataClient)


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
@pytest.mark.parametrize("status", [403, 500])  # a refusal, and a server error after its retries
def test_a_bars_error_echoing_the_keys_shows_neither(
    tmp_path: Path, alpaca: FakeAlpacaServer, status: int, json_logs: bool
) -> None:
    alpaca.fail_next(50, status=status, body=echoing_body(), path="/v2/stocks/bars")
    result = runner.invoke(
        app,
        [*log_flags(json_logs), "data", "fetch", "--source", "alpaca", "--no-vix", "--start", "2016-01-04",
         "--end", "2016-12-01", "--datasets-dir", str(tmp_path / "datasets")],
        env=env_for(alpaca),
    )  # fmt: skip
    assert_one_line_and_nothing_leaks(result, tmp_path)
    assert alpaca.requests_to("/v2/stocks/bars")  # the client did ask (and got the echo)


def yahoo_echoing_the_keys(*_: Any, **__: Any) -> pd.DataFrame:
    raise RuntimeError(
        f"401 Client Error for url https://query2.finance.yahoo.com/v8/finance/chart/%5EVIX?"
        f"apikey={KEY}&token={quote(SECRET, safe='')} headers={{'APCA-API-SECRET-KEY': '{SECRET}'}}"
    )


# ---------------------------------------------------------------- VIX (yfinance)


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
def test_a_vix_error_quoting_the_keys_shows_neither(
    tmp_path: Path, alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, json_logs: bool
) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", yahoo_echoing_the_keys)
    result = runner.invoke(
        app,
        [*log_flags(json_logs), "data", "fetch", "--source", "alpaca", "--vix", "--start", "2016-01-04",
         "--end", "2016-12-01", "--datasets-dir", str(tmp_path / "datasets")],
        env=env_for(alpaca),
    )  # fmt: skip
    assert_one_line_and_nothing_leaks(result, tmp_path)
    assert "Yahoo download of ^VIX failed" in result.stderr


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
def test_paper_trading_with_every_client_failing_shows_neither(
    latest_models: Path, tmp_path: Path, alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, json_logs: bool
) -> None:
    """The trader's own records (journal, health) of a failed cycle keep the keys out too."""
    monkeypatch.setattr(sources, "_yahoo_download", yahoo_echoing_the_keys)
    alpaca.fail_next(50, status=403, body=echoing_body(), path="/v2/stocks/bars")
    result = runner.invoke(
        app,
        [*log_flags(json_logs), "paper", "--once", "--broker", "alpaca", "--live-source", "alpaca",
         "--live-vix-source", "yahoo", "--models-dir", str(latest_models), "--datasets-dir", str(tmp_path / "datasets"),
         "--logs-dir", str(tmp_path / "logs"), "--metrics-port", "0"],
        env=env_for(alpaca),
    )  # fmt: skip
    assert_one_line_and_nothing_leaks(result, tmp_path)
    assert alpaca.requests_to("/v2/stocks/bars"), result.output  # the bars client did ask


# ---------------------------------------------------------------- the last resort: a bug's traceback


def test_a_bugs_traceback_is_printed_with_the_secret_masked(capsys: pytest.CaptureFixture[str]) -> None:
    register_secrets([SECRET])
    with pytest.raises(typer.Exit) as stopped, user_errors():
        try:
            raise ConnectionError(f"proxy said: {SECRET}")
        except ConnectionError as cause:
            raise ValueError("unexpected answer") from cause  # the secret is in the chain, not the message
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and MASK in err and SECRET not in err


def test_a_bug_without_a_secret_keeps_its_traceback() -> None:
    register_secrets([SECRET])
    with pytest.raises(ZeroDivisionError), user_errors():
        _ = 1 / 0


# ---------------------------------------------------------------- the trader's records of a refused order


def test_an_order_refusal_echoing_the_keys_stays_out_of_the_journal_and_health(
    latest_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unit_tests.conftest import write_csv
    from unit_tests.meta.test_final_bars import TRUE_CLOSE, bars_until

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    bars = bars_until("2024-12-26", TRUE_CLOSE)
    vix = write_csv(bars[["vix"]].rename(columns={"vix": "close"}), tmp_path / "vix.csv")
    with FakeAlpacaServer(api_key=KEY, api_secret=SECRET, bars={"SPY": bars.drop(columns="vix")}) as server:
        server.enable_trading(cash=100_000.0, now=datetime(2024, 12, 26, 19, 30, tzinfo=NEW_YORK))
        server.fail_next(50, status=403, body=echoing_body(), path="/v2/orders", method="POST")
        result = runner.invoke(
            app,
            ["--log-json", "paper", "--once", "--broker", "alpaca", "--live-source", "alpaca", "--live-vix-csv",
             str(vix), "--models-dir", str(latest_models), "--datasets-dir", str(tmp_path / "datasets"),
             "--logs-dir", str(tmp_path / "logs"), "--metrics-port", "0"],
            env=env_for(server),
        )  # fmt: skip
        assert server.requests_to("/v2/orders", "POST"), result.output  # the trader did try to order
    journal = (tmp_path / "logs" / "journal.jsonl").read_text()
    assert MASK in journal, journal  # the refusal is recorded, its echo masked
    assert_one_line_and_nothing_leaks(result, tmp_path)
