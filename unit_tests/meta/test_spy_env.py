"""SpyTradingEnv: gym contract, hand-computed fills and NAV, dividends, costs, no look-ahead, episodes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from finrl.meta.env.execution import COSTS_BEFORE_FEES, CostModel, ExecutionConfig
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import PORTFOLIO_FEATURES, EnvConfig, SpyTradingEnv
from finrl.meta.features import build_features
from finrl.meta.preprocessing import FeatureNormalizer
from unit_tests.conftest import cost_model, discrete3_config, execution_config, feature_spec, make_bars

pytestmark = pytest.mark.unit

SELL, HOLD, BUY = 0, 1, 2
ZERO_COSTS = CostModel(commission_bps=0.0, spread_bps=0.0, slippage_bps=0.0, **COSTS_BEFORE_FEES)


def old_execution(**changes: object) -> ExecutionConfig:
    """The defaults without the sell fees and the impact: the hand computations below are of commission,
    spread and slippage (test_execution.py and test_costs.py compute the other components)."""
    return execution_config(costs=cost_model(**COSTS_BEFORE_FEES), **changes)


WHOLE = discrete3_config(execution=old_execution(), initial_cash=10_000.0, episode_length=None)


def arrays(
    open_: list[float],
    close: list[float],
    dividends: list[float] | None = None,
    n_features: int = 2,
    feature_bound: float = 10.0,
) -> MarketArrays:
    n = len(open_)
    return MarketArrays(
        dates=np.array(pd.bdate_range("2020-01-06", periods=n), dtype="datetime64[ns]"),
        features=(np.arange(n * n_features, dtype=np.float32).reshape(n, n_features) / 10.0).astype(np.float32),
        open=np.asarray(open_, dtype=np.float64),
        close=np.asarray(close, dtype=np.float64),
        dividends=np.zeros(n) if dividends is None else np.asarray(dividends, dtype=np.float64),
        feature_bound=feature_bound,
    )


def market_from_bars(bars: pd.DataFrame, fit_rows: int = 200) -> MarketArrays:
    spec = feature_spec()
    frame = build_features(bars, spec)
    normalizer = FeatureNormalizer.fit(frame.iloc[:fit_rows], spec.observation_columns)
    return MarketArrays.from_features(frame, normalizer)


@pytest.fixture(scope="module")
def sample_market(sample_bars: pd.DataFrame) -> MarketArrays:
    return market_from_bars(sample_bars, fit_rows=500)


def run(env: SpyTradingEnv, actions: list[int], **reset_kwargs: object) -> dict[str, list]:
    obs, info = env.reset(**reset_kwargs)  # type: ignore[arg-type]
    out: dict[str, list] = {"obs": [obs], "reward": [], "nav": [info["nav"]], "info": [], "done": []}
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["nav"].append(info["nav"])
        out["info"].append(info)
        out["done"].append((terminated, truncated))
        if terminated or truncated:
            break
    return out


# ---------------------------------------------------------------------------- gym contract


def test_gymnasium_check_env(sample_market: MarketArrays) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(SpyTradingEnv(sample_market, discrete3_config(episode_length=100)), skip_render_check=True)


def test_stable_baselines3_check_env(sample_market: MarketArrays) -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(SpyTradingEnv(sample_market, discrete3_config(episode_length=100)), warn=True)


def test_config_validation(sample_market: MarketArrays) -> None:
    with pytest.raises(ValueError, match="initial_cash"):
        discrete3_config(initial_cash=0.0)
    with pytest.raises(ValueError, match="episode_length"):
        discrete3_config(episode_length=0)
    with pytest.raises(ValueError, match="exceeds the window"):
        SpyTradingEnv(sample_market, discrete3_config(episode_length=len(sample_market)))
    SpyTradingEnv(sample_market, discrete3_config(episode_length=len(sample_market) - 1))


# ---------------------------------------------------------------------------- hand-computed trading


def test_hand_computed_buy_then_sell_next_open() -> None:
    market = arrays(open_=[100.0, 101.0, 103.0, 102.0], close=[100.5, 102.0, 104.0, 101.0])
    env = SpyTradingEnv(market, WHOLE, record=True)
    obs, info = env.reset(seed=0)
    assert info == {"nav": 10_000.0, "position": 0}
    np.testing.assert_array_equal(obs, np.array([0.0, 0.1, 0.0, 1.0, 0.0], dtype=np.float32))

    # buy after the close of day 0: sized at close[0] (all a live order can know),
    # 10000 / (100.5 * 1.00025 * 1.0001) = 99.46 -> 99 shares; fills at open[1] = 101 * 1.00025 = 101.02525,
    # so the gap up leaves cash slightly negative, as a real market-on-open order would
    obs, reward, terminated, truncated, info = env.step(BUY)
    buy_price = 101.02525
    commission1 = 99 * buy_price * 1e-4
    cash1 = 10_000.0 - 99 * buy_price - commission1
    nav1 = cash1 + 99 * 102.0
    assert cash1 == pytest.approx(-2.499899975, rel=1e-9)
    assert info["nav"] == pytest.approx(nav1, rel=1e-12)
    assert reward == math.log(info["nav"] / 10_000.0)
    assert reward == pytest.approx(math.log(nav1 / 10_000.0), rel=1e-10)
    assert info["position"] == 1 and info["traded"] is True
    assert info["costs"] == pytest.approx(commission1 + 99 * 0.02525, rel=1e-12)
    assert (terminated, truncated) == (False, False)
    assert env.nav == info["nav"] and env.day_index == 1
    env_nav1 = info["nav"]
    # observation at day 1: features of day 1, long, cash fraction, log(close1 / entry)
    np.testing.assert_array_equal(obs[:2], market.features[1])
    assert obs[-3] == 1.0
    assert obs[-2] == pytest.approx(cash1 / nav1, rel=1e-6)
    assert obs[-1] == pytest.approx(math.log(102.0 / buy_price), rel=1e-5)

    # sell after the close of day 1: fills at open[2] = 103 * 0.99975 = 102.97425
    obs, reward, terminated, truncated, info = env.step(SELL)
    sell_price = 102.97425
    commission2 = 99 * sell_price * 1e-4
    cash2 = cash1 + 99 * sell_price - commission2
    assert info["nav"] == pytest.approx(cash2, rel=1e-12)
    assert reward == math.log(info["nav"] / env_nav1)
    assert reward == pytest.approx(math.log(cash2 / nav1), rel=1e-10)
    assert info["costs"] == pytest.approx(commission2 + 99 * 0.02575, rel=1e-12)
    assert info["position"] == 0 and info["traded"] is True
    np.testing.assert_array_equal(obs[-3:], np.array([0.0, 1.0, 0.0], dtype=np.float32))

    obs, reward, terminated, truncated, info = env.step(HOLD)
    assert reward == 0.0 and info["nav"] == pytest.approx(cash2, rel=1e-12)
    assert info["costs"] == 0.0 and info["traded"] is False
    assert (terminated, truncated) == (False, True)

    log = env.log.as_arrays()
    np.testing.assert_array_equal(log["index"], [0, 1, 2, 3])
    np.testing.assert_array_equal(log["action"][1:], [BUY, SELL, HOLD])
    np.testing.assert_array_equal(log["position"], [0, 1, 0, 0])
    np.testing.assert_array_equal(log["shares"], [0, 99, 0, 0])
    np.testing.assert_allclose(log["fill_price"][1:3], [buy_price, sell_price], rtol=1e-12)
    assert np.isnan(log["fill_price"][0]) and np.isnan(log["fill_price"][3])
    np.testing.assert_allclose(
        log["costs"], [0.0, commission1 + 99 * 0.02525, commission2 + 99 * 0.02575, 0.0], rtol=1e-12
    )
    np.testing.assert_allclose(log["cash"], [10_000.0, cash1, cash2, cash2], rtol=1e-12)
    np.testing.assert_allclose(log["nav"], [10_000.0, nav1, cash2, cash2], rtol=1e-12)
    np.testing.assert_allclose(
        log["reward"], [0.0, math.log(nav1 / 1e4), math.log(cash2 / nav1), 0.0], rtol=1e-9, atol=1e-15
    )
    # the rewards telescope to the log of total growth
    assert sum(log["reward"]) == pytest.approx(math.log(cash2 / 10_000.0), rel=1e-9)


def test_fill_at_next_close() -> None:
    market = arrays(open_=[100.0, 101.0, 103.0, 102.0], close=[100.5, 102.0, 104.0, 101.0])
    config = replace(WHOLE, execution=old_execution(fill_at="next_close"))
    env = SpyTradingEnv(market, config, record=True)
    env.reset(seed=0)
    _, _, _, _, info = env.step(BUY)
    buy_price = 102.0 * 1.00025  # close[1], not open[1]
    shares = math.floor(10_000.0 / (100.5 * 1.00025 * 1.0001))  # sized at the decision's close[0]
    assert shares == 99
    cash = 10_000.0 - shares * buy_price * 1.0001
    assert env.log.as_arrays()["fill_price"][1] == pytest.approx(buy_price, rel=1e-12)
    assert info["nav"] == pytest.approx(cash + shares * 102.0, rel=1e-12)
    # filled and marked at the same close: the day's return is only the costs
    assert info["nav"] < 10_000.0
    assert info["nav"] == pytest.approx(10_000.0 - info["costs"], rel=1e-12)
    _, _, _, _, info = env.step(SELL)
    assert env.log.as_arrays()["fill_price"][2] == pytest.approx(104.0 * 0.99975, rel=1e-12)
    assert info["nav"] == pytest.approx(cash + shares * 104.0 * 0.99975 * 0.9999, rel=1e-12)


def test_repeated_buys_while_long_cost_nothing(sample_market: MarketArrays) -> None:
    config = discrete3_config(episode_length=60, random_start=False)
    repeated = run(SpyTradingEnv(sample_market, config, record=True), [BUY] * 60, seed=1)
    held = run(SpyTradingEnv(sample_market, config, record=True), [BUY] + [HOLD] * 59, seed=1)
    assert repeated["nav"] == held["nav"]
    assert repeated["reward"] == held["reward"]
    assert repeated["info"][0]["traded"] and repeated["info"][0]["costs"] > 0
    assert all(i["costs"] == 0.0 and not i["traded"] and i["position"] == 1 for i in repeated["info"][1:])


def test_repeated_buys_keep_shares(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=30, random_start=False), record=True)
    run(env, [BUY] * 30)
    shares = env.log.as_arrays()["shares"][1:]
    assert shares[0] > 0 and np.all(shares == shares[0])


def test_repeated_sells_while_flat_cost_nothing(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=40, random_start=False), record=True)
    out = run(env, [SELL] * 40)
    assert out["nav"] == [100_000.0] * 41
    assert out["reward"] == [0.0] * 40
    assert all(i["costs"] == 0.0 and not i["traded"] and i["position"] == 0 for i in out["info"])
    assert np.all(env.log.as_arrays()["shares"] == 0)


def test_dividend_paid_to_holders_at_previous_close() -> None:
    open_, close = [100.0, 100.0, 98.0, 99.0], [100.0, 100.0, 98.5, 99.0]
    market = arrays(open_, close, dividends=[0.0, 0.0, 1.5, 0.0])  # ex-date day 2
    config = replace(WHOLE, execution=execution_config(costs=ZERO_COSTS))

    # bought at open[1]: holds 100 shares at close[1] -> receives 1.5 * 100 on day 2
    held = SpyTradingEnv(market, config)
    held.reset()
    held.step(BUY)
    _, _, _, _, info = held.step(HOLD)
    assert info["nav"] == pytest.approx(0.0 + 100 * 98.5 + 150.0, rel=1e-12)

    # bought at open[2], the ex-date: no dividend
    late = SpyTradingEnv(market, config)
    late.reset()
    late.step(HOLD)
    _, _, _, _, info = late.step(BUY)
    shares = math.floor(10_000.0 / 100.0)  # sized at close[1], filled at open[2]
    assert info["nav"] == pytest.approx(10_000.0 - shares * 98.0 + shares * 98.5, rel=1e-12)

    # sold at open[2] (the ex-date) still receives it: it held the shares at close[1]
    sold = SpyTradingEnv(market, config)
    sold.reset()
    sold.step(BUY)
    _, _, _, _, info = sold.step(SELL)
    assert info["nav"] == pytest.approx(100 * 98.0 + 150.0, rel=1e-12)

    # flat throughout: nothing
    flat = SpyTradingEnv(market, config)
    flat.reset()
    flat.step(HOLD)
    _, _, _, _, info = flat.step(HOLD)
    assert info["nav"] == 10_000.0


def test_short_pays_the_dividend() -> None:
    market = arrays([100.0, 100.0, 98.0, 99.0], [100.0, 100.0, 98.5, 99.0], dividends=[0.0, 0.0, 1.5, 0.0])
    config = replace(WHOLE, execution=execution_config(costs=ZERO_COSTS, allow_short=True))
    env = SpyTradingEnv(market, config)
    env.reset()
    env.step(SELL)  # 100 short at open[1] = 100
    _, _, _, _, info = env.step(HOLD)
    assert info["nav"] == pytest.approx(20_000.0 - 100 * 98.5 - 150.0, rel=1e-12)


def _costly_and_free(market: MarketArrays, actions: list, fractional: bool) -> tuple[dict, dict]:
    base = discrete3_config(initial_cash=10_000.0, episode_length=len(actions), random_start=False)
    costly = replace(base, execution=execution_config(fractional_shares=fractional))
    free = replace(base, execution=execution_config(costs=ZERO_COSTS, fractional_shares=fractional))
    return run(SpyTradingEnv(market, costly), actions), run(SpyTradingEnv(market, free), actions)


def test_costs_strictly_reduce_nav(sample_market: MarketArrays) -> None:
    actions = list(np.random.default_rng(5).integers(0, 3, 200))
    with_costs, without = _costly_and_free(sample_market, actions, fractional=False)
    assert with_costs["nav"][-1] < without["nav"][-1]
    assert sum(i["traded"] for i in with_costs["info"]) > 20
    assert sum(i["costs"] for i in with_costs["info"]) > 0
    assert all(i["costs"] == 0.0 for i in without["info"])


def test_costs_strictly_reduce_nav_hand_computed() -> None:
    market = arrays([100.0, 100.0, 103.0, 102.0, 101.0], [100.0, 102.0, 104.0, 101.0, 99.0])
    actions = [BUY, SELL, BUY, HOLD]
    with_costs, without = _costly_and_free(market, actions, fractional=False)
    # zero costs: 100 shares at 100, sold at 103; then sized at close[2]: floor(10300 / 104) = 99 shares,
    # filled at open[3] = 102 (cash 202), marked at 101 and 99
    np.testing.assert_allclose(without["nav"], [10_000.0, 10_200.0, 10_300.0, 10_201.0, 10_003.0], rtol=1e-12)
    assert all(c < f for c, f in zip(with_costs["nav"][1:], without["nav"][1:], strict=True))


def test_costs_strictly_reduce_nav_fractional(sample_market: MarketArrays) -> None:
    actions = list(np.random.default_rng(5).integers(0, 3, 200))
    with_costs, without = _costly_and_free(sample_market, actions, fractional=True)
    # fully in or out: the NAV ratio is a product of per-trade cost factors < 1
    first = next(i for i, info in enumerate(with_costs["info"]) if info["traded"])
    assert np.all(np.array(with_costs["nav"][first + 1 :]) < np.array(without["nav"][first + 1 :]))


def test_short_selling_loses_when_price_rises() -> None:
    market = arrays([100.0, 100.0, 105.0, 110.0], [100.0, 101.0, 106.0, 112.0])
    config = replace(WHOLE, execution=old_execution(allow_short=True))
    env = SpyTradingEnv(market, config, record=True)
    env.reset()
    _, reward1, _, _, info1 = env.step(SELL)
    assert info1["position"] == -1
    # sell at 99.975: 10000 / (99.975 * 1.0001) = 100.015 -> 100 short
    cash = 10_000.0 + 100 * 99.975 * 0.9999
    assert env.log.as_arrays()["shares"][1] == -100
    assert info1["nav"] == pytest.approx(cash - 100 * 101.0, rel=1e-12)
    assert reward1 < 0
    obs, reward2, _, _, info2 = env.step(HOLD)
    assert info2["nav"] == pytest.approx(cash - 100 * 106.0, rel=1e-12)
    assert info2["nav"] < info1["nav"] and reward2 < 0
    assert obs[-3] == -1.0
    assert obs[-1] == pytest.approx(-math.log(106.0 / 99.975), rel=1e-5)  # unrealized loss
    _, _, _, _, info3 = env.step(SELL)  # repeated sell while short: no-op
    assert info3["costs"] == 0.0 and info3["nav"] == pytest.approx(cash - 100 * 112.0, rel=1e-12)


def test_sell_without_short_goes_flat_not_short() -> None:
    market = arrays([100.0, 100.0, 105.0], [100.0, 101.0, 106.0])
    env = SpyTradingEnv(market, WHOLE)
    env.reset()
    _, _, _, _, info = env.step(SELL)
    assert info["position"] == 0 and info["nav"] == 10_000.0


def _planted_dividend_bars(bars: pd.DataFrame, every: int = 63, amount: float = 0.5) -> pd.DataFrame:
    out = bars.copy()
    close = out["close"].to_numpy()
    factor = np.ones(len(out))
    for k in range(every, len(out), every):
        factor[:k] *= 1.0 - amount / close[k - 1]
    out["adj_close"] = close * factor
    return out


def test_buy_and_hold_equals_hand_computation(sample_bars: pd.DataFrame) -> None:
    market = market_from_bars(_planted_dividend_bars(sample_bars), fit_rows=500)
    window = market.window(100, 400)
    assert np.count_nonzero(window.dividends) >= 4
    env = SpyTradingEnv(window, discrete3_config(execution=old_execution(), episode_length=None))
    out = run(env, [BUY] + [HOLD] * (len(window) - 2))
    assert len(out["reward"]) == len(window) - 1 and out["done"][-1] == (False, True)

    buy_price = window.open[1] * (1 + 2.5e-4)
    shares = math.floor(100_000.0 / (buy_price * (1 + 1e-4)))
    cash = 100_000.0 - shares * buy_price * (1 + 1e-4)
    dividends = shares * window.dividends[2:].sum()  # the dividend of day 1 belonged to the seller
    expected = cash + shares * window.close[-1] + dividends
    assert out["nav"][-1] == pytest.approx(expected, rel=1e-12)
    assert sum(out["reward"]) == pytest.approx(math.log(expected / 100_000.0), rel=1e-9)
    assert dividends == pytest.approx(shares * 0.5 * np.count_nonzero(window.dividends[2:]), rel=1e-9)


# ---------------------------------------------------------------------------- no look-ahead


def _trajectory(market: MarketArrays, actions: list[int], config: EnvConfig) -> tuple[np.ndarray, list, list]:
    out = run(SpyTradingEnv(market, config), actions)
    return np.stack(out["obs"]), out["reward"], out["nav"]


@pytest.mark.parametrize("t", [1, 5, 60, 150])
def test_no_look_ahead_direct_arrays(sample_market: MarketArrays, t: int) -> None:
    """Perturb every array after day t: the observation at t and everything up to t stay bit-identical."""
    market = sample_market.window(0, 200)
    rng = np.random.default_rng(t)
    later = slice(t + 1, None)
    n_later = len(market) - t - 1
    scale = np.exp(rng.normal(0, 0.1, n_later))
    features = market.features.copy()
    features[later] = rng.normal(0, 3, features[later].shape).astype(np.float32)
    dividends = market.dividends.copy()
    dividends[later] = rng.uniform(0, 2, n_later)
    keep = np.ones(t + 1)
    open_, close = market.open * np.r_[keep, scale], market.close * np.r_[keep, scale[::-1]]
    volatility, adv = (a * np.r_[keep, rng.uniform(0.2, 5.0, n_later)] for a in market.liquidity)  # impact inputs
    perturbed = MarketArrays(market.dates, features, open_, close, dividends, market.feature_bound, volatility, adv)
    actions = list(rng.integers(0, 3, len(market) - 1))
    for execution in (execution_config(), execution_config(allow_short=True, fill_at="next_close")):
        config = discrete3_config(execution=execution, episode_length=None)
        obs_a, rewards_a, nav_a = _trajectory(market, actions, config)
        obs_b, rewards_b, nav_b = _trajectory(perturbed, actions, config)
        np.testing.assert_array_equal(obs_a[: t + 1], obs_b[: t + 1])
        assert rewards_a[:t] == rewards_b[:t]
        assert nav_a[: t + 1] == nav_b[: t + 1]
        assert not np.array_equal(obs_a[t + 1 :], obs_b[t + 1 :])  # the perturbation did bite
        assert nav_a[t + 1 :] != nav_b[t + 1 :]


@pytest.mark.parametrize("t", [10, 120])
def test_no_look_ahead_through_the_feature_pipeline(t: int) -> None:
    """Perturb every bar after feature day t, rebuild features and arrays: nothing up to t changes."""
    bars = make_bars(420, seed=11)
    spec = feature_spec()
    base_frame = build_features(bars, spec)
    normalizer = FeatureNormalizer.fit(base_frame.iloc[:100], spec.observation_columns)  # fixed, fitted once
    day = base_frame.index[t]
    rng = np.random.default_rng(t)
    perturbed = bars.copy()
    later = perturbed.index > day
    scale = np.exp(rng.normal(0, 0.1, later.sum()))
    for column in ("open", "high", "low", "close"):
        perturbed.loc[later, column] = perturbed.loc[later, column] * scale
    # a different adj_close factor after t also plants dividends there
    perturbed.loc[later, "adj_close"] = perturbed.loc[later, "close"] * np.linspace(0.9, 0.95, later.sum())
    perturbed.loc[later, "volume"] = perturbed.loc[later, "volume"] * 2
    perturbed.loc[later, "vix"] = 60.0
    market_a = MarketArrays.from_features(base_frame, normalizer)
    market_b = MarketArrays.from_features(build_features(perturbed, spec), normalizer)
    assert np.count_nonzero(market_b.dividends[t + 1 :]) > 0
    actions = list(np.random.default_rng(0).integers(0, 3, len(market_a) - 1))
    config = discrete3_config(execution=execution_config(allow_short=True), episode_length=None)
    obs_a, rewards_a, nav_a = _trajectory(market_a, actions, config)
    obs_b, rewards_b, nav_b = _trajectory(market_b, actions, config)
    np.testing.assert_array_equal(obs_a[: t + 1], obs_b[: t + 1])
    assert rewards_a[:t] == rewards_b[:t]
    assert nav_a[: t + 1] == nav_b[: t + 1]
    assert not np.array_equal(obs_a[t + 1 :], obs_b[t + 1 :])


# ---------------------------------------------------------------------------- episodes and seeding


def test_same_seed_same_start_and_trajectory(sample_market: MarketArrays) -> None:
    config = discrete3_config(episode_length=50)
    actions = list(np.random.default_rng(3).integers(0, 3, 50))
    env_a, env_b = SpyTradingEnv(sample_market, config), SpyTradingEnv(sample_market, config)
    a, b = run(env_a, actions, seed=123), run(env_b, actions, seed=123)
    assert env_a.day_index == env_b.day_index
    np.testing.assert_array_equal(np.stack(a["obs"]), np.stack(b["obs"]))
    assert a["reward"] == b["reward"] and a["nav"] == b["nav"]
    # the same env reset again with the same seed replays the episode
    c = run(env_a, actions, seed=123)
    np.testing.assert_array_equal(np.stack(a["obs"]), np.stack(c["obs"]))
    assert a["reward"] == c["reward"]


def test_episode_length_steps_then_truncated(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=25))
    env.reset(seed=4)
    start = env.day_index
    for i in range(25):
        _, _, terminated, truncated, _ = env.step(HOLD)
        assert terminated is False
        assert truncated is (i == 24)
    assert env.day_index == start + 25


def test_random_starts_inside_window_and_vary(sample_market: MarketArrays) -> None:
    length = 252
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=length))
    starts = []
    for seed in range(30):
        env.reset(seed=seed)
        starts.append(env.day_index)
    assert all(0 <= s <= len(sample_market) - 1 - length for s in starts)
    assert len(set(starts)) > 10


def test_random_starts_cover_exactly_the_valid_range() -> None:
    market = arrays([100.0] * 12, [100.0] * 12)
    env = SpyTradingEnv(market, discrete3_config(episode_length=8))
    starts = set()
    for seed in range(300):
        env.reset(seed=seed)
        starts.add(env.day_index)
        steps = 0
        truncated = False
        while not truncated:
            _, _, _, truncated, _ = env.step(HOLD)
            steps += 1
        assert steps == 8
    assert starts == {0, 1, 2, 3}  # 11 steps in the window, 8 per episode


def test_no_random_start_begins_at_zero(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=30, random_start=False))
    for seed in range(3):
        env.reset(seed=seed)
        assert env.day_index == 0


def test_options_start_is_honoured(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=20))
    obs, _ = env.reset(seed=0, options={"start": 17})
    assert env.day_index == 17
    np.testing.assert_array_equal(obs[: sample_market.n_features], sample_market.features[17])
    out = run(env, [HOLD] * 20, seed=0, options={"start": 17})
    assert len(out["reward"]) == 20 and env.day_index == 37


@pytest.mark.parametrize("start", [-1, "last"])
def test_options_start_out_of_range_raises(sample_market: MarketArrays, start: object) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=None))
    k = len(sample_market) - 1 if start == "last" else start
    with pytest.raises(ValueError):
        env.reset(options={"start": k})


def test_episode_length_none_runs_the_whole_window() -> None:
    market = market_from_bars(make_bars(160, seed=2), fit_rows=50)
    env = SpyTradingEnv(market, discrete3_config(episode_length=None), record=True)
    out = run(env, [HOLD, BUY, SELL] * 100, seed=9)
    assert len(out["reward"]) == len(market) - 1
    assert out["done"][-1] == (False, True)
    assert all(d == (False, False) for d in out["done"][:-1])
    assert env.log.size == len(market)
    np.testing.assert_array_equal(env.log.as_arrays()["index"], np.arange(len(market)))


@pytest.mark.parametrize("action", [3, -1])
def test_invalid_action_raises(sample_market: MarketArrays, action: int) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=10))
    env.reset(seed=0)
    day, nav = env.day_index, env.nav
    with pytest.raises(ValueError):
        env.step(action)
    assert env.day_index == day and env.nav == nav


# ---------------------------------------------------------------------------- observation


def test_observation_dtype_space_and_portfolio_entries(sample_market: MarketArrays) -> None:
    env = SpyTradingEnv(sample_market, discrete3_config(episode_length=120, random_start=False), record=True)
    assert PORTFOLIO_FEATURES == ("position", "cash_fraction", "unrealized_return")
    assert env.observation_space.shape == (sample_market.n_features + 3,)
    actions = list(np.random.default_rng(8).integers(0, 3, 120))
    out = run(env, actions)
    log = env.log.as_arrays()
    entry = math.nan
    for i, obs in enumerate(out["obs"]):
        assert obs.dtype == np.float32
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs[: sample_market.n_features], sample_market.features[i])
        position = log["position"][i]
        assert obs[-3] == position
        assert obs[-2] == pytest.approx(log["cash"][i] / log["nav"][i], rel=1e-6, abs=1e-7)
        if i > 0 and log["shares"][i] != 0 and log["shares"][i - 1] == 0:
            entry = log["fill_price"][i]
        if position == 0:
            assert obs[-1] == 0.0
        else:
            expected = max(-1.0, min(1.0, math.log(sample_market.close[i] / entry)))
            assert obs[-1] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_short_observation_stays_inside_observation_space() -> None:
    market = arrays([100.0, 100.0, 150.0, 195.0], [100.0, 100.0, 150.0, 195.0])
    config = replace(WHOLE, execution=execution_config(allow_short=True, costs=ZERO_COSTS))
    env = SpyTradingEnv(market, config)
    env.reset()
    for action in (SELL, HOLD, HOLD):
        obs, *_ = env.step(action)
        assert env.observation_space.contains(obs)
