"""The account over random markets, configurations and action sequences: after every step the NAV is cash plus
shares at the close, cash moves by exactly the dividend, the fill's notional and its charges, and the simulated
broker, given the same orders on the same bars, holds the env's very shares, cash and NAV."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.trade.simulated import SimulatedBroker
from unit_tests.conftest import cost_model, env_config, execution_config
from unit_tests.properties.markets import bars, market_arrays
from unit_tests.properties.settings import examples

pytestmark = pytest.mark.unit

INITIAL_CASH = 100_000.0


@st.composite
def configs(draw: st.DrawFn) -> EnvConfig:
    """Any action space, short or not, whole or fractional shares, either fill time, costs with impact."""
    allow_short = draw(st.booleans())
    costs = cost_model(
        commission_bps=draw(st.floats(0.0, 10.0)),
        spread_bps=draw(st.floats(0.0, 10.0)),
        slippage_bps=draw(st.floats(0.0, 10.0)),
        impact_coef=draw(st.floats(0.0, 1.0)),
    )
    execution = execution_config(
        costs=costs,
        allow_short=allow_short,
        fractional_shares=draw(st.booleans()),
        fill_at=draw(st.sampled_from(["next_open", "next_close"])),
        position_fraction=draw(st.floats(0.1, 1.0)),
    )
    return env_config(
        execution=execution,
        initial_cash=INITIAL_CASH,
        episode_length=None,
        action_space=draw(st.sampled_from(["discrete3", "target_weight", "continuous"])),
        weight_levels=(-1.0, -0.5, 0.0, 0.5, 1.0) if allow_short else (0.0, 0.3, 0.7, 1.0),
        rebalance_band=draw(st.sampled_from([0.0, 0.05])),
        reward="log_return",
    )


def random_actions(env: SpyTradingEnv, seed: int, n: int) -> list[object]:
    space = env.action_space
    space.seed(seed)
    return [space.sample() for _ in range(n)]


@examples(150)
@given(frame=bars(), config=configs(), seed=st.integers(0, 2**16))
def test_nav_is_cash_plus_shares_at_the_close_after_every_fill(
    frame: pd.DataFrame, config: EnvConfig, seed: int
) -> None:
    market = market_arrays(frame)
    env = SpyTradingEnv(market, config, record=True)
    env.reset(seed=seed)
    for action in random_actions(env, seed, len(market) - 1):
        _, reward, terminated, truncated, info = env.step(action)
        assert env.log is not None
        row = {name: values[env.log.size - 1] for name, values in env.log.columns.items()}
        before = {name: values[env.log.size - 2] for name, values in env.log.columns.items()}
        day = env.day_index
        assert row["nav"] == row["cash"] + row["shares"] * market.close[day] == info["nav"] == env.nav
        delta = row["shares"] - before["shares"]
        assert math.isnan(row["fill_price"]) == (delta == 0) == (not info["traded"])
        charges = 0.0 if delta == 0 else row["cost_commission"] + row["cost_sec_fee"] + row["cost_taf"]
        paid = 0.0 if delta == 0 else delta * row["fill_price"] + charges
        expected_cash = before["cash"] + before["shares"] * market.dividends[day] - paid
        assert row["cash"] == pytest.approx(expected_cash, rel=1e-12, abs=1e-9)
        components = [row[f"cost_{name}"] for name in ("commission", "spread", "slippage", "impact", "sec_fee", "taf")]
        assert all(c >= 0 for c in components) and row["costs"] == pytest.approx(sum(components), rel=1e-12, abs=1e-12)
        if not terminated:
            assert reward == math.log(row["nav"] / before["nav"])
        if terminated or truncated:
            break


@st.composite
def order_plans(draw: st.DrawFn, days: int, fractional: bool, allow_short: bool) -> list[float]:
    """A target position in shares for each decision day (a short target only with ``allow_short``)."""
    low = -600 if allow_short else 0
    shares = st.floats(low, 600).map(lambda x: round(x, 3)) if fractional else st.integers(low, 600).map(float)
    return draw(st.lists(st.one_of(shares, st.none()), min_size=days, max_size=days))  # None: keep


@examples(100)
@given(frame=bars(), config=configs(), data=st.data())
def test_simulated_broker_and_env_agree_on_random_orders(
    frame: pd.DataFrame, config: EnvConfig, data: st.DataObject
) -> None:
    market = market_arrays(frame)
    execution = config.execution
    plan = data.draw(order_plans(len(market) - 1, execution.fractional_shares, execution.allow_short))
    env = SpyTradingEnv(market, config, record=True)
    env.reset(seed=0)
    days = [d.date() for d in pd.DatetimeIndex(frame.index)]
    with tempfile.TemporaryDirectory() as folder:
        broker = SimulatedBroker(Path(folder) / "account.json", frame, execution, INITIAL_CASH)
        broker.advance_to(days[0])
        for t, target in enumerate(plan):
            order = 0.0 if target is None else target - env.shares
            if order:
                side = "buy" if order > 0 else "sell"
                broker.submit_market_order("SPY", abs(order), side, f"order-{t}", "opg")
            env.step_order(math.nan, order)
            broker.advance_to(days[t + 1])
            account = broker.account()
            position = broker.position("SPY")
            assert env.log is not None
            cash = env.log.columns["cash"][env.log.size - 1]
            assert (position.qty if position else 0.0) == env.shares, f"day {t + 1}"
            assert account.cash == cash and account.equity == env.nav, f"day {t + 1}"
        history = broker.equity_history(days[0])
        navs = env.log.as_arrays()["nav"]
        assert [equity for _, equity in history] == [nav for nav in navs if nav > 0]
        assert np.all(np.isfinite(navs))
