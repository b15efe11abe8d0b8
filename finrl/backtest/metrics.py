"""Performance metrics computed from a NAV series (never from rewards), via empyrical-reloaded."""

from __future__ import annotations

import math

import pandas as pd

TRADING_DAYS = 252


def daily_returns(nav: pd.Series) -> pd.Series:
    return nav.pct_change().iloc[1:]


def sharpe_ratio(nav: pd.Series, risk_free_rate: float = 0.0) -> float:
    """Annualised Sharpe of daily simple returns (sqrt(252)), with an annual risk-free rate."""
    import empyrical

    value = float(empyrical.sharpe_ratio(daily_returns(nav), risk_free=risk_free_rate / TRADING_DAYS))
    return value if math.isfinite(value) else 0.0


def total_return(nav: pd.Series) -> float:
    return float(nav.iloc[-1] / nav.iloc[0] - 1.0)
