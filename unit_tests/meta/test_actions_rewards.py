"""Action spaces and rewards: weight sizing and the no-trade band by hand, the env's weight spaces,
each reward's formula on small examples, and old env configs keeping their meaning."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.meta.env.actions import action_weight, decide, weight_order_shares
from finrl.meta.env.execution import COSTS_BEFORE_FEES, CostModel, entry_after_fill, order_shares
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rewards import DSR_CLIP, ShapedReward
from finrl.meta.env.rollout import run_policy, scheduled_policy
from finrl.meta.env.spy_env import ENV_CONFIG_VERSION, EnvConfig, SpyTradingEnv
from unit_tests.conftest import default_settings, discrete3_config, execution_config

pytestmark = pytest.mark.unit

COSTS = CostModel(
    commission_bps=1.0, spread_bps=2.0, slippage_bps=3.0, **COSTS_BEFORE_FEES
)  # impact 4 bps, commission 1 bp


def market(close: list[float], open_: list[float] | None = None, dividends: list[float] | None = None) -> MarketArrays:
    n = len(close)
    return MarketArrays(
        dates=np.array(pd.bdate_range("2021-01-04", periods=n), dtype="datetime64[ns]"),
        features=np.zeros((n, 2), dtype=np.float32),
        open=np.array(open_ or close, dtype=np.float64),
        close=np.array(close, dtype=np.float64),
        dividends=np.array(dividends or [0.0] * n, dtype=np.float64),
    )


def config(**changes: Any) -> EnvConfig:
    execution = execution_config(
        costs=COSTS, allow_short=changes.pop("allow_short", False), fractional_shares=changes.pop("fractional", False)
    )
    base = discrete3_config(execution=execution, initial_cash=10_000.0, episode_length=None, random_start=False)
    return replace(base, **{"weight_levels": (0.0, 0.25, 0.5, 0.75, 1.0), "rebalance_band": 0.0, **changes})


# ---------------------------------------------------------------------------- sizing and band


def test_weight_sizing_by_hand() -> None:
    execution = config().execution
    # half of 10,000 at 100 * (1 + 4 bps) * (1 + 1 bp) per share: 49.97 -> 49 whole shares
    assert weight_order_shares(10_000.0, 0.0, 0.5, 100.0, execution, 0.0) == 49
    fractional = replace(execution, fractional_shares=True)
    assert (
        weight_order_shares(10_000.0, 0.0, 0.5, 100.0, fractional, 0.0)
        == math.floor(10_000 * 0.5 / (100 * 1.0004 * 1.0001) * 1e9) / 1e9
    )
    # from 49 shares (cash 5,100) to 100%: the whole equity, no close cost when the sign stays
    assert weight_order_shares(5_100.0, 49.0, 1.0, 100.0, execution, 0.0) == math.floor(10_000 / (100.04 * 1.0001)) - 49
    # down to 25%: sell
    assert weight_order_shares(5_100.0, 49.0, 0.25, 100.0, execution, 0.0) == 24 - 49
    assert weight_order_shares(5_100.0, 49.0, 0.0, 100.0, execution, 0.9) == -49  # 0 always closes
    half = replace(execution, position_fraction=0.5)  # position_fraction scales the weight, as for discrete3
    assert weight_order_shares(10_000.0, 0.0, 1.0, 100.0, half, 0.0) == 49


def test_the_band_skips_small_drifts_only() -> None:
    execution = config().execution
    # 49 shares at 102 of equity 5,100 + 4,998 = 10,098: weight 0.495, target 0.5
    assert weight_order_shares(5_100.0, 49.0, 0.5, 102.0, execution, 0.02) == 0
    assert weight_order_shares(5_100.0, 49.0, 0.5, 102.0, execution, 0.0) == 0  # 49.4 shares round to 49
    assert weight_order_shares(5_100.0, 49.0, 0.75, 102.0, execution, 0.02) == 74 - 49  # a level change trades
    assert weight_order_shares(10_000.0, 0.0, 0.01, 100.0, execution, 0.02) == 0  # within the band of flat


@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("fractional", [False, True])
def test_weights_one_and_zero_equal_discrete3_buy_and_sell(allow_short: bool, fractional: bool) -> None:
    execution = config(allow_short=allow_short, fractional=fractional).execution
    for cash, shares in ((10_000.0, 0.0), (-9_000.0, 95.0), (19_000.0, -95.0)):
        for weight, target in ((1.0, 1), (0.0, 0), (-1.0, -1)):
            if shares * weight > 0:
                continue  # holding: discrete3 does nothing, a weight rebalances (drift)
            assert weight_order_shares(cash, shares, weight, 101.3, execution, 0.0) == order_shares(
                cash, shares, target, 101.3, execution
            )


def test_actions_map_to_weights() -> None:
    levels = config(action_space="target_weight")
    assert action_weight(3, levels) == 0.75 and action_weight(np.int64(0), levels) == 0.0
    with pytest.raises(ValueError, match="invalid action 5"):
        action_weight(5, levels)
    long_only, short = config(action_space="continuous"), config(action_space="continuous", allow_short=True)
    assert action_weight(np.array([1.7], dtype=np.float32), long_only) == 1.0
    assert action_weight(-0.4, long_only) == 0.0 and action_weight(-0.4, short) == -0.4
    assert action_weight(np.float32(0.3), long_only) == float(np.float32(0.3))
    with pytest.raises(ValueError, match="NaN"):
        action_weight(math.nan, long_only)
    assert decide(2, 10_000.0, 0.0, 100.0, config()) == (1, order_shares(10_000.0, 0.0, 1, 100.0, config().execution))


def test_entry_price_averages_adds_and_keeps_on_reductions() -> None:
    assert math.isnan(entry_after_fill(10.0, 100.0, -10.0, 90.0))
    assert entry_after_fill(0.0, math.nan, 10.0, 100.0) == 100.0
    assert entry_after_fill(10.0, 100.0, 10.0, 110.0) == 105.0
    assert entry_after_fill(10.0, 100.0, -4.0, 110.0) == 100.0
    assert entry_after_fill(10.0, 100.0, -15.0, 110.0) == 110.0  # flipped to short


def test_invalid_action_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="allow_short"):
        config(action_space="target_weight", weight_levels=(-1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="distinct"):
        config(action_space="target_weight", weight_levels=(0.5, 0.5))
    with pytest.raises(ValueError, match="action_space"):
        config(action_space="nope")
    with pytest.raises(ValueError, match="reward"):
        config(reward="nope")


# ---------------------------------------------------------------------------- the env


def test_target_weight_episode_by_hand() -> None:
    m = market([100.0, 100.0, 110.0, 110.0], open_=[100.0, 100.0, 100.0, 110.0])
    ledger = run_policy(m, config(action_space="target_weight"), scheduled_policy(np.array([2, 4, 0]))).frame
    assert ledger["action"].tolist()[:3] == [0.5, 1.0, 0.0]  # the ledger holds the decided weights
    assert ledger["shares"].tolist() == [0, 49, 99, 0]  # 49; then 10,000 / (100.04 * 1.0001) = 99.94 -> 99
    env = SpyTradingEnv(m, config(action_space="target_weight"))
    obs, _ = env.reset(seed=0)
    assert env.action_space.n == 5
    obs, *_ = env.step(2)
    nav = env.nav
    assert obs[2] == np.float32(49 * 100.0 / nav)  # the position feature is the signed weight


def test_continuous_replay_takes_float_weights() -> None:
    m = market([100.0, 101.0, 102.0, 103.0, 104.0])
    cfg = config(action_space="continuous", fractional=True, rebalance_band=0.05)
    weights = iter([0.5, 0.52, 1.4, -0.3])
    ledger = run_policy(m, cfg, lambda _: next(weights)).frame
    assert ledger["action"].tolist()[:4] == [0.5, 0.52, 1.0, 0.0]
    trades = ledger["fill_price"].notna().tolist()
    assert trades == [False, True, False, True, True]  # 0.52 is within the 5% band of ~0.5
    assert SpyTradingEnv(m, cfg).action_space.shape == (1,)


# ---------------------------------------------------------------------------- rewards


def rewards_of(cfg: EnvConfig, m: MarketArrays, actions: list[int]) -> list[float]:
    env = SpyTradingEnv(m, cfg)
    env.reset(seed=0)
    return [env.step(a)[1] for a in actions]


def test_excess_log_return_subtracts_buy_and_hold_with_dividends() -> None:
    m = market([100.0, 102.0, 99.0, 101.0], dividends=[0.0, 0.0, 1.5, 0.0])
    plain = rewards_of(config(), m, [2, 1, 0])
    excess = rewards_of(config(reward="excess_log_return"), m, [2, 1, 0])
    benchmark = [math.log(102 / 100), math.log((99 + 1.5) / 102), math.log(101 / 99)]
    assert excess == pytest.approx([p - b for p, b in zip(plain, benchmark, strict=True)], abs=1e-15)


def test_drawdown_penalty_charges_only_a_deepening_drawdown() -> None:
    shaped = ShapedReward("drawdown_penalty", 0.01, 2.0)
    shaped.reset(100.0)
    navs = [110.0, 99.0, 104.5, 88.0, 120.0]
    got = [shaped(math.log(b / a), b, 1.0, 1.0, 0.0) for a, b in zip([100.0, *navs], navs, strict=False)]
    drawdowns = [0.0, 0.1, 0.05, 0.2, 0.0]  # from the running peak 110, then 120
    deeper = [0.0, 0.1, 0.0, 0.15, 0.0]
    expected = [math.log(b / a) - 2.0 * d for a, b, d in zip([100.0, *navs], navs, deeper, strict=False)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert drawdowns[3] == pytest.approx(1 - 88 / 110)


def test_differential_sharpe_follows_moody_and_saffell() -> None:
    eta = 0.4
    shaped = ShapedReward("differential_sharpe", eta, 0.0)
    shaped.reset(1.0)
    returns = [0.01, -0.02, 0.015, 0.03, -0.01]
    got = [shaped(r, 1.0, 1.0, 1.0, 0.0) for r in returns]
    a = b = 0.0
    expected = []
    for n, r in enumerate(returns, start=1):
        variance = b - a * a
        d = (b * (r - a) - 0.5 * a * (r * r - b)) / variance**1.5 if variance > 0 else 0.0
        expected.append(max(-DSR_CLIP, min(DSR_CLIP, d)))
        step = max(eta, 1 / n)
        a, b = a + step * (r - a), b + step * (r * r - b)
    assert got[:2] == [0.0, 0.0]  # no variance estimate yet
    assert got == pytest.approx(expected, abs=1e-12)
    assert any(0 < abs(x) < DSR_CLIP for x in got[2:])


def test_ruin_stays_minus_ten_and_final_for_every_reward() -> None:
    m = market([100.0, 100.0, 1.0, 1.0], open_=[100.0, 100.0, 100.0, 1.0])
    for reward in ("differential_sharpe", "drawdown_penalty", "excess_log_return"):
        cfg = config(allow_short=True, reward=reward)
        env = SpyTradingEnv(m, cfg)
        env.reset(seed=0)
        env.step(2)  # long at 100
        assert env.nav > 0
    short = market([100.0, 100.0, 300.0, 300.0], open_=[100.0, 100.0, 100.0, 300.0])
    env = SpyTradingEnv(short, config(allow_short=True, reward="drawdown_penalty"))
    env.reset(seed=0)
    env.step(0)  # short at 100, the price triples: ruin
    _, reward, terminated, _, _ = env.step(1)
    assert reward == -10.0 and terminated


# ---------------------------------------------------------------------------- old configs


def test_env_config_round_trips_and_old_configs_keep_their_meaning() -> None:
    cfg = config(action_space="continuous", reward="differential_sharpe", dsr_eta=0.05, rebalance_band=0.03)
    data = cfg.to_dict()
    assert data["version"] == ENV_CONFIG_VERSION and EnvConfig.from_dict(data) == cfg
    old = {k: v for k, v in default_settings().env_config().to_dict().items() if k in
           ("execution", "initial_cash", "episode_length", "random_start")}  # fmt: skip
    migrated = EnvConfig.from_dict(old)
    assert migrated.action_space == "discrete3" and migrated.reward == "log_return"
    assert migrated.execution == default_settings().env_config().execution
    with pytest.raises(ValueError, match="version 9"):
        EnvConfig.from_dict({**data, "version": 9})
