"""The backtest's metrics (finrl.performance, via empyrical) against a direct NumPy computation of each
definition on random NAV series, positions and benchmark: 252 days a year, daily simple returns of the NAV,
the annual risk-free rate as rate / 252 a day, sample (ddof=1) volatility, drawdowns negative."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finrl.performance import performance, sharpe_ratio
from unit_tests.properties.settings import examples

pytestmark = pytest.mark.unit

DAYS = 252
CLOSE = {"rel": 1e-7, "abs": 1e-10}


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.Series, float]:
    """(ledger, benchmark NAV, annual risk-free rate): n + 1 closes of a strategy and of a benchmark."""
    n = draw(st.integers(3, 300))
    daily = arrays(np.float64, n, elements=st.floats(-0.2, 0.2, allow_subnormal=False))
    returns, benchmark = draw(daily), draw(daily)
    nav = 100_000.0 * np.cumprod(np.r_[1.0, 1.0 + returns])
    position = draw(arrays(np.int64, n + 1, elements=st.sampled_from([-1, 0, 1])))
    position[0] = 0  # the ledger's first row is the account before any decision
    traded = np.r_[False, position[1:] != position[:-1]]
    price = nav / 1_000.0
    ledger = pd.DataFrame(
        {
            "nav": nav,
            "position": position,
            "shares": position * 10.0,
            "fill_price": np.where(traded, price, np.nan),
            "costs": np.where(traded, draw(st.floats(0.0, 50.0)), 0.0),
        },
        index=pd.bdate_range("2020-01-01", periods=n + 1),
    )
    bench = pd.Series(100.0 * np.cumprod(np.r_[1.0, 1.0 + benchmark]), index=ledger.index)
    return ledger, bench, draw(st.sampled_from([0.0, 0.02, 0.05]))


def finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def numpy_metrics(ledger: pd.DataFrame, bench: pd.Series, rate: float) -> dict[str, float]:
    """Each metric from its definition, in NumPy alone."""
    nav, b_nav = ledger["nav"].to_numpy(), bench.to_numpy()
    r, b = nav[1:] / nav[:-1] - 1.0, b_nav[1:] / b_nav[:-1] - 1.0
    n, rf = len(r), rate / DAYS
    excess = r - rf
    std = excess.std(ddof=1)
    downside = math.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)) * math.sqrt(DAYS)
    annual = (nav[-1] / nav[0]) ** (DAYS / n) - 1.0
    max_dd = float(np.min(nav / np.maximum.accumulate(nav) - 1.0))
    b_centred = b - b.mean()
    beta = np.mean(b_centred * r) / np.mean(b_centred**2)
    alpha = (np.mean(excess - beta * (b - rf)) + 1.0) ** DAYS - 1.0
    position = ledger["position"].to_numpy()
    in_market = (position[1:] != 0) | (position[:-1] != 0)
    shares, fill_price = ledger["shares"].to_numpy(), ledger["fill_price"].to_numpy()
    traded = ~np.isnan(fill_price)
    return {
        "total_return": nav[-1] / nav[0] - 1.0,
        "annual_return": annual,
        "annual_volatility": r.std(ddof=1) * math.sqrt(DAYS),
        "sharpe": excess.mean() / std * math.sqrt(DAYS),
        "sortino": finite(excess.mean() * DAYS / downside) if downside > 0 else 0.0,
        "max_drawdown": max_dd,
        "calmar": finite(annual / -max_dd) if max_dd < 0 else 0.0,
        "alpha": finite(alpha),
        "beta": beta,
        "win_rate": float(np.mean(r[in_market] > 0)) if in_market.any() else 0.0,
        "n_trades": int(traded.sum()),
        "turnover": float(np.sum(np.abs(np.diff(shares))[traded[1:]] * fill_price[1:][traded[1:]])) / nav.mean(),
        "exposure": float(np.mean(position[1:] != 0)),
        "total_costs": float(ledger["costs"].sum()),
    }


@examples(150)
@given(case=ledgers())
def test_metrics_agree_with_numpy(case: tuple[pd.DataFrame, pd.Series, float]) -> None:
    ledger, bench, rate = case
    nav = ledger["nav"].to_numpy()
    r = nav[1:] / nav[:-1] - 1.0
    b = bench.to_numpy()[1:] / bench.to_numpy()[:-1] - 1.0
    # ratios of a (nearly) constant series are 0/0 up to rounding: compare where they are defined
    assume(r.std() > 1e-6 and b.std() > 1e-6)
    expected = numpy_metrics(ledger, bench, rate)
    got = performance(ledger, bench, rate)
    for name, value in expected.items():
        if name == "calmar" and -1e-9 < expected["max_drawdown"] < 0:
            continue  # a drawdown of rounding size divides by (almost) zero
        assert got[name] == pytest.approx(value, **CLOSE), f"{name}: {got[name]} != {value} (NumPy)"
    assert expected["max_drawdown"] <= 0 and got["annual_volatility"] >= 0
    assert sharpe_ratio(ledger["nav"], rate) == pytest.approx(expected["sharpe"], **CLOSE)


@examples(50)
@given(n=st.integers(2, 50), start=st.floats(1.0, 1e6), rate=st.sampled_from([0.0, 0.03]))
def test_a_flat_nav_has_no_return_risk_or_drawdown(n: int, start: float, rate: float) -> None:
    index = pd.bdate_range("2020-01-01", periods=n)
    ledger = pd.DataFrame({"nav": start, "position": 0, "shares": 0.0, "fill_price": np.nan, "costs": 0.0}, index=index)
    got = performance(ledger, pd.Series(100.0, index=index), rate)
    assert got["total_return"] == 0.0 and got["annual_return"] == 0.0 and got["max_drawdown"] == 0.0
    assert got["annual_volatility"] == 0.0 and got["sharpe"] == 0.0 and got["calmar"] == 0.0
    assert got["n_trades"] == 0 and got["exposure"] == 0.0 and got["win_rate"] == 0.0
