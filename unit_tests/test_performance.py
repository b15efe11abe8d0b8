"""Performance metrics against an independent NumPy computation on handmade ledgers, the degenerate
cases (flat or one-day NAV: zeros, never NaN or inf) and the multi-seed summary.

Conventions checked (empyrical's): daily simple returns of the NAV; Sharpe and volatility use the
sample standard deviation (ddof=1) and sqrt(252); the annual risk-free rate enters as rate/252 a day;
Sortino's downside deviation is sqrt(mean(min(r - rf, 0)^2)) over all days; drawdowns include the
starting NAV; alpha is the OLS intercept compounded over 252 days, beta the OLS slope.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finrl.performance import (
    METRIC_NAMES,
    TRADING_DAYS,
    daily_returns,
    drawdown,
    performance,
    sharpe_ratio,
    summarize_runs,
    total_return,
)
from unit_tests.conftest import nyse_days

pytestmark = pytest.mark.unit

TIGHT = {"rel": 1e-9, "abs": 1e-12}


def ledger_from(nav: np.ndarray, shares: np.ndarray, fill_price: np.ndarray, costs: np.ndarray) -> pd.DataFrame:
    index = pd.DatetimeIndex(nyse_days("2021-03-01", len(nav)), name="date")
    return pd.DataFrame(
        {
            "action": np.nan,
            "position": np.sign(shares).astype(float),
            "shares": shares.astype(float),
            "fill_price": fill_price.astype(float),
            "costs": costs.astype(float),
            "cash": np.nan,
            "nav": nav.astype(float),
        },
        index=index,
    )


def handmade_ledger() -> tuple[pd.DataFrame, pd.Series]:
    """45 days: flat, long (losing on its first day), flat, long, flat again, long to the end."""
    rng = np.random.default_rng(2024)
    n = 45
    shares = np.zeros(n)
    shares[1:12] = 100.0  # bought at day 1's open
    shares[18:30] = 120.0
    shares[33:] = 90.0
    fill_price = np.full(n, np.nan)
    costs = np.zeros(n)
    for t in range(1, n):
        if shares[t] != shares[t - 1]:
            fill_price[t] = 400.0 + rng.normal(0, 5)
            costs[t] = abs(shares[t] - shares[t - 1]) * fill_price[t] * 6e-4
    held = (shares[1:] != 0) | (shares[:-1] != 0)
    returns = np.where(held, rng.normal(0.0008, 0.012, n - 1), 0.0)
    returns[0] = -0.021  # a loss on the very first day: the drawdown counts from the starting NAV
    returns[5] = 0.0  # an in-market day with no gain is not a win
    nav = 100_000.0 * np.concatenate([[1.0], np.cumprod(1 + returns)])
    ledger = ledger_from(nav, shares, fill_price, costs)
    bench_returns = 0.6 * returns + rng.normal(0.0003, 0.009, n - 1)
    benchmark = pd.Series(100_000.0 * np.concatenate([[1.0], np.cumprod(1 + bench_returns)]), index=ledger.index)
    return ledger, benchmark


def independent_metrics(ledger: pd.DataFrame, benchmark: pd.Series, rf: float) -> dict[str, float]:
    """The same metrics from first principles (NumPy only, no empyrical, no finrl)."""
    nav = ledger["nav"].to_numpy(dtype=float)
    bench = benchmark.to_numpy(dtype=float)
    r = nav[1:] / nav[:-1] - 1.0
    b = bench[1:] / bench[:-1] - 1.0
    n = len(r)
    daily_rf = rf / 252
    excess = r - daily_rf
    peak = np.maximum.accumulate(nav)
    max_dd = float(np.min(nav / peak - 1.0))
    annual = (nav[-1] / nav[0]) ** (252 / n) - 1.0
    downside = math.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)) * math.sqrt(252)
    position = ledger["position"].to_numpy()
    in_market = np.array([position[i] != 0 or position[i + 1] != 0 for i in range(n)])
    shares = ledger["shares"].to_numpy()
    fill = ledger["fill_price"].to_numpy()
    notional = sum(abs(shares[t] - shares[t - 1]) * fill[t] for t in range(1, len(nav)) if not np.isnan(fill[t]))
    design = np.column_stack([np.ones(n), b - daily_rf])
    (intercept, slope), *_ = np.linalg.lstsq(design, excess, rcond=None)
    return {
        "total_return": nav[-1] / nav[0] - 1.0,
        "annual_return": annual,
        "annual_volatility": float(np.std(r, ddof=1)) * math.sqrt(252),
        "sharpe": float(np.mean(excess) / np.std(excess, ddof=1)) * math.sqrt(252),
        "sortino": float(np.mean(excess)) * 252 / downside,
        "max_drawdown": max_dd,
        "calmar": annual / abs(max_dd),
        "win_rate": float(np.mean(r[in_market] > 0)),
        "n_trades": int(np.sum(~np.isnan(fill))),
        "turnover": notional / float(np.mean(nav)),
        "total_costs": float(np.sum(ledger["costs"].to_numpy())),
        "alpha": (1.0 + intercept) ** 252 - 1.0,
        "beta": float(slope),
    }


@pytest.mark.parametrize("rf", [0.0, 0.035])
def test_performance_matches_an_independent_computation(rf: float) -> None:
    ledger, benchmark = handmade_ledger()
    got = performance(ledger, benchmark, risk_free_rate=rf)
    expected = independent_metrics(ledger, benchmark, rf)
    assert set(got) == set(METRIC_NAMES)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, **TIGHT), name
    # sanity of the handmade case: it really exercises what it should
    assert got["max_drawdown"] < -0.02 and got["n_trades"] == 5 and 0 < got["win_rate"] < 1
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in got.values())
    assert isinstance(got["n_trades"], int)


def test_helpers_match_the_definitions() -> None:
    ledger, _ = handmade_ledger()
    nav = ledger["nav"]
    values = nav.to_numpy()
    np.testing.assert_allclose(daily_returns(nav).to_numpy(), values[1:] / values[:-1] - 1, rtol=1e-14)
    assert list(daily_returns(nav).index) == list(nav.index[1:])
    np.testing.assert_allclose(drawdown(nav).to_numpy(), values / np.maximum.accumulate(values) - 1, rtol=0, atol=0)
    assert (drawdown(nav) <= 0).all()
    assert total_return(nav) == pytest.approx(values[-1] / values[0] - 1, **TIGHT)
    r = values[1:] / values[:-1] - 1
    for rf in (0.0, 0.02):
        excess = r - rf / TRADING_DAYS
        assert sharpe_ratio(nav, rf) == pytest.approx(excess.mean() / excess.std(ddof=1) * math.sqrt(252), **TIGHT)
        assert sharpe_ratio(nav, rf) == pytest.approx(performance(ledger, nav, rf)["sharpe"], **TIGHT)
    assert sharpe_ratio(nav) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), **TIGHT)  # plain ratio


def test_risk_free_rate_lowers_sharpe_and_sortino() -> None:
    ledger, benchmark = handmade_ledger()
    base, with_rf = performance(ledger, benchmark, 0.0), performance(ledger, benchmark, 0.05)
    assert with_rf["sharpe"] < base["sharpe"] and with_rf["sortino"] < base["sortino"]
    assert with_rf["beta"] == pytest.approx(base["beta"], **TIGHT)  # a constant shift leaves the slope alone
    for name in ("total_return", "annual_return", "max_drawdown", "calmar", "annual_volatility"):
        assert with_rf[name] == base[name], name


def test_benchmark_against_itself_has_beta_one_and_alpha_zero() -> None:
    _, benchmark = handmade_ledger()
    n = len(benchmark)
    shares = np.r_[0.0, np.full(n - 1, 10.0)]
    fill = np.full(n, np.nan)
    fill[1] = 100.0
    ledger = ledger_from(benchmark.to_numpy(), shares, fill, np.zeros(n))
    got = performance(ledger, benchmark, 0.01)
    assert got["beta"] == pytest.approx(1.0, rel=1e-12)
    assert got["alpha"] == pytest.approx(0.0, abs=1e-12)


def flat_ledger(n: int = 30) -> pd.DataFrame:
    return ledger_from(np.full(n, 100_000.0), np.zeros(n), np.full(n, np.nan), np.zeros(n))


@pytest.mark.parametrize("benchmark_kind", ["flat", "moving"])
def test_flat_nav_gives_zeros_not_nan_or_inf(benchmark_kind: str) -> None:
    ledger = flat_ledger()
    if benchmark_kind == "flat":
        benchmark = ledger["nav"]
    else:
        rng = np.random.default_rng(1)
        benchmark = pd.Series(100 * np.cumprod(1 + rng.normal(0, 0.01, len(ledger))), index=ledger.index)
    got = performance(ledger, benchmark, risk_free_rate=0.0)
    assert set(got) == set(METRIC_NAMES)
    for name, value in got.items():
        assert math.isfinite(value), name
        assert value == 0.0, name


def test_flat_nav_with_a_risk_free_rate_stays_finite() -> None:
    ledger = flat_ledger()
    got = performance(ledger, ledger["nav"], risk_free_rate=0.04)
    assert all(math.isfinite(v) for v in got.values())
    assert got["max_drawdown"] == 0.0 and got["calmar"] == 0.0 and got["total_return"] == 0.0


def test_nav_that_never_falls_has_no_drawdown_and_finite_calmar() -> None:
    n = 20
    nav = 100_000.0 * 1.001 ** np.arange(n) * (1 + np.linspace(0, 1e-4, n))
    shares = np.r_[0.0, np.full(n - 1, 5.0)]
    fill = np.full(n, np.nan)
    fill[1] = 101.0
    got = performance(ledger_from(nav, shares, fill, np.zeros(n)), pd.Series(nav), 0.0)
    assert got["max_drawdown"] == 0.0
    assert math.isfinite(got["calmar"]) and math.isfinite(got["sortino"]) and math.isfinite(got["sharpe"])
    assert got["win_rate"] == 1.0


def test_two_day_ledger_is_finite() -> None:
    ledger = ledger_from(np.array([100.0, 101.0]), np.array([0.0, 1.0]), np.array([np.nan, 100.5]), np.array([0, 0.1]))
    got = performance(ledger, ledger["nav"], 0.0)
    assert all(math.isfinite(v) for v in got.values())
    assert got["sharpe"] == 0.0  # one return has no sample standard deviation
    assert got["total_return"] == pytest.approx(0.01) and got["n_trades"] == 1


def test_buy_and_hold_is_fully_exposed() -> None:
    n = 30
    rng = np.random.default_rng(3)
    nav = 100_000.0 * np.concatenate([[1.0], np.cumprod(1 + rng.normal(0, 0.01, n - 1))])
    shares = np.r_[0.0, np.full(n - 1, 250.0)]
    fill = np.full(n, np.nan)
    fill[1] = 400.0
    got = performance(ledger_from(nav, shares, fill, np.zeros(n)), pd.Series(nav), 0.0)
    assert got["exposure"] == 1.0


def test_exposure_is_zero_when_never_in_the_market_and_between_zero_and_one_otherwise() -> None:
    ledger, benchmark = handmade_ledger()
    exposure = performance(ledger, benchmark, 0.0)["exposure"]
    position = ledger["position"].to_numpy()
    assert 0 < exposure < 1
    # whichever day count is used, it is the share of days with a position
    assert exposure == pytest.approx((position != 0).mean(), abs=1.0 / (len(position) - 1))
    assert performance(flat_ledger(), flat_ledger()["nav"], 0.0)["exposure"] == 0.0


def test_summarize_runs_mean_std_min_max() -> None:
    runs = [
        {"sharpe": 0.5, "max_drawdown": -0.10, "n_trades": 4},
        {"sharpe": 1.25, "max_drawdown": -0.30, "n_trades": 9},
        {"sharpe": -0.2, "max_drawdown": -0.05, "n_trades": 1},
    ]
    summary = summarize_runs(runs)
    assert set(summary) == {"sharpe", "max_drawdown", "n_trades"}
    for name in summary:
        values = np.array([r[name] for r in runs], dtype=float)
        stats = summary[name]
        assert set(stats) == {"mean", "std", "min", "max"}
        assert stats["mean"] == pytest.approx(values.mean(), **TIGHT)
        assert stats["std"] == pytest.approx(values.std(ddof=1), **TIGHT)
        assert stats["min"] == values.min() and stats["max"] == values.max()
        assert all(type(v) is float for v in stats.values())


def test_summarize_runs_skips_non_numeric_columns() -> None:
    runs = [{"sharpe": 0.5, "label": "a"}, {"sharpe": 1.5, "label": "b"}]
    assert set(summarize_runs(runs)) == {"sharpe"}


def test_summarize_a_single_run_has_zero_spread() -> None:
    summary = summarize_runs([{"sharpe": 0.7, "total_return": 0.1}])
    assert summary["sharpe"] == {"mean": 0.7, "std": 0.0, "min": 0.7, "max": 0.7}
    assert summary["total_return"]["std"] == 0.0


def test_summarize_real_performance_dicts() -> None:
    ledger, benchmark = handmade_ledger()
    first = performance(ledger, benchmark, 0.0)
    second = performance(flat_ledger(len(ledger)).set_axis(ledger.index), benchmark, 0.0)
    summary = summarize_runs([first, second])
    assert set(summary) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        values = np.array([first[name], second[name]], dtype=float)
        assert summary[name]["mean"] == pytest.approx(values.mean(), **TIGHT)
        assert summary[name]["std"] == pytest.approx(values.std(ddof=1), **TIGHT)
