"""Backtest artifacts: metrics.json, nav.csv, trades.csv, equity.png and an offline report.html.

A report is written into a hidden staging folder and renamed into place only when every file
exists, so a failed run never leaves a folder that looks complete; a rerun replaces the old one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.fileio import replace_directory
from finrl.meta.env.execution import COST_COMPONENTS
from finrl.performance import COST_METRICS, METRIC_NAMES, drawdown
from finrl.trade.risk import RiskOutcome

ACTION_NAMES = {0: "sell", 1: "hold", 2: "buy"}
REPORT_FILES = ("metrics.json", "nav.csv", "trades.csv", "equity.png", "report.html")
PERCENT_METRICS = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "win_rate", "exposure"}


def action_names(actions: pd.Series, action_space: str) -> pd.Series:
    """sell / hold / buy for ``discrete3``; for the weight spaces the action is the decided weight: "weight 0.75"."""
    if action_space == "discrete3":
        return actions.map(ACTION_NAMES)
    return actions.map(lambda weight: f"weight {weight:g}", na_action="ignore")


def nav_table(result: BacktestResult) -> pd.DataFrame:
    agent = result.ledgers[AGENT].frame
    table = pd.DataFrame(
        {
            "open": result.prices["open"],
            "price": result.prices["close"],
            "action": agent["action"],
            "action_name": action_names(agent["action"], result.config.action_space),
            "position": agent["position"].astype(int),
            "shares": agent["shares"],
            "fill_price": agent["fill_price"],
            "costs": agent["costs"],
            "cash": agent["cash"],
        },
        index=agent.index,
    )
    for name, ledger in result.ledgers.items():
        table[f"{name}_nav"] = ledger.nav
    return table


def trades_table(result: BacktestResult) -> pd.DataFrame:
    agent = result.ledgers[AGENT].frame
    delta = agent["shares"].diff()
    filled = agent[agent["fill_price"].notna()]
    return pd.DataFrame(
        {
            "side": np.where(delta[filled.index] > 0, "buy", "sell"),
            "shares": delta[filled.index].abs(),
            "fill_price": filled["fill_price"],
            "notional": delta[filled.index].abs() * filled["fill_price"],
            "costs": filled["costs"],  # the sum of the components that follow
            **{name: filled[f"cost_{name}"] for name in COST_COMPONENTS},
            "position_after": filled["position"].astype(int),
            "nav": filled["nav"],
        },
        index=filled.index,
    )


def monthly_returns(nav: pd.Series) -> pd.DataFrame:
    """Year x month table of returns (the first month counts from the window's start)."""
    if not isinstance(nav.index, pd.DatetimeIndex):
        raise TypeError(f"monthly returns need a NAV indexed by date, not {type(nav.index).__name__}")
    month_end = nav.groupby(nav.index.to_period("M")).last()
    start = pd.Series([nav.iloc[0]], index=[month_end.index[0] - 1])
    returns = pd.concat([start, month_end]).pct_change().iloc[1:]
    months = pd.PeriodIndex(returns.index)  # already one: pandas-stubs type a concat's index as Index
    table = pd.DataFrame({"year": months.year, "month": months.month, "r": returns.to_numpy()})
    return table.pivot(index="year", columns="month", values="r")


def equity_png(result: BacktestResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agent = result.ledgers[AGENT].frame
    bench = result.ledgers["buy_and_hold"].nav
    fig, (ax_nav, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, dpi=100
    )
    ax_nav.plot(agent.index, agent["nav"], label="agent", color="#1f77b4", lw=1.4)
    ax_nav.plot(bench.index, bench, label="buy and hold", color="#7f7f7f", lw=1.1)
    delta = agent["shares"].diff()
    buys, sells = agent.index[delta > 0], agent.index[delta < 0]
    ax_nav.scatter(buys, agent.loc[buys, "nav"], marker="^", color="#2ca02c", s=28, label="buy", zorder=3)
    ax_nav.scatter(sells, agent.loc[sells, "nav"], marker="v", color="#d62728", s=28, label="sell", zorder=3)
    ax_nav.set_ylabel("NAV")
    ax_nav.set_title(f"{result.bundle.run_name}: {result.window.start} .. {result.window.end}")
    ax_nav.legend(loc="upper left")
    ax_nav.grid(alpha=0.3)
    ax_dd.fill_between(agent.index, drawdown(agent["nav"]) * 100, 0, color="#1f77b4", alpha=0.35, label="agent")
    ax_dd.plot(bench.index, drawdown(bench) * 100, color="#7f7f7f", lw=0.9, label="buy and hold")
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # no timestamps: reruns are byte-identical
    plt.close(fig)
    return buffer.getvalue()


def _format(name: str, value: float) -> str:
    if name in PERCENT_METRICS:
        return f"{value:.2%}"
    if name in ("n_trades",):
        return f"{int(value)}"
    if name == "total_costs" or name in COST_METRICS:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def report_html(result: BacktestResult, png: bytes) -> str:
    names = list(result.metrics)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{m}</td>" + "".join(f"<td>{_format(m, result.metrics[n][m])}</td>" for n in names) + "</tr>"
        for m in METRIC_NAMES
    )
    months = monthly_returns(result.ledgers[AGENT].nav)
    month_head = "".join(f"<th>{m}</th>" for m in range(1, 13))
    month_rows = ""
    for year, values in months.iterrows():
        cells = ""
        for month in range(1, 13):
            value = values.get(month, np.nan)
            if pd.isna(value):
                cells += "<td></td>"
            else:
                shade = min(abs(value) / 0.08, 1.0)
                colour = f"rgba(44,160,44,{shade:.2f})" if value >= 0 else f"rgba(214,39,40,{shade:.2f})"
                cells += f'<td style="background:{colour}">{value:.1%}</td>'
        month_rows += f"<tr><th>{year}</th>{cells}</tr>"
    meta = result.meta()
    data = meta["data"]
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in [*meta["warnings"], *data.get("warnings", [])])
    costs = meta["execution"]["execution"]["costs"]
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {html.escape(result.bundle.run_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }} .warn {{ color: #b00; font-weight: bold; }}
</style></head><body>
<h1>Backtest: {html.escape(result.bundle.run_name)}</h1>
<p>Test window <b>{meta["test_start"]} .. {meta["test_end"]}</b> ({meta["days"]} trading days).
Trained on {meta["train_window"]["start"]} .. {meta["train_window"]["end"]}.
Data: {html.escape(str(data.get("label", data.get("source", "?"))))}.
Fills at the {html.escape(meta["execution"]["execution"]["fill_at"].replace("_", " "))};
costs: commission {costs["commission_bps"]} bp, spread {costs["spread_bps"]} bp,
slippage {costs["slippage_bps"]} bp, square-root impact coefficient {costs["impact_coef"]},
on sells SEC fee ${costs["sec_fee_per_million"]} per million and FINRA TAF ${costs["finra_taf_per_share"]}
a share (at most ${costs["finra_taf_max"]} a trade).</p>
<p>{html.escape(risk_sentence(meta["risk"]))}</p>
{warnings}
<h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>
<h2>Equity and drawdown</h2><img alt="equity curve" width="1100" src="data:image/png;base64,{image}">
<h2>Monthly returns (agent)</h2><table><tr><th>year</th>{month_head}</tr>{month_rows}</table>
</body></html>
"""


def risk_sentence(risk: dict[str, Any]) -> str:
    """The agent's risk limits in words, and what they did (metrics.json's ``meta.risk`` has every event)."""
    limits = risk["limits"]
    if limits is None:
        return "Risk limits: off (the unconstrained policy)."
    return (
        f"Risk limits on the agent, as the paper trader applies them (the baselines are unconstrained): "
        f"max drawdown {limits['max_drawdown']:.0%}, max daily loss {limits['max_daily_loss']:.1%}, "
        f"max position {limits['max_position_fraction']:g} x equity, max order {limits['max_order_notional']:,.0f}: "
        f"{RiskOutcome.of(risk['events']).summary()}."
    )


def write_report(result: BacktestResult, directory: Path) -> Path:
    """Write every artifact for ``result`` into ``directory`` (replaced whole, atomically)."""
    png = equity_png(result)
    document = {**result.metrics, "meta": result.meta()}

    def fill(staging: Path) -> None:
        (staging / "metrics.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        nav_table(result).to_csv(staging / "nav.csv", index_label="date")  # shortest exact (round-trip) floats
        trades_table(result).to_csv(staging / "trades.csv", index_label="date")
        (staging / "equity.png").write_bytes(png)
        (staging / "report.html").write_text(report_html(result, png))

    return replace_directory(directory, fill)


def summary_rows(metrics: dict[str, dict[str, float]]) -> list[list[str]]:
    """Rows (metric, agent, baselines...) for the console table."""
    names = list(metrics)
    shown = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar", "exposure", "n_trades")
    return [["metric", *names]] + [[m, *(_format(m, metrics[n][m]) for n in names)] for m in shown]


def metrics_document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((Path(path) / "metrics.json").read_text())
    return document
