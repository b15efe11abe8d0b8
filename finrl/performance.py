"""Performance metrics computed from a NAV series (never from rewards), via empyrical-reloaded.

Conventions: daily simple returns of the NAV marked at each close; 252 trading days a year;
the risk-free rate is annual and enters as ``rate / 252`` a day; drawdowns are negative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from finrl.meta.env.execution import COST_COMPONENTS

TRADING_DAYS = 252
# total of each cost component (the ledger's cost_<component> columns); total_costs is their sum
COST_METRICS = tuple(f"costs_{name}" for name in COST_COMPONENTS)
METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "n_trades",
    "turnover",
    "exposure",
    "total_costs",
    *COST_METRICS,
    "alpha",
    "beta",
)
# the metrics that are fractions, shown as percentages (alpha: an annual excess return)
PERCENT_METRICS = frozenset(
    {"total_return", "annual_return", "annual_volatility", "max_drawdown", "win_rate", "exposure", "alpha"}
)


def daily_returns(nav: pd.Series) -> pd.Series:
    return nav.pct_change().iloc[1:]


def _finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def sharpe_ratio(nav: pd.Series, risk_free_rate: float = 0.0) -> float:
    """Annualised Sharpe of daily simple returns (sqrt(252)), in excess of an annual risk-free rate.

    ``risk_free_rate=0`` is the ratio's neutral value (plain mean over volatility, no excess), not a
    setting's default: reports that follow the risk-free rate setting get it through :func:`performance`.
    """
    import empyrical

    return _finite(empyrical.sharpe_ratio(daily_returns(nav), risk_free=risk_free_rate / TRADING_DAYS))


def total_return(nav: pd.Series) -> float:
    return float(nav.iloc[-1] / nav.iloc[0] - 1.0)


def drawdown(nav: pd.Series) -> pd.Series:
    """Fraction below the running peak, <= 0."""
    return nav / nav.cummax() - 1.0


def performance(ledger: pd.DataFrame, benchmark_nav: pd.Series, risk_free_rate: float) -> dict[str, float]:
    """All metrics of one strategy's ledger (see :class:`finrl.meta.env.rollout.EpisodeLedger`).

    ``risk_free_rate`` (annual) comes from the caller: the application's risk-free rate setting.
    """
    import empyrical

    nav = ledger["nav"]
    returns = daily_returns(nav)
    benchmark = daily_returns(benchmark_nav)
    daily_rf = risk_free_rate / TRADING_DAYS
    position = ledger["position"].to_numpy()
    # a day is "in the market" when a position was held over any part of it (overnight or after the fill)
    in_market = (position[1:] != 0) | (position[:-1] != 0)
    fills = ledger["fill_price"].notna().to_numpy()
    traded_notional = float((ledger["shares"].diff().abs() * ledger["fill_price"]).fillna(0.0).sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # a ruined NAV has no annual rate: NaN -> 0 below
        return (
            _empyrical_metrics(empyrical, nav, returns, benchmark, daily_rf)
            | {
                "win_rate": float((returns.to_numpy()[in_market] > 0).mean()) if in_market.any() else 0.0,
                "n_trades": int(fills.sum()),
                "turnover": traded_notional / float(nav.mean()),
                "exposure": float((position[1:] != 0).mean()) if len(position) > 1 else 0.0,  # closes held, not row 0
                "total_costs": float(ledger["costs"].fillna(0.0).sum()),
            }
            | cost_totals(ledger)
        )


def cost_totals(ledger: pd.DataFrame) -> dict[str, float]:
    """Each cost component's total (``costs_<component>``); a ledger without the columns counts 0."""
    return {
        f"costs_{name}": float(ledger[f"cost_{name}"].fillna(0.0).sum()) if f"cost_{name}" in ledger else 0.0
        for name in COST_COMPONENTS
    }


def _empyrical_metrics(
    empyrical: Any, nav: pd.Series, returns: pd.Series, benchmark: pd.Series, daily_rf: float
) -> dict[str, float]:
    alpha, beta = empyrical.alpha_beta(returns, benchmark, risk_free=daily_rf)
    return {
        "total_return": total_return(nav),
        "annual_return": _finite(empyrical.annual_return(returns)),
        "annual_volatility": _finite(empyrical.annual_volatility(returns)),
        "sharpe": _finite(empyrical.sharpe_ratio(returns, risk_free=daily_rf)),
        "sortino": _finite(empyrical.sortino_ratio(returns, required_return=daily_rf)),
        "max_drawdown": _finite(empyrical.max_drawdown(returns)),
        "calmar": _finite(empyrical.calmar_ratio(returns)),
        "alpha": _finite(alpha),
        "beta": _finite(beta),
    }


def summarize_runs(per_run: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (ddof=1), min and max of each metric across runs (seeds)."""
    frame = pd.DataFrame(per_run)
    return {
        name: {
            "mean": float(frame[name].mean()),
            "std": float(frame[name].std(ddof=1)) if len(frame) > 1 else 0.0,
            "min": float(frame[name].min()),
            "max": float(frame[name].max()),
        }
        for name in frame.columns
        if pd.api.types.is_numeric_dtype(frame[name])
    }
