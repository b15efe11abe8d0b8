"""Backtest artifacts: the five files and their contents, metrics that agree with nav.csv, an offline
self-contained HTML report, byte-identical reruns that replace the folder, and failed writes that
leave the previous report intact and nothing that looks complete."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.backtest import report as report_module
from finrl.backtest.engine import AGENT, BASELINES, BacktestResult
from finrl.backtest.report import REPORT_FILES, metrics_document, summary_rows, write_report
from finrl.performance import METRIC_NAMES
from unit_tests.backtest.test_engine import default_run, engine_bundle_path

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STRATEGIES = (AGENT, *BASELINES)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    from finrl.agents.bundle import load_bundle

    path = engine_bundle_path(tmp_path_factory)
    return default_run(load_bundle(path, path.parent))


@pytest.fixture(scope="module")
def written(result: BacktestResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(result, tmp_path_factory.mktemp("report") / "results" / "engine__window")


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def complete_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (hidden ones included) that holds all five report files."""
    return [p for p in root.rglob("*") if p.is_dir() and all((p / name).is_file() for name in REPORT_FILES)]


def independent_sharpe_and_drawdown(nav: np.ndarray) -> tuple[float, float]:
    r = nav[1:] / nav[:-1] - 1
    return float(r.mean() / r.std(ddof=1) * math.sqrt(252)), float(np.min(nav / np.maximum.accumulate(nav) - 1))


# ------------------------------------------------------------------ the files


def test_exactly_the_five_files(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(REPORT_FILES)
    assert sorted(REPORT_FILES) == sorted(["metrics.json", "nav.csv", "trades.csv", "equity.png", "report.html"])
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
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)  # nothing fetched from anywhere
    assert text.lstrip().lower().startswith("<!doctype html>")
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert match and base64.b64decode(match.group(1)) == (written / "equity.png").read_bytes()
    # the metric table: a header per strategy, a row per metric, the agent's Sharpe as shown
    for name in STRATEGIES:
        assert f"<th>{name}</th>" in text
    for metric in METRIC_NAMES:
        assert f"<tr><td>{metric}</td>" in text, metric
    assert f"<td>{result.metrics[AGENT]['sharpe']:.3f}</td>" in text
    assert "Monthly returns" in text and "DATA LEAKAGE" not in text


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


@pytest.mark.parametrize("failing", ["equity_png", "report_html"])
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


@pytest.mark.parametrize("failing", ["equity_png", "report_html"])
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
