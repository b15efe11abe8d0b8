"""report.html: one offline page (plotly.js embedded once, no network reference) for a backtest.

Sections: the terms of the run (windows, data, execution, costs, risk limits, warnings), metrics with
their units, the interactive equity chart (position band, fills, log toggle, drawdowns), rolling
six-month Sharpe and volatility, yearly and monthly returns of the agent and buy-and-hold, the worst
drawdowns, the daily return distribution and the trades. Every text is escaped; figure ids are fixed,
so the same result gives the same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from finrl.backtest.charts import (
    distribution_figure,
    dollars,
    equity_figure,
    figure_html,
    label,
    plotly_js,
    rolling_figure,
    share_count,
)
from finrl.backtest.engine import AGENT, BacktestResult
from finrl.backtest.tables import (
    ROLLING_DAYS,
    WORST_DRAWDOWNS,
    monthly_table,
    return_stats,
    worst_drawdowns,
    yearly_table,
)
from finrl.meta.env.execution import COST_COMPONENTS
from finrl.performance import COST_METRICS, METRIC_NAMES, PERCENT_METRICS

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
COMPARED = (AGENT, "buy_and_hold")
COST_LABELS = {"sec_fee": "SEC fee", "taf": "FINRA TAF"}


def metric_label(name: str, risk_free_rate: float) -> str:
    """A metric's name as a reader wants it, with its unit (currency: the data's, US dollars)."""
    rf = f"rf {risk_free_rate:.2%}"
    labels = {
        "total_return": "Total return (%)",
        "annual_return": "Annual return, CAGR (%)",
        "annual_volatility": "Annual volatility (%)",
        "sharpe": f"Sharpe ratio (annualised, {rf})",
        "sortino": f"Sortino ratio (annualised, {rf})",
        "max_drawdown": "Max drawdown (%)",
        "calmar": "Calmar ratio (CAGR / max drawdown)",
        "win_rate": "Win rate (% of days in the market that gained)",
        "n_trades": "Trades (fills)",
        "turnover": "Turnover (traded notional / mean NAV, x)",
        "exposure": "Exposure (% of days holding a position)",
        "total_costs": "Total costs ($)",
        "alpha": f"Alpha vs buy-and-hold (annualised %, {rf})",
        "beta": "Beta vs buy-and-hold",
    }
    for component in COST_COMPONENTS:
        labels[f"costs_{component}"] = f"Costs: {COST_LABELS.get(component, component)} ($)"
    return labels.get(name, name.replace("_", " "))


def format_metric(name: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if name in PERCENT_METRICS:
        return f"{value * 100:,.2f}"
    if name == "n_trades":
        return f"{int(value):,d}"
    if name == "total_costs" or name in COST_METRICS:
        return f"{value:,.2f}"
    return f"{value:,.3f}"


def _percent(value: float, digits: int = 2) -> str:
    return "" if not math.isfinite(value) else f"{value * 100:.{digits}f}%"


def _shaded(value: float, scale: float = 0.08) -> str:
    """A return cell tinted green or red by its size."""
    if not math.isfinite(value):
        return "<td></td>"
    shade = min(abs(value) / scale, 1.0) * 0.6
    colour = f"rgba(26,150,65,{shade:.2f})" if value >= 0 else f"rgba(215,25,28,{shade:.2f})"
    return f'<td style="background:{colour}">{_percent(value, 1)}</td>'


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    """Header cells are escaped here; body cells arrive as ready ``<td>``/``<th>`` markup."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: object) -> str:
    return f"<td>{html.escape(str(text))}</td>"


def _day(value: Any) -> str:
    return "" if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def metrics_section(result: BacktestResult) -> str:
    names = list(result.metrics)
    rows = [
        [_td(metric_label(m, result.risk_free_rate)), *(_td(format_metric(m, result.metrics[n][m])) for n in names)]
        for m in METRIC_NAMES
    ]
    return _table(["Metric", *(label(n) for n in names)], rows, "metrics")


def yearly_section(result: BacktestResult) -> str:
    table = yearly_table({name: result.ledgers[name].nav for name in COMPARED})
    rows = [
        [f"<th>{int(year)}</th>", *(_shaded(float(table.loc[year, n]), 0.3) for n in COMPARED),
         _td(f"{(float(table.loc[year, AGENT]) - float(table.loc[year, 'buy_and_hold'])) * 100:+.2f}")]
        for year in table.index
    ]  # fmt: skip
    return _table(["Year", *(label(n) for n in COMPARED), "Agent - buy and hold (pp)"], rows, "returns")


def monthly_section(result: BacktestResult) -> str:
    parts = []
    for name in COMPARED:
        table = monthly_table(result.ledgers[name].nav)
        rows = [
            [f"<th>{year}</th>", *(_shaded(float(v)) for v in values[:12]),
             _shaded(float(values[12]), 0.3).replace("<td", '<td class="total"', 1)]
            for year, values in zip(table.index, table.to_numpy(dtype=float), strict=True)
        ]  # fmt: skip
        parts.append(f"<h3>{html.escape(label(name))}</h3>" + _table(["Year", *MONTHS, "Year"], rows, "returns"))
    return "".join(parts)


def drawdown_section(result: BacktestResult) -> str:
    parts = []
    for name in COMPARED:
        table = worst_drawdowns(result.ledgers[name].nav)
        rows = [
            [_td(i + 1), _td(_day(row["peak"])), _td(_day(row["trough"])),
             _td(_day(row["recovery"]) if row["recovered"] else "not recovered"),
             _td(f"{float(row['depth']) * 100:.2f}"), _td(int(row["length_days"]))]
            for i, row in enumerate(table.to_dict("records"))
        ]  # fmt: skip
        body = (
            _table(["#", "Peak", "Trough", "Recovery", "Depth (%)", "Length (trading days)"], rows)
            if rows
            else "<p>No drawdown in the window.</p>"
        )
        parts.append(f"<h3>{html.escape(label(name))}</h3>{body}")
    return "".join(parts)


def distribution_stats_section(result: BacktestResult) -> str:
    stats = {name: return_stats(result.ledgers[name].nav) for name in COMPARED}
    shown: list[tuple[str, str, Callable[[float], str]]] = [
        ("mean", "Mean daily return (%)", lambda v: _percent(v, 3)),
        ("std", "Daily standard deviation (%)", lambda v: _percent(v, 3)),
        ("skew", "Skew", lambda v: f"{v:.2f}"),
        ("kurtosis", "Excess kurtosis", lambda v: f"{v:.2f}"),
        ("best", "Best day (%)", _percent),
        ("worst", "Worst day (%)", _percent),
    ]
    rows = [[_td(text), *(_td(fmt(stats[n][key])) for n in COMPARED)] for key, text, fmt in shown]
    return _table(["Daily returns", *(label(n) for n in COMPARED)], rows, "metrics")


def trades_section(trades: pd.DataFrame) -> str:
    """The agent's fills (:func:`agent_trades`) as a table, with a round-trip summary."""
    if trades.empty:
        return "<p>The agent made no trade.</p>"
    closed = trades["round_trip_pnl"].dropna()
    summary = (
        f"<p>{len(trades):,d} fills in {int(trades['round_trip'].max()):,d} round trips ({len(closed):,d} closed"
        + (f", {(closed > 0).mean():.0%} profitable, average {dollars(float(closed.mean()))}" if len(closed) else "")
        + ").</p>"
    )

    def money(value: float) -> str:
        return "" if not np.isfinite(value) else f"{value:,.2f}"

    rows = [
        [_td(_day(row["date"])), _td(row["side"]), _td(share_count(row["shares"])), _td(money(row["fill_price"])),
         _td(money(row["notional"])), _td(money(row["costs"])), _td(share_count(row["position_shares"])),
         _td(money(row["realized_pnl"])), _td(int(row["round_trip"])), _td(money(row["round_trip_pnl"]))]
        for row in trades.reset_index().to_dict("records")
    ]  # fmt: skip
    header = ["Date", "Side", "Shares", "Fill price ($)", "Notional ($)", "Costs ($)", "Position after (shares)",
              "Realised P&L ($)", "Round trip", "Round-trip P&L ($)"]  # fmt: skip
    return summary + '<div class="scroll">' + _table(header, rows, "trades") + "</div>"


def header_section(result: BacktestResult, risk_sentence: str) -> str:
    meta = result.meta()
    data = meta["data"]
    execution = meta["execution"]
    fill = execution["execution"]
    costs = fill["costs"]
    validation = meta["validation_window"]

    def window(w: dict[str, str] | None) -> str:
        return "none" if w is None else f"{w['start']} \N{EN DASH} {w['end']}"

    terms = [
        ("Test window", f"{meta['test_start']} \N{EN DASH} {meta['test_end']} ({meta['days']:,d} trading days)"),
        ("Training window", window(meta["train_window"])),
        ("Validation window", window(validation)),
        ("Data", str(data.get("label", data.get("source", "?")))),
        ("Initial capital", f"${execution['initial_cash']:,.2f}"),
        ("Action space", f"{execution['action_space']} (position up to {fill['position_fraction']:g} x equity"
         f"{', shorts allowed' if fill['allow_short'] else ''}"
         f"{', fractional shares' if fill['fractional_shares'] else ', whole shares'})"),
        ("Fills", f"at the {fill['fill_at'].replace('_', ' ')}"),
        ("Costs", f"commission {costs['commission_bps']:g} bp, spread {costs['spread_bps']:g} bp (half a fill), "
         f"slippage {costs['slippage_bps']:g} bp, square-root impact coefficient {costs['impact_coef']:g}; on sells "
         f"SEC fee ${costs['sec_fee_per_million']:g} per million and FINRA TAF ${costs['finra_taf_per_share']:g} a "
         f"share (at most ${costs['finra_taf_max']:g} a trade)"),
        ("Risk-free rate", f"{result.risk_free_rate:.2%} a year (Sharpe, Sortino, alpha)"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in terms)
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in [*meta["warnings"], *data.get("warnings", [])])
    return f'<table class="terms">{rows}</table><p>{html.escape(risk_sentence)}</p>{warnings}'


def report_page(result: BacktestResult, risk_sentence: str, trades: pd.DataFrame) -> str:
    """The whole page; ``trades``: :func:`agent_trades` of ``result``."""
    name = html.escape(result.bundle.run_name)
    rolling = rolling_figure(result)
    rolling_html = (
        figure_html(rolling, "rolling-risk")
        if rolling is not None
        else f"<p>The test window is shorter than {ROLLING_DAYS} trading days: no rolling statistics.</p>"
    )
    sections = [
        ("terms", "Terms of the run", header_section(result, risk_sentence)),
        ("metrics", "Metrics", metrics_section(result)),
        ("equity", "Equity, position, trades and drawdown", figure_html(equity_figure(result, trades), "equity-chart")),
        ("rolling", f"Rolling {ROLLING_DAYS}-day Sharpe ratio and volatility", rolling_html),
        ("yearly", "Yearly returns", yearly_section(result)),
        ("monthly", "Monthly returns", monthly_section(result)),
        ("drawdowns", f"Worst {WORST_DRAWDOWNS} drawdowns", drawdown_section(result)),
        ("distribution", "Distribution of daily returns",
         figure_html(distribution_figure(result), "return-distribution") + distribution_stats_section(result)),
        ("trades", "Trades (the agent's fills)", trades_section(trades)),
    ]  # fmt: skip
    toc = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = "\n".join(
        f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>' for key, title, content in sections
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f5f5f5; }} td:first-child {{ text-align: left; }}
table.terms th {{ text-align: left; }} table.terms td {{ text-align: left; }}
td.total {{ font-weight: bold; }} .warn {{ color: #b00; font-weight: bold; }}
.scroll {{ max-height: 32em; overflow-y: auto; }} nav {{ margin: 1em 0; }}
</style>
<script type="text/javascript">{plotly_js()}</script>
</head><body>
<h1>Backtest: {name}</h1>
<p>Agent vs buy-and-hold, flat and SMA crossover on the same data, execution and costs.
The quantstats tearsheet of the same run is <a href="tearsheet.html">tearsheet.html</a>.</p>
<nav>{toc}</nav>
{body}
</body></html>
"""
