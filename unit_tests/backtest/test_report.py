"""Backtest artifacts: the six files and their contents, metrics that agree with nav.csv, an offline
self-contained HTML report (every section, the plotly figures' contents, plotly.js once), quantstats'
tearsheet against buy-and-hold, byte-identical reruns that replace the folder, and failed writes that
leave the previous report intact and nothing that looks complete."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.backtest import report as report_module
from finrl.backtest.charts import label, plotly_js
from finrl.backtest.engine import AGENT, BASELINES, BacktestResult, run_backtest
from finrl.backtest.report import REPORT_FILES, metrics_document, risk_sentence, summary_rows, write_report
from finrl.backtest.tables import trade_ledger
from finrl.meta.preprocessing import DateWindow
from finrl.performance import METRIC_NAMES
from unit_tests.backtest.test_engine import default_run, engine_bundle_path, engine_data

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STRATEGIES = (AGENT, *BASELINES)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    from finrl.agents.bundle import load_bundle

    path = engine_bundle_path(tmp_path_factory)
    return default_run(load_bundle(path, path.parent))


@pytest.fixture(scope="module")
def long_result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """Every feature day (training included: a leakage warning, but over six months) at a 2% risk-free rate."""
    from finrl.agents.bundle import load_bundle

    path = engine_bundle_path(tmp_path_factory)
    features = engine_data()[1]
    window = DateWindow(features.index[0].date(), features.index[-1].date())
    return run_backtest(load_bundle(path, path.parent), features, window, 0.02)


@pytest.fixture(scope="module")
def long_written(long_result: BacktestResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(long_result, tmp_path_factory.mktemp("long-report") / "run")


@pytest.fixture(scope="module")
def written(result: BacktestResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(result, tmp_path_factory.mktemp("report") / "results" / "engine__window")


def figure_json(page: str, div_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data and layout a page hands ``Plotly.newPlot`` for the figure in ``div_id``."""
    call = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert call, f"no figure {div_id}"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page, call.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def complete_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (hidden ones included) that holds all the report files."""
    return [p for p in root.rglob("*") if p.is_dir() and all((p / name).is_file() for name in REPORT_FILES)]


def independent_sharpe_and_drawdown(nav: np.ndarray) -> tuple[float, float]:
    r = nav[1:] / nav[:-1] - 1
    return float(r.mean() / r.std(ddof=1) * math.sqrt(252)), float(np.min(nav / np.maximum.accumulate(nav) - 1))


# ------------------------------------------------------------------ the files


def test_exactly_the_report_files(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(REPORT_FILES)
    expected = ["metrics.json", "nav.csv", "trades.csv", "equity.png", "report.html", "tearsheet.html"]
    assert sorted(REPORT_FILES) == sorted(expected)
    assert not [p for p in written.parent.iterdir() if p.name.startswith((".staging-", ".retired-"))]


def test_metrics_json_has_every_strategy_and_metric(written: Path, result: BacktestResult) -> None:
    document = json.loads((written / "metrics.json").read_text())  # strict JSON: no NaN/Infinity tokens
    assert set(document) == {*STRATEGIES, "meta"}
    for name in STRATEGIES:
        assert set(document[name]) == set(METRIC_NAMES), name
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in document[name])
        for key, value in document[name].items():
            assert value == result.metrics[name][key], (name, key)  # JSON floats round-trip exactly
    meta = document["meta"]
    assert meta["model"] == "engine" and meta["test_start"] == str(result.window.start)
    assert meta["test_end"] == str(result.window.end) and meta["days"] == len(result.prices)
    assert meta["execution"]["execution"]["costs"]["commission_bps"] == 5.0
    assert metrics_document(written) == document
    assert "NaN" not in (written / "metrics.json").read_text()


def test_nav_csv_columns_and_values(written: Path, result: BacktestResult) -> None:
    nav = pd.read_csv(written / "nav.csv", parse_dates=["date"])
    required = ["date", "price", "action", "position", "fill_price", "costs", "cash",
                *(f"{name}_nav" for name in STRATEGIES)]  # fmt: skip
    assert set(required) <= set(nav.columns), nav.columns
    assert nav.columns[0] == "date"
    assert len(nav) == len(result.prices)
    assert list(nav["date"].dt.date) == list(result.prices.index.date)
    agent = result.ledgers[AGENT].frame
    np.testing.assert_allclose(nav["price"], result.prices["close"], rtol=1e-9)
    np.testing.assert_allclose(nav["cash"], agent["cash"], rtol=1e-9)
    np.testing.assert_array_equal(nav["position"], agent["position"].astype(int))
    np.testing.assert_array_equal(nav["action"].to_numpy()[:-1], agent["action"].to_numpy()[:-1])
    assert np.isnan(nav["action"].iloc[-1])
    assert nav["fill_price"].notna().sum() == result.metrics[AGENT]["n_trades"]
    for name in STRATEGIES:
        np.testing.assert_allclose(nav[f"{name}_nav"], result.ledgers[name].nav, rtol=1e-9, err_msg=name)


def test_trades_csv_lists_each_agent_fill(written: Path, result: BacktestResult) -> None:
    trades = pd.read_csv(written / "trades.csv", parse_dates=["date"])
    agent = result.ledgers[AGENT].frame
    filled = agent[agent["fill_price"].notna()]
    assert list(trades["date"].dt.date) == list(filled.index.date)
    assert len(trades) == result.metrics[AGENT]["n_trades"]
    assert set(trades["side"]) <= {"buy", "sell"}
    delta = agent["shares"].diff()[filled.index].to_numpy()
    np.testing.assert_array_equal(trades["side"], np.where(delta > 0, "buy", "sell"))
    np.testing.assert_allclose(trades["shares"], np.abs(delta), rtol=1e-9)
    np.testing.assert_allclose(trades["notional"], np.abs(delta) * filled["fill_price"], rtol=1e-9)
    assert trades["costs"].sum() == pytest.approx(result.metrics[AGENT]["total_costs"], rel=1e-8)


def test_equity_png_is_a_png(written: Path) -> None:
    data = (written / "equity.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert data[12:16] == b"IHDR"


def test_report_html_is_self_contained(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    assert text.lstrip().lower().startswith("<!doctype html>")
    library = plotly_js()
    # plotly.js embedded exactly once, inline; nothing else on the page is code from elsewhere
    assert text.count(library[:2000]) == 1 and text.count(library) == 1
    page = text.replace(library, "")
    assert len(re.findall(r"<script\b", page)) == 1 + page.count('class="plotly-graph-div"') >= 3
    assert "http://" not in page and "https://" not in page  # plotly.js's own strings aside: no URL at all
    assert not re.search(r"<(script|img|iframe|link)\b[^>]*\b(src|href)\s*=", text, re.IGNORECASE)
    assert set(re.findall(r"""(?:src|href)\s*=\s*["'](?!#)([^"']*)""", page)) == {"tearsheet.html"}  # and anchors


def test_report_html_sections_and_terms(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    for section in (
        "terms",
        "metrics",
        "equity",
        "rolling",
        "yearly",
        "monthly",
        "drawdowns",
        "distribution",
        "trades",
    ):
        assert f'<section id="{section}">' in text, section
    meta = result.meta()
    assert f"{meta['test_start']} \N{EN DASH} {meta['test_end']} ({meta['days']:,d} trading days)" in text
    train = meta["train_window"]
    assert f"<th>Training window</th><td>{train['start']} \N{EN DASH} {train['end']}</td>" in text
    assert "<th>Validation window</th><td>none</td>" in text
    assert "commission 5 bp, spread 4 bp (half a fill), slippage 3 bp" in text
    assert html.escape(risk_sentence(meta["risk"])) in text
    assert "DATA LEAKAGE" not in text


def test_report_html_metric_names_say_their_units(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    for name in STRATEGIES:
        assert f"<th>{label(name)}</th>" in text
    rf = f"{result.risk_free_rate:.2%}"
    for metric in ("Total return (%)", f"Sharpe ratio (annualised, rf {rf})", "Total costs ($)", "Max drawdown (%)"):
        assert f"<tr><td>{html.escape(metric)}</td>" in text, metric
    assert "<td>total_return</td>" not in text
    agent = result.metrics[AGENT]
    row = re.search(r"<tr><td>Sharpe ratio[^<]*</td><td>([^<]*)</td>", text)
    assert row and row.group(1) == f"{agent['sharpe']:,.3f}"
    row = re.search(r"<tr><td>Total return \(%\)</td><td>([^<]*)</td>", text)
    assert row and row.group(1) == f"{agent['total_return'] * 100:,.2f}"


def test_equity_chart_has_every_curve_the_position_trades_log_toggle_and_drawdowns(
    written: Path, result: BacktestResult
) -> None:
    data, layout = figure_json((written / "report.html").read_text(), "equity-chart")
    traces = {trace["name"]: trace for trace in data}
    for name in STRATEGIES:
        trace = traces[label(name)]
        assert trace["mode"] == "lines" and len(trace["y"]) == len(result.prices)
        assert trace["y"][-1] == pytest.approx(result.ledgers[name].nav.iloc[-1], rel=1e-5)
    band = traces["Agent position (% of equity)"]
    assert band["fill"] == "tozeroy" and band["yaxis"] == "y2" and len(band["y"]) == len(result.prices)
    agent = result.ledgers[AGENT].frame
    held = agent["shares"] * result.prices["close"] / agent["nav"] * 100
    np.testing.assert_allclose(band["y"], held.to_numpy(), rtol=1e-5, atol=1e-9)
    buys, sells = traces["Agent buys"], traces["Agent sells"]
    assert len(buys["x"]) + len(sells["x"]) == result.metrics[AGENT]["n_trades"] > 0
    for markers in (buys, sells):
        assert markers["mode"] == "markers"
        for field in ("shares", "cost", "realised P&L", "round-trip P&L", "position after"):
            assert field in markers["hovertemplate"], field
        assert all(len(row) == 6 for row in markers["customdata"])
    for name in ("Agent drawdown", "Buy and hold drawdown"):
        assert traces[name]["yaxis"] == "y3" and traces[name].get("showlegend", True), name
        assert max(traces[name]["y"]) <= 0
    nav = result.ledgers["buy_and_hold"].nav
    assert min(traces["Buy and hold drawdown"]["y"]) == pytest.approx((nav / nav.cummax() - 1).min() * 100, rel=1e-5)
    (menu,) = layout["updatemenus"]
    assert [b["args"][0]["yaxis.type"] for b in menu["buttons"]] == ["linear", "log"]


def test_rolling_sharpe_and_volatility_chart(long_written: Path, long_result: BacktestResult) -> None:
    text = (long_written / "report.html").read_text()
    data, _ = figure_json(text, "rolling-risk")
    names = {trace["name"] for trace in data}
    assert names == {f"{label(n)} {c}" for n in (AGENT, "buy_and_hold") for c in ("sharpe", "volatility")}
    days = len(long_result.prices) - 1 - 125
    assert all(len(trace["y"]) == days for trace in data)
    assert "rf 2.00%" in text  # the run's risk-free rate, in the Sharpe's label


def test_a_window_shorter_than_six_months_says_so(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    if len(result.prices) - 1 >= 126:
        pytest.skip("the session's window is long enough")
    assert "shorter than 126 trading days" in text and 'id="rolling-risk"' not in text


def test_return_distribution_compares_agent_and_buy_and_hold(written: Path, result: BacktestResult) -> None:
    data, _ = figure_json((written / "report.html").read_text(), "return-distribution")
    assert [(t["type"], t["name"]) for t in data] == [("histogram", "Agent"), ("histogram", "Buy and hold")]
    assert data[0]["xbins"] == data[1]["xbins"]
    assert len(data[1]["x"]) == len(result.prices) - 1


def test_yearly_returns_compound_the_nav(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    yearly = text[text.index('<section id="yearly">') : text.index('<section id="monthly">')]
    for name in (AGENT, "buy_and_hold"):
        nav = result.ledgers[name].nav
        year_end = nav.groupby(nav.index.year).last()
        start = pd.concat([pd.Series([nav.iloc[0]]), year_end.iloc[:-1]]).to_numpy()
        column = list((AGENT, "buy_and_hold")).index(name)
        shown = re.findall(r"<tr><th>(\d{4})</th>" + r"<td[^>]*>([^<]*)</td>" * 2, yearly)
        assert [int(year) for year, *_ in shown] == list(year_end.index)
        for (_, *cells), value in zip(shown, year_end.to_numpy() / start - 1, strict=True):
            assert cells[column] == f"{value * 100:.1f}%"
    monthly = text[text.index('<section id="monthly">') : text.index('<section id="drawdowns">')]
    assert monthly.count("<h3>") == 2 and "Buy and hold" in monthly and monthly.count(">Year</th>") == 4


def test_worst_drawdowns_section(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    section = text[text.index('<section id="drawdowns">') : text.index('<section id="distribution">')]
    nav = result.ledgers["buy_and_hold"].nav
    deepest = (nav / nav.cummax() - 1).min()
    assert f"<td>{deepest * 100:.2f}</td>" in section
    assert section.count("<h3>") == 2 and "Length (trading days)" in section


def test_trades_table_lists_every_fill(written: Path, result: BacktestResult) -> None:
    text = (written / "report.html").read_text()
    section = text[text.index('<section id="trades">') :]
    assert section.count("<tr><td>") == result.metrics[AGENT]["n_trades"]
    assert "Round-trip P&amp;L ($)" in section


def test_realised_and_open_pnl_add_up_to_the_nav_change(written: Path, result: BacktestResult) -> None:
    trades = pd.read_csv(written / "trades.csv", parse_dates=["date"])
    agent = result.ledgers[AGENT].frame
    ledger = trade_ledger(agent)
    np.testing.assert_allclose(trades["realized_pnl"], ledger["realized_pnl"].to_numpy(), equal_nan=True)
    held = agent["shares"].iloc[-1]
    open_pnl = held * (result.prices["close"].iloc[-1] - ledger["average_cost"].iloc[-1]) if held else 0.0
    change = agent["nav"].iloc[-1] - agent["nav"].iloc[0]
    assert np.nansum(trades["realized_pnl"]) + open_pnl == pytest.approx(change, rel=1e-9, abs=1e-6)


def test_tearsheet_is_quantstats_against_buy_and_hold_offline(written: Path) -> None:
    text = (written / "tearsheet.html").read_text()
    assert "QuantStats" in text and "Benchmark: BUY AND HOLD" in text
    assert "qtpylib" not in text and "quantstats.io" not in text and "<dc:date>" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert len(re.findall(r"<svg\b", text)) > 5


def test_a_tearsheet_quantstats_cannot_draw_says_why(result: BacktestResult, tmp_path: Path) -> None:
    # an agent that never trades: constant returns, which quantstats' regressions refuse
    idle = dataclasses.replace(result, ledgers={**result.ledgers, AGENT: result.ledgers["flat"]})
    target = write_report(idle, tmp_path / "run")
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES)
    text = (target / "tearsheet.html").read_text()
    assert "No quantstats tearsheet" in text and "never trades" in text and "http" not in text
    assert "The agent made no trade." in (target / "report.html").read_text()


def test_no_network_and_no_font_noise(result: BacktestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the report reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with caplog.at_level(logging.DEBUG, logger="matplotlib"):
        write_report(result, tmp_path / "run")
    assert not [r for r in caplog.records if "findfont" in r.getMessage() and r.levelno >= logging.WARNING]


def test_equity_png_ignores_the_global_style(result: BacktestResult) -> None:
    # quantstats restyles matplotlib (seaborn's theme) when imported: equity.png must not change with it
    import matplotlib
    import seaborn

    before = report_module.equity_png(result)
    with matplotlib.rc_context():
        seaborn.set_theme()
        assert report_module.equity_png(result) == before


def test_metrics_match_an_independent_computation_from_nav_csv(written: Path) -> None:
    text = (written / "nav.csv").read_text()
    document = json.loads((written / "metrics.json").read_text())
    nav = pd.read_csv(written / "nav.csv")
    # nav.csv holds shortest round-trip floats, so the recomputation sees the exact NAV series
    first_nav = text.splitlines()[1].split(",")[nav.columns.get_loc("agent_nav")]
    assert float(first_nav) == 50_000.0
    for name in STRATEGIES:
        if name == "flat":
            continue
        sharpe, max_dd = independent_sharpe_and_drawdown(nav[f"{name}_nav"].to_numpy(dtype=float))
        assert document[name]["sharpe"] == pytest.approx(sharpe, rel=1e-9, abs=1e-12), name
        assert document[name]["max_drawdown"] == pytest.approx(max_dd, rel=1e-9, abs=1e-12), name
    assert document["flat"]["sharpe"] == 0.0 and document["flat"]["max_drawdown"] == 0.0


def test_summary_rows_for_the_console(result: BacktestResult) -> None:
    header, *rows = summary_rows(result.metrics)
    assert header == ["metric", *STRATEGIES]
    assert [row[0] for row in rows][:3] == ["total_return", "annual_return", "sharpe"]
    assert all(len(row) == len(header) for row in rows)


# ------------------------------------------------------------------ reruns


def test_rerun_into_the_same_folder_is_byte_identical(result: BacktestResult, tmp_path: Path) -> None:
    target = tmp_path / "results" / "run"
    first = snapshot(write_report(result, target))
    second = snapshot(write_report(result, target))
    assert first.keys() == second.keys() == set(REPORT_FILES)
    for name in REPORT_FILES:
        assert first[name] == second[name], name
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["run"]


def test_rerun_replaces_the_folder_whole(result: BacktestResult, tmp_path: Path) -> None:
    target = tmp_path / "run"
    write_report(result, target)
    (target / "stale.txt").write_text("from an older run")
    (target / "nav.csv").write_text("garbage")
    write_report(result, target)
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES)
    assert (target / "nav.csv").read_text().startswith("date,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ------------------------------------------------------------------ failures while writing


@pytest.mark.parametrize("failing", ["equity_png", "report_page", "write_tearsheet"])
def test_failure_keeps_the_previous_report(
    failing: str, result: BacktestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results" / "run"
    write_report(result, target)
    (target / "marker.txt").write_text("the previous report")
    before = snapshot(target)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_module, failing, boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_report(result, target)
    assert snapshot(target) == before
    assert complete_folders(tmp_path) == [target]

    monkeypatch.undo()
    write_report(result, target)  # the next good run cleans up and replaces
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["run"]


@pytest.mark.parametrize("failing", ["equity_png", "report_page", "write_tearsheet"])
def test_failure_without_a_previous_report_leaves_nothing_complete(
    failing: str, result: BacktestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_module, failing, boom)
    target = tmp_path / "results" / "run"
    with pytest.raises(RuntimeError):
        write_report(result, target)
    assert not target.exists()
    assert complete_folders(tmp_path) == []


@pytest.mark.parametrize(
    ("space", "actions", "names"),
    [
        ("discrete3", [0.0, 1.0, 2.0, math.nan], ["sell", "hold", "buy", None]),
        ("target_weight", [0.75, 1.0, 0.0, math.nan], ["weight 0.75", "weight 1", "weight 0", None]),
        ("continuous", [0.3125, -0.5, math.nan], ["weight 0.3125", "weight -0.5", None]),
    ],
)
def test_action_names_follow_the_action_space(space: str, actions: list[float], names: list[str | None]) -> None:
    # a weight of 1 is "weight 1", not discrete3's "hold"; the last day decides nothing
    named = report_module.action_names(pd.Series(actions), space)
    assert [None if pd.isna(n) else n for n in named] == names
