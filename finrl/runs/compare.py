"""Several runs side by side: one table from their manifests and latest backtest reports, and an offline
HTML page overlaying their equity curves with buy-and-hold's.

Only what is comparable is compared: each run is charted on the window of its own latest backtest, and
runs tested on different windows (or with a buy-and-hold that differs on the same window: other costs)
are said to be so, on the console and on the page. A run never backtested is named with the command
that would backtest it and left out of the chart.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finrl.errors import ConfigError, FinRLError
from finrl.fileio import atomic_write_text, filesystem_errors
from finrl.runs.catalog import AGENT, BUY_AND_HOLD, BacktestReport, Run, Span

COMPARE_FILE = "compare.html"
CHART_DIV = "compare-equity"  # a fixed id: a rerun writes the same bytes
COLUMNS = (
    ("run", "run"),
    ("seed", "seed"),
    ("train", "train"),
    ("validation", "validation"),
    ("timesteps", "timesteps"),
    ("val_sharpe", "val Sharpe"),
    ("test", "test window"),
    ("total_return", "total return"),
    ("sharpe", "Sharpe"),
    ("max_drawdown", "max drawdown"),
    ("bh_total_return", "B&H return"),
    ("bh_sharpe", "B&H Sharpe"),
    ("excess_return", "vs B&H"),
)


@dataclass(frozen=True)
class Comparison:
    runs: tuple[Run, ...]
    warnings: tuple[str, ...]

    @property
    def backtested(self) -> tuple[Run, ...]:
        return tuple(run for run in self.runs if run.last_report is not None)

    def rows(self) -> list[dict[str, Any]]:
        """One row per run: its setup and its latest backtest's agent and buy-and-hold metrics (None: untested)."""
        return [_row(run) for run in self.runs]

    def formatted_rows(self) -> list[list[str]]:
        return [[_format(key, row[key]) for key, _ in COLUMNS] for row in self.rows()]


def compare_runs(runs: Sequence[Run]) -> Comparison:
    """The comparison of two or more distinct runs, with every caveat as a warning line."""
    names = [run.name for run in runs]
    if len(runs) < 2:
        raise ConfigError("compare needs two runs or more: spy-rl runs compare A B ...")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"each run once: {', '.join(repeated)} named more than once")
    warnings = []
    for run in runs:
        if run.last_report is None:
            warnings.append(f"{run.name}: not backtested — run spy-rl backtest --model {run.name}")
    tested = [run for run in runs if run.last_report is not None]
    windows = {str(_report(run).test) for run in tested}
    if len(windows) > 1:
        shown = "; ".join(f"{run.name} {_report(run).test}" for run in tested)
        warnings.append(
            f"the runs' latest backtests cover different test windows ({shown}): their metrics are not "
            "comparable with each other; each is charted on its own window, against buy-and-hold there"
        )
    warnings.extend(_terms_warnings(tested))
    for run in tested:
        warnings.extend(f"{run.name}'s backtest: {warning}" for warning in _report(run).warnings)
    return Comparison(tuple(runs), tuple(warnings))


def _terms_warnings(tested: Sequence[Run]) -> list[str]:
    """Backtests on different terms: Sharpe at different risk-free rates, or a buy-and-hold that differs
    on the same window (other costs, fill rule or data): their numbers do not line up."""
    warnings = []
    rates = {run.name: _report(run).risk_free_rate for run in tested}
    if len(set(rates.values())) > 1:
        shown = "; ".join(f"{name} {'unknown' if rate is None else f'{rate:.2%}'}" for name, rate in rates.items())
        warnings.append(f"the backtests' Sharpe ratios use different risk-free rates ({shown}): not comparable")
    by_window: dict[str, list[Run]] = {}
    for run in tested:
        by_window.setdefault(str(_report(run).test), []).append(run)
    for window, group in by_window.items():
        benchmark = {run.name: _report(run).metric(BUY_AND_HOLD, "total_return") for run in group}
        if len({None if value is None else round(value, 12) for value in benchmark.values()}) > 1:
            shown = "; ".join(f"{name} {value:.2%}" for name, value in benchmark.items() if value is not None)
            warnings.append(
                f"buy-and-hold differs between the backtests on {window} ({shown}): they ran under other "
                "costs, fill rule or data; each run is measured against its own"
            )
    return warnings


def default_output(results_dir: Path, names: Sequence[str]) -> Path:
    """``<results>/compare__<digest of the sorted names>/compare.html``: the same runs, the same page."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]
    return Path(results_dir) / f"compare__{digest}" / COMPARE_FILE


def write_comparison(comparison: Comparison, output: Path, *, flag: str = "--output") -> Path:
    """Write the page atomically (a rerun replaces it whole); the page's path."""
    page = comparison_html(comparison, output.parent)
    with filesystem_errors(output.parent, flag=flag):
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, page)
    return output


def comparison_html(comparison: Comparison, folder: Path) -> str:
    """The page to be written into ``folder`` (the links to each run's report are relative to it)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    navs = {run.name: _nav(_report(run)) for run in comparison.backtested}  # each nav.csv read once
    for name, nav in navs.items():
        figure.add_trace(go.Scatter(x=nav.index, y=nav[AGENT], mode="lines", name=name))
    for label, series in _buy_and_hold_curves(comparison.backtested, navs):
        figure.add_trace(go.Scatter(x=series.index, y=series, mode="lines", name=label, line={"dash": "dot"}))
    figure.update_layout(
        title="Equity on each run's latest test window (NAV / starting NAV)",
        xaxis_title="date",
        yaxis_title="growth of 1",
        template="plotly_white",
        height=520,
        legend={"orientation": "h", "y": -0.15},
    )
    chart = (
        figure.to_html(full_html=False, include_plotlyjs=True, div_id=CHART_DIV, config={"displaylogo": False})
        if comparison.backtested
        else "<p>No run has a backtest report: nothing to chart.</p>"
    )
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in comparison.formatted_rows()
    )
    notes = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in comparison.warnings)
    reports = "".join(
        f'<li>{html.escape(run.name)}: <a href="{html.escape(_link(_report(run).html, folder))}">'
        f"{html.escape(str(_report(run).html))}</a></li>"
        for run in comparison.backtested
    )
    title = "Runs compared: " + ", ".join(run.name for run in comparison.runs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }} .warn {{ color: #b00; font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Validation Sharpe: the kept model's, on its validation window. Test metrics: each run's latest backtest
report; B&amp;H is buy-and-hold over the same window with the same execution and costs; "vs B&amp;H" is the
agent's total return minus buy-and-hold's.</p>
{notes}
<table><tr>{head}</tr>{body}</table>
{chart}
<h2>Reports</h2><ul>{reports}</ul>
</body></html>
"""


def _link(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` where it can be (a page moved with its results folder keeps its links)."""
    try:
        return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return target.resolve().as_uri()


def _report(run: Run) -> BacktestReport:
    report = run.last_report
    if report is None:  # callers pass backtested runs only
        raise ValueError(f"{run.name} has no backtest report")
    return report


def _row(run: Run) -> dict[str, Any]:
    report = run.last_report
    agent = {k: report.metric(AGENT, k) if report else None for k in ("total_return", "sharpe", "max_drawdown")}
    bench = {k: report.metric(BUY_AND_HOLD, k) if report else None for k in ("total_return", "sharpe")}
    excess = (
        agent["total_return"] - bench["total_return"]
        if agent["total_return"] is not None and bench["total_return"] is not None
        else None
    )
    return {
        "run": run.name + (" (ensemble)" if run.kind == "ensemble" else ""),
        "seed": run.seeds or None,
        "train": run.train,
        "validation": run.validation,
        "timesteps": run.timesteps,
        "val_sharpe": run.validation_sharpe,
        "test": report.test if report else "not backtested",
        **agent,
        "bh_total_return": bench["total_return"],
        "bh_sharpe": bench["sharpe"],
        "excess_return": excess,
    }


def _format(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in ("total_return", "max_drawdown", "bh_total_return", "excess_return"):
        return f"{value:+.2%}" if key == "excess_return" else f"{value:.2%}"
    if key in ("val_sharpe", "sharpe", "bh_sharpe"):
        return f"{value:.3f}"
    if key == "timesteps":
        return f"{value:,}"
    return str(value)


def _nav(report: BacktestReport) -> Any:
    """The report's agent and buy-and-hold NAV, each divided by its first value."""
    import pandas as pd

    try:
        frame = pd.read_csv(report.nav, index_col="date", parse_dates=["date"])
        navs = frame[[f"{AGENT}_nav", f"{BUY_AND_HOLD}_nav"]]
    except (OSError, ValueError, KeyError) as exc:  # pandas' parser errors are ValueErrors
        raise FinRLError(f"cannot read {report.nav}: {exc}: rerun spy-rl backtest --model {report.model}") from exc
    navs = navs / navs.iloc[0]
    navs.columns = [AGENT, BUY_AND_HOLD]
    return navs


def _buy_and_hold_curves(runs: Sequence[Run], navs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Buy-and-hold once per test window; once per run where the same window's curves differ (other costs).

    ``navs``: each run's nav.csv as :func:`_nav` reads it."""
    import numpy as np

    by_window: dict[Span, list[tuple[str, Any]]] = {}
    for run in runs:
        by_window.setdefault(_report(run).test, []).append((run.name, navs[run.name][BUY_AND_HOLD]))
    curves = []
    several = len(by_window) > 1
    for window, series in by_window.items():
        first = series[0][1]
        same = all(len(s) == len(first) and np.allclose(s.to_numpy(), first.to_numpy()) for _, s in series)
        label = f"buy and hold {window}" if several else "buy and hold"
        if same:
            curves.append((label, first))
        else:
            curves.extend((f"{label} (as {name}'s backtest)", s) for name, s in series)
    return curves
