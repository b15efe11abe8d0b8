"""Backtest artifacts: metrics.json, nav.csv, trades.csv, equity.png, an offline report.html and tearsheet.html.

report.html is the quant's page (:mod:`finrl.backtest.report_html`, charts in :mod:`finrl.backtest.charts`,
numbers in :mod:`finrl.backtest.tables`); tearsheet.html is quantstats' (:mod:`finrl.backtest.tearsheet`).

A report is written into a hidden staging folder and renamed into place only when every file
exists, so a failed run never leaves a folder that looks complete; a rerun replaces the old one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrl.backtest.charts import equity_png
from finrl.backtest.engine import AGENT, BacktestResult
from finrl.backtest.report_html import report_page
from finrl.backtest.tables import agent_trades
from finrl.backtest.tearsheet import write_tearsheet
from finrl.fileio import replace_directory
from finrl.meta.env.execution import COST_COMPONENTS
from finrl.performance import COST_METRICS, PERCENT_METRICS
from finrl.trade.risk import RiskOutcome

ACTION_NAMES = {0: "sell", 1: "hold", 2: "buy"}
REPORT_FILES = ("metrics.json", "nav.csv", "trades.csv", "equity.png", "report.html", "tearsheet.html")


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


def trades_table(result: BacktestResult, trades: pd.DataFrame | None = None) -> pd.DataFrame:
    """trades.csv: every fill with its costs and P&L (``trades``: :func:`agent_trades` of ``result``, if at hand)."""
    agent = result.ledgers[AGENT].frame
    delta = agent["shares"].diff()
    filled = agent[agent["fill_price"].notna()]
    pnl = (agent_trades(result) if trades is None else trades).reindex(filled.index)
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
            # average-cost realised P&L and round trips (finrl.backtest.tables says how they are counted)
            **{name: pnl[name] for name in ("realized_pnl", "round_trip", "round_trip_pnl")},
        },
        index=filled.index,
    )


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
    meta = result.meta()
    document = {**result.metrics, "meta": meta}
    trades = agent_trades(result)  # trades.csv, the chart's markers and the trades section

    def fill(staging: Path) -> None:
        (staging / "metrics.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        nav_table(result).to_csv(staging / "nav.csv", index_label="date")  # shortest exact (round-trip) floats
        trades_table(result, trades).to_csv(staging / "trades.csv", index_label="date")
        (staging / "equity.png").write_bytes(png)
        page = report_page(result, risk_sentence(meta["risk"]), trades)
        (staging / "report.html").write_text(page, encoding="utf-8")
        write_tearsheet(result, staging / "tearsheet.html")

    return replace_directory(directory, fill)


def _format(name: str, value: float) -> str:
    if name in PERCENT_METRICS:
        return f"{value:.2%}"
    if name in ("n_trades",):
        return f"{int(value)}"
    if name == "total_costs" or name in COST_METRICS:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def summary_rows(metrics: dict[str, dict[str, float]]) -> list[list[str]]:
    """Rows (metric, agent, baselines...) for the console table."""
    names = list(metrics)
    shown = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar", "exposure", "n_trades")
    return [["metric", *names]] + [[m, *(_format(m, metrics[n][m]) for n in names)] for m in shown]


def metrics_document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((Path(path) / "metrics.json").read_text())
    return document
