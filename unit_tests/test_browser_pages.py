"""The HTML pages a user opens, opened in a real headless Chromium (Debian's ``chromium``).

``report.html`` and ``tearsheet.html`` of a backtest and the ``runs compare`` page load from disk
with no console error, no uncaught exception and no request that leaves the machine, and their
charts hold the data (plotly's ``data`` on each chart div, read in the page). Skips where no
browser is installed, unless FINRL_BROWSER_REQUIRED=1 (.ci/run, which installs one), where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.browser import Chromium, PageVisit, find_chromium
from unit_tests.conftest import isolated_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# points per plotly chart, by trace name: from the traces plotly drew (``_fullData``: arrays decoded, where
# ``data`` may still hold the base64 form plotly.py writes numbers in)
PLOTLY_TRACES = """
Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => Object.fromEntries(
    (div._fullData || []).map((trace, i) => [trace.name || `trace ${i}`,
        Math.max((trace.x || []).length || 0, (trace.y || []).length || 0)])))
"""
RENDERED_SVG = "Array.from(document.querySelectorAll('.js-plotly-plot .main-svg')).length"
IMAGES = """Array.from(document.images).map(img => img.complete && img.naturalWidth > 0)"""
INLINE_SVGS = "document.querySelectorAll('svg').length"
TEXT = "document.body.innerText"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        message = "no headless browser: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("FINRL_BROWSER_REQUIRED") == "1":
            pytest.fail(message + "; FINRL_BROWSER_REQUIRED=1")
        pytest.skip(message)
    chromium = Chromium(executable)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory, sample_bundles: dict[str, Path]) -> dict[str, Path]:
    """r1 and r2 (tiny sample bundles) backtested into a results folder of this module."""
    root = tmp_path_factory.mktemp("browser")
    models = root / "models"
    for name, path in sample_bundles.items():
        shutil.copytree(path, models / name)
    folders = ["--models-dir", models, "--results-dir", root / "results", "--datasets-dir", root / "datasets"]
    result = CliRunner().invoke(
        app,
        [str(a) for a in ["backtest", "--model", "r1", "--model", "r2", *folders]],
        env=isolated_env(root),  # a module fixture runs before the per-test isolation
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output + result.stderr
    return {"root": root, "models": models, "results": root / "results", **{
        name: next((root / "results").glob(f"{name}__*")) for name in sample_bundles
    }}  # fmt: skip


def assert_clean(visit: PageVisit, page: Path) -> None:
    assert visit.errors == [], f"{page.name}: {visit.errors}"
    assert visit.remote_requests == [], f"{page.name} reached the network: {visit.remote_requests}"


def test_report_renders_every_chart_with_its_data_offline(browser: Chromium, backtested: dict[str, Path]) -> None:
    report = backtested["r1"] / "report.html"
    visit = browser.visit(report, {"charts": PLOTLY_TRACES, "svg": RENDERED_SVG, "text": TEXT})
    assert_clean(visit, report)
    charts = visit.values["charts"]
    days = len(pd.read_csv(backtested["r1"] / "nav.csv"))
    assert charts, "no plotly chart rendered"
    assert visit.values["svg"] >= len(charts)  # each chart drew its SVG, not only holds data
    trades = pd.read_csv(backtested["r1"] / "trades.csv")
    equity, rolling, distribution = charts
    curves = ("Agent", "Buy and hold", "Flat (cash)", "SMA crossover (30/60)")
    curves += ("Agent drawdown", "Buy and hold drawdown")
    assert {name: equity.get(name) for name in curves} == dict.fromkeys(curves, days), equity
    assert equity["Agent position (% of equity)"] == days
    assert equity["Agent buys"] + equity["Agent sells"] == len(trades)  # one marker per fill
    assert set(rolling.values()) == {days - 126}  # a 126-day window from each day that has one
    assert distribution == {"Agent": days - 1, "Buy and hold": days - 1}  # daily returns
    for heading in ("Rolling", "Drawdown", "Monthly", "Yearly", "Trades"):
        assert heading.lower() in visit.values["text"].lower(), heading


def test_quantstats_tearsheet_renders_offline(browser: Chromium, backtested: dict[str, Path]) -> None:
    tearsheet = backtested["r1"] / "tearsheet.html"
    visit = browser.visit(tearsheet, {"images": IMAGES, "svgs": INLINE_SVGS, "text": TEXT})
    assert_clean(visit, tearsheet)
    assert all(visit.values["images"]), "an image of the tearsheet did not load"
    assert len(visit.values["images"]) + visit.values["svgs"] >= 5, visit.values  # its figures are there
    assert "sharpe" in visit.values["text"].lower()


def test_compare_page_overlays_both_runs_offline(browser: Chromium, backtested: dict[str, Path]) -> None:
    page = backtested["root"] / "compare.html"
    folders = ["--models-dir", backtested["models"], "--results-dir", backtested["results"]]
    result = CliRunner().invoke(
        app, [str(a) for a in ["runs", "compare", "r1", "r2", "--output", page, *folders]], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output + result.stderr
    visit = browser.visit(page, {"charts": PLOTLY_TRACES, "svg": RENDERED_SVG, "text": TEXT})
    assert_clean(visit, page)
    (chart,) = visit.values["charts"]
    days = len(pd.read_csv(backtested["r1"] / "nav.csv"))
    for run in ("r1", "r2"):
        assert any(run in name and points == days for name, points in chart.items()), chart
    assert any("buy" in name.lower() and points == days for name, points in chart.items()), chart
    assert visit.values["svg"] >= 1
    assert "r1" in visit.values["text"] and "r2" in visit.values["text"]
