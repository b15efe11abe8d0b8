"""Execution: cost model, rebalance sizing, target positions, dividends from the adjustment factor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finrl.meta.env.execution import (
    COSTS_BEFORE_FEES,
    DIVIDEND_THRESHOLD,
    NO_FILL,
    Action,
    CostModel,
    dividends_per_share,
    position_of,
    rebalance,
    target_position,
)
from unit_tests.conftest import cost_model, execution_config

pytestmark = pytest.mark.unit

# 1 bp commission, 1 bp spread (half paid), 2 bp slippage; the sell fees and the impact: test_costs.py
DEFAULT = execution_config(costs=cost_model(**COSTS_BEFORE_FEES))
IMPACT = 2.5e-4
RATE = 1e-4


# ---------------------------------------------------------------------------- cost model


def test_default_cost_model_price_impact_and_commission_rate() -> None:
    costs = cost_model()
    assert costs.price_impact == pytest.approx(2.5e-4, rel=1e-12)  # half of 1 bp + 2 bp
    assert costs.commission_rate == pytest.approx(1e-4, rel=1e-12)


@pytest.mark.parametrize(
    ("commission", "spread", "slippage", "impact", "rate"),
    [(10.0, 4.0, 3.0, 5e-4, 1e-3), (0.0, 0.0, 0.0, 0.0, 0.0), (0.5, 10.0, 0.0, 5e-4, 5e-5), (0.0, 0.0, 7.0, 7e-4, 0.0)],
)
def test_cost_model_math(commission: float, spread: float, slippage: float, impact: float, rate: float) -> None:
    costs = CostModel(commission_bps=commission, spread_bps=spread, slippage_bps=slippage, **COSTS_BEFORE_FEES)
    assert costs.price_impact == pytest.approx(impact, rel=1e-12, abs=1e-18)
    assert costs.commission_rate == pytest.approx(rate, rel=1e-12, abs=1e-18)


def test_fill_cost_is_commission_plus_impact_on_notional() -> None:
    config = execution_config(
        costs=CostModel(commission_bps=10.0, spread_bps=4.0, slippage_bps=3.0, **COSTS_BEFORE_FEES)
    )
    fill = rebalance(cash=0.0, shares=50.0, target=0, reference_price=200.0, config=config)
    # sell at 200 * (1 - 5 bp) = 199.9; commission 10 bp of 50 * 199.9 = 9.995; impact 50 * 0.1 = 5
    assert fill.shares == -50.0
    assert fill.price == pytest.approx(199.9, rel=1e-12)
    assert fill.commission == pytest.approx(9.995, rel=1e-12)
    assert fill.cost == pytest.approx(14.995, rel=1e-12)


# ---------------------------------------------------------------------------- rebalance: long only


def test_flat_to_long_whole_shares_hand_computed() -> None:
    fill = rebalance(cash=10_000.0, shares=0.0, target=1, reference_price=100.0, config=DEFAULT)
    # buy price 100.025; 10000 / (100.025 * 1.0001) = 99.965... -> 99 shares
    assert fill.shares == 99.0
    assert fill.price == pytest.approx(100.025, rel=1e-12)
    assert fill.commission == pytest.approx(99 * 100.025 * 1e-4, rel=1e-12)
    assert fill.cost == pytest.approx(0.99024750 + 2.475, rel=1e-12)
    cash_after = 10_000.0 - fill.shares * fill.price - fill.commission
    assert cash_after == pytest.approx(96.5347525, rel=1e-10)


def test_flat_to_long_sizing_leaves_room_for_the_commission() -> None:
    # exactly 100 shares' worth at the buy price, but the commission does not fit -> 99 shares
    cash = 100 * 100.025
    fill = rebalance(cash=cash, shares=0.0, target=1, reference_price=100.0, config=DEFAULT)
    assert fill.shares == math.floor(cash / (100.025 * (1 + RATE))) == 99
    assert cash - fill.shares * fill.price - fill.commission >= 0


@pytest.mark.parametrize("seed", range(5))
def test_flat_to_long_whole_shares_formula_and_cash_never_negative(seed: int) -> None:
    rng = np.random.default_rng(seed)
    config = execution_config(
        costs=CostModel(commission_bps=5.0, spread_bps=2.0, slippage_bps=3.0, **COSTS_BEFORE_FEES)
    )
    impact, rate = config.costs.price_impact, config.costs.commission_rate
    for _ in range(500):
        cash = float(rng.uniform(50.0, 1e6))
        price = float(rng.uniform(5.0, 600.0))
        fill = rebalance(cash, 0.0, 1, price, config)
        buy_price = price * (1 + impact)
        expected = math.floor(cash / (buy_price * (1 + rate)))
        if expected == 0:
            assert fill is NO_FILL
            continue
        assert fill.shares == expected
        assert fill.shares == int(fill.shares)
        assert fill.price == pytest.approx(buy_price, rel=1e-12)
        assert cash - fill.shares * fill.price - fill.commission >= 0.0
        # and one more share would not have been affordable
        assert cash - (fill.shares + 1) * fill.price * (1 + rate) < 0.0


def test_cash_below_one_share_is_no_fill() -> None:
    assert rebalance(cash=99.0, shares=0.0, target=1, reference_price=100.0, config=DEFAULT) is NO_FILL


def test_long_to_flat_sells_everything() -> None:
    fill = rebalance(cash=50.0, shares=10.0, target=0, reference_price=200.0, config=DEFAULT)
    assert fill.shares == -10.0
    assert fill.price == pytest.approx(199.95, rel=1e-12)
    assert fill.commission == pytest.approx(0.19995, rel=1e-12)
    assert fill.cost == pytest.approx(0.19995 + 0.5, rel=1e-12)
    assert 10.0 + fill.shares == 0.0


def test_long_to_flat_sells_fractional_holdings_entirely() -> None:
    config = execution_config(fractional_shares=True)
    fill = rebalance(cash=0.0, shares=12.3456, target=0, reference_price=50.0, config=config)
    assert fill.shares == -12.3456


def test_fractional_shares_spend_all_equity() -> None:
    config = execution_config(fractional_shares=True)
    fill = rebalance(cash=10_000.0, shares=0.0, target=1, reference_price=100.0, config=config)
    expected = math.floor(10_000.0 / (100.025 * 1.0001) * 1e9) / 1e9  # Alpaca's 1e-9 share precision
    assert fill.shares == expected
    assert fill.shares != math.floor(fill.shares)
    cash_after = 10_000.0 - fill.shares * fill.price - fill.commission
    assert 0.0 <= cash_after < 1e-6


def test_position_fraction_half() -> None:
    config = execution_config(position_fraction=0.5)
    fill = rebalance(cash=10_000.0, shares=0.0, target=1, reference_price=100.0, config=config)
    # 5000 / (100.025 * 1.0001) = 49.98 -> 49
    assert fill.shares == 49.0
    fractional = rebalance(10_000.0, 0.0, 1, 100.0, execution_config(position_fraction=0.5, fractional_shares=True))
    assert fractional.shares * fractional.price * (1 + RATE) == pytest.approx(5_000.0, abs=1e-6)
    assert fractional.shares * fractional.price * (1 + RATE) <= 5_000.0


# ---------------------------------------------------------------------------- rebalance: short


def test_flat_to_short_hand_computed() -> None:
    config = execution_config(costs=DEFAULT.costs, allow_short=True)
    fill = rebalance(cash=10_000.0, shares=0.0, target=-1, reference_price=100.0, config=config)
    # sell price 99.975; 10000 / (99.975 * 1.0001) = 100.015 -> 100 shares short
    assert fill.shares == -100.0
    assert fill.price == pytest.approx(99.975, rel=1e-12)
    assert fill.commission == pytest.approx(0.99975, rel=1e-12)
    assert fill.cost == pytest.approx(0.99975 + 2.5, rel=1e-12)


def test_long_to_short_flip_sizes_from_equity_after_closing() -> None:
    config = execution_config(allow_short=True)
    unit = 99.975 * 1.0001  # sell price with commission
    # equity 100.01 units: 100 shares ignoring the closing costs, but 3.15 to close 90 shares -> 99
    equity = 100.01 * unit
    cash = equity - 90 * 100.0
    fill = rebalance(cash=cash, shares=90.0, target=-1, reference_price=100.0, config=config)
    close_cost = 90 * 100.0 * (IMPACT + RATE)
    assert close_cost == pytest.approx(3.15, rel=1e-12)
    assert math.floor(equity / unit) == 100
    assert math.floor((equity - close_cost) / unit) == 99
    assert fill.shares == -189.0  # sell the 90 held and 99 more
    assert fill.price == pytest.approx(99.975, rel=1e-12)
    assert fill.commission == pytest.approx(189 * 99.975 * 1e-4, rel=1e-12)


def test_short_to_long_flip_hand_computed() -> None:
    config = execution_config(allow_short=True)
    # equity 20000 - 100 * 100 = 10000; closing costs 100 * 100 * 3.5 bp = 3.5
    fill = rebalance(cash=20_000.0, shares=-100.0, target=1, reference_price=100.0, config=config)
    assert math.floor(9_996.5 / (100.025 * 1.0001)) == 99
    assert fill.shares == 199.0
    assert fill.price == pytest.approx(100.025, rel=1e-12)
    assert 20_000.0 - fill.shares * fill.price - fill.commission >= 0


def test_short_to_flat_buys_back_everything() -> None:
    config = execution_config(allow_short=True)
    fill = rebalance(cash=20_000.0, shares=-100.0, target=0, reference_price=100.0, config=config)
    assert fill.shares == 100.0
    assert fill.price == pytest.approx(100.025, rel=1e-12)


def test_short_to_long_flip_fractional_keeps_cash_non_negative() -> None:
    config = execution_config(allow_short=True, fractional_shares=True)
    fill = rebalance(cash=20_000.0, shares=-100.0, target=1, reference_price=100.0, config=config)
    assert 20_000.0 - fill.shares * fill.price - fill.commission >= 0.0


@pytest.mark.parametrize(
    ("shares", "target", "allow_short"),
    [(0.0, 0, False), (10.0, 1, False), (0.5, 1, False), (-5.0, -1, True), (0.0, 0, True)],
)
def test_no_fill_when_target_equals_current(shares: float, target: int, allow_short: bool) -> None:
    fill = rebalance(1_000.0, shares, target, 100.0, execution_config(allow_short=allow_short))
    assert fill is NO_FILL
    assert fill.shares == 0.0 and fill.commission == 0.0 and fill.cost == 0.0
    assert math.isnan(fill.price)


def test_position_of() -> None:
    assert [position_of(s) for s in (-3.0, -1e-9, 0.0, 1e-9, 7.0)] == [-1, -1, 0, 1, 1]


def test_position_of_numpy_scalars() -> None:
    assert [position_of(np.float64(s)) for s in (-2.5, 0.0, 2.5)] == [-1, 0, 1]


def test_fractional_fill_at_numpy_price_then_close() -> None:
    config = execution_config(fractional_shares=True)
    bought = rebalance(10_000.0, 0.0, 1, np.float64(100.0), config)
    assert rebalance(0.0, bought.shares, 0, np.float64(101.0), config).shares == -bought.shares


# ---------------------------------------------------------------------------- target_position


@pytest.mark.parametrize(
    ("action", "position", "allow_short", "expected"),
    [
        (Action.BUY, 0, False, 1),
        (Action.BUY, 1, False, 1),
        (Action.BUY, -1, True, 1),
        (Action.SELL, 1, False, 0),
        (Action.SELL, 0, False, 0),
        (Action.SELL, 1, True, -1),
        (Action.SELL, 0, True, -1),
        (Action.SELL, -1, True, -1),
        (Action.HOLD, 0, False, 0),
        (Action.HOLD, 1, False, 1),
        (Action.HOLD, -1, True, -1),
        (0, 1, False, 0),
        (1, 1, False, 1),
        (2, 0, False, 1),
    ],
)
def test_target_position(action: int, position: int, allow_short: bool, expected: int) -> None:
    assert target_position(action, position, allow_short) == expected


@pytest.mark.parametrize("action", [3, -1, 10])
@pytest.mark.parametrize("allow_short", [False, True])
def test_invalid_action_raises(action: int, allow_short: bool) -> None:
    with pytest.raises(ValueError, match="invalid action"):
        target_position(action, 0, allow_short)


# ---------------------------------------------------------------------------- dividends


def _back_adjust(close: np.ndarray, dividends: dict[int, float]) -> np.ndarray:
    """Vendor-style back adjustment: every day before ex-date k is scaled by (1 - D_k / close_{k-1})."""
    factor = np.ones_like(close)
    for k, amount in dividends.items():
        factor[:k] *= 1.0 - amount / close[k - 1]
    return close * factor


def test_dividends_per_share_recovers_planted_dividends() -> None:
    rng = np.random.default_rng(4)
    close = 250.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    planted = {10: 1.37, 40: 1.52}
    adj = _back_adjust(close, planted)
    out = dividends_per_share(close, adj)
    expected = np.zeros(60)
    for k, amount in planted.items():
        expected[k] = amount
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    assert out[0] == 0.0


def test_dividends_per_share_constant_factor_is_zero() -> None:
    close = np.linspace(100, 120, 30)
    np.testing.assert_array_equal(dividends_per_share(close, close * 0.9), np.zeros(30))


def test_dividends_per_share_ignores_rounding_noise() -> None:
    rng = np.random.default_rng(7)
    close = 250.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    adj = _back_adjust(close, {100: 1.4}) * 0.8
    noisy = np.round(adj, 2)  # a vendor's adj_close to the cent: factor moves up to ~5e-5 a day
    ratio_noise = np.abs(1 - (noisy / close)[:-1] / (noisy / close)[1:])
    ratio_noise[99] = 0.0  # the planted ex-date
    assert 0 < ratio_noise.max() < DIVIDEND_THRESHOLD
    out = dividends_per_share(close, noisy)
    assert np.count_nonzero(out) == 1
    assert out[100] == pytest.approx(1.4, abs=0.03)


def test_dividends_per_share_ignores_a_falling_factor() -> None:
    close = np.full(5, 100.0)
    adj = np.array([95.0, 95.0, 90.0, 90.0, 90.0])  # factor falls over time: not a dividend (that would rise)
    np.testing.assert_array_equal(dividends_per_share(close, adj), np.zeros(5))


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("field", ["commission_bps", "spread_bps", "slippage_bps"])
def test_negative_costs_raise(field: str) -> None:
    with pytest.raises(ValueError, match="negative"):
        cost_model(**{field: -0.1})


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.0001, 2.0])
def test_bad_position_fraction_raises(fraction: float) -> None:
    with pytest.raises(ValueError, match="position_fraction"):
        execution_config(position_fraction=fraction)


@pytest.mark.parametrize("fraction", [1e-6, 0.5, 1.0])
def test_good_position_fraction_accepted(fraction: float) -> None:
    assert execution_config(position_fraction=fraction).position_fraction == fraction


@pytest.mark.parametrize("fill_at", ["open", "close", "next_day", ""])
def test_bad_fill_at_raises(fill_at: str) -> None:
    with pytest.raises(ValueError, match="fill_at"):
        execution_config(fill_at=fill_at)  # type: ignore[arg-type]
