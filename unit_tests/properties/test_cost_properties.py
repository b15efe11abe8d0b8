"""Costs over random cost models, prices, sizes and liquidity: never negative, monotone in the order's size,
the components sum to the cost, and the cash a fill moves is the reference notional plus exactly that cost.

The domain is a market's: an order of at most one average day's volume, a daily volatility of at most 10%
and an impact coefficient of at most 1, so the square-root impact stays under 10% of the price. Far
outside it (an order of 100 days' volume at 12% volatility) the impact is capped at
``execution.MAX_IMPACT``, so a sell never fills at or below zero: tested over the wild domain below."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finrl.meta.env.execution import COST_COMPONENTS, MAX_IMPACT, CostModel, ExecutionConfig, fill_order
from unit_tests.conftest import execution_config
from unit_tests.properties.settings import examples

pytestmark = pytest.mark.unit

bps = st.floats(0.0, 100.0)
cost_models = st.builds(
    CostModel,
    commission_bps=bps,
    spread_bps=bps,
    slippage_bps=bps,
    sec_fee_per_million=st.floats(0.0, 100.0),
    finra_taf_per_share=st.floats(0.0, 0.01),
    finra_taf_max=st.floats(0.0, 10.0),
    impact_coef=st.floats(0.0, 1.0),
)
prices = st.floats(0.5, 5_000.0)
sizes = st.floats(1e-6, 1e6)  # shares, fractional or whole
volatilities = st.one_of(st.just(0.0), st.just(math.nan), st.floats(1e-4, 0.1))  # none, unknown, daily vol
# the average daily volume as a multiple of the largest order (participation <= 100%); 0 or NaN: no impact
adv_multiples = st.one_of(st.just(0.0), st.just(math.nan), st.floats(1.0, 1e6))


def config(costs: CostModel) -> ExecutionConfig:
    return execution_config(costs=costs)


@examples(300)
@given(costs=cost_models, price=prices, size=sizes, side=st.sampled_from([1, -1]), vol=volatilities, adv=adv_multiples)
def test_costs_are_never_negative_and_add_up(
    costs: CostModel, price: float, size: float, side: int, vol: float, adv: float
) -> None:
    fill = fill_order(side * size, price, config(costs), vol, adv * size)
    components = [getattr(fill, name) for name in COST_COMPONENTS]
    assert all(c >= 0 and math.isfinite(c) for c in components), fill
    assert fill.cost == pytest.approx(sum(components), rel=1e-12, abs=1e-12)
    assert fill.shares == side * size
    # a buy never fills below the reference price, a sell never above it
    assert (fill.price >= price) if side > 0 else (fill.price <= price)
    if side > 0:
        assert fill.sec_fee == 0.0 and fill.taf == 0.0  # regulatory fees are charged on sales only
    # the cash the fill moves beyond the reference notional is exactly its recorded cost
    paid = fill.shares * fill.price + fill.charges
    assert paid == pytest.approx(side * size * price + fill.cost, rel=1e-9, abs=1e-9)


@examples(300)
@given(
    costs=cost_models,
    price=prices,
    sizes=st.tuples(sizes, sizes).map(sorted),
    side=st.sampled_from([1, -1]),
    vol=volatilities,
    adv=adv_multiples,
)
def test_costs_are_monotone_in_the_order_size(
    costs: CostModel, price: float, sizes: list[float], side: int, vol: float, adv: float
) -> None:
    small, large = (fill_order(side * size, price, config(costs), vol, adv * sizes[1]) for size in sizes)
    for name in ("cost", *COST_COMPONENTS):
        a, b = getattr(small, name), getattr(large, name)
        assert a <= b * (1 + 1e-12) + 1e-12, f"{name}: {a} for {sizes[0]} shares > {b} for {sizes[1]}"
    # a larger order moves the price at least as far (square-root impact)
    assert abs(small.price - price) <= abs(large.price - price) * (1 + 1e-12) + 1e-12


@examples(100)
@given(costs=cost_models, price=prices, vol=volatilities, adv=adv_multiples)
def test_no_order_costs_nothing(costs: CostModel, price: float, vol: float, adv: float) -> None:
    fill = fill_order(0.0, price, config(costs), vol, adv * 1_000.0)
    assert fill.cost == 0.0 and fill.shares == 0.0 and fill.charges == 0.0


@examples(300)
@given(
    costs=cost_models,
    price=prices,
    size=sizes,
    vol=st.floats(1e-4, 2.0),
    participation=st.floats(1e-3, 1e6),  # the order as a multiple of a day's volume: far beyond any market
    coef=st.floats(0.0, 10.0),
)
def test_no_order_fills_at_or_below_zero_however_illiquid(
    costs: CostModel, price: float, size: float, vol: float, participation: float, coef: float
) -> None:
    from dataclasses import replace

    wild = config(replace(costs, impact_coef=coef))
    sell = fill_order(-size, price, wild, vol, size / participation)
    assert sell.price > 0 and all(getattr(sell, name) >= 0 for name in COST_COMPONENTS), sell
    buy = fill_order(size, price, wild, vol, size / participation)
    assert buy.price <= price * (1 + MAX_IMPACT + costs.price_impact) * (1 + 1e-12)
