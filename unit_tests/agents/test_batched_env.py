"""BatchedSpyEnv: bit-identical to a DummyVecEnv of SpyTradingEnv over whole episodes, resets,
seeds and options; the VecEnv contract; identical PPO weights either way (integration)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from finrl.agents.batched_env import BatchedSpyEnv
from finrl.meta.env.execution import COSTS_BEFORE_FEES, CostModel
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from unit_tests.conftest import cost_model, env_config, execution_config

# one test trains PPO (integration); the others are unit tests, marked one by one


def make_market(kind: str, days: int = 160, seed: int = 0) -> MarketArrays:
    """Random-walk prices with gaps; ``dividends``: a payout every 20 days; ``ruin``: 3x spikes and 97% crashes."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.02, days)))
    open_ = close * np.exp(rng.normal(0.0, 0.01, days))
    dividends = np.zeros(days)
    if kind == "dividends":
        dividends[5::20] = close[4::20][: len(dividends[5::20])] * 0.004
    if kind == "ruin":
        for day in range(15, days, 30):  # open and close jump: shorts are wiped out
            close[day:] *= 3.0
            open_[day:] *= 3.0
        for day in range(30, days, 30):  # gap up at the open, crash by the close: a long with debt goes under
            open_[day] *= 1.2
            close[day:] *= 0.03
            open_[day + 1 :] *= 0.03
    features = rng.normal(0.0, 1.0, (days, 4)).astype(np.float32)
    volatility = adv = None
    if kind == "impact":  # a thin market: ~100-share orders against ~2,000 shares a day move the price ~0.5%
        volatility = rng.uniform(0.005, 0.04, days)
        volatility[:2] = np.nan  # no history yet: no impact
        adv = rng.uniform(500.0, 5_000.0, days)
        adv[7::25] = 0.0  # no volume data that day: no impact
    return MarketArrays(
        dates=np.array(pd.bdate_range("2020-01-06", periods=days), dtype="datetime64[ns]"),
        features=features,
        open=open_,
        close=close,
        dividends=dividends,
        feature_bound=10.0,
        volatility=volatility,
        adv=adv,
    )


SPACES: dict[str, dict[str, Any]] = {
    "discrete3": {"action_space": "discrete3"},
    "target_weight": {"action_space": "target_weight", "weight_levels": (0.0, 0.25, 0.5, 0.75, 1.0)},
    "continuous": {"action_space": "continuous"},
}
SHORT_LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)
REWARDS = ("log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return")


def config(
    allow_short: bool = False,
    fractional: bool = False,
    fill_at: str = "next_open",
    episode_length: int | None = 40,
    random_start: bool = True,
    position_fraction: float = 1.0,
    costs: CostModel = CostModel(commission_bps=1.0, spread_bps=2.0, slippage_bps=3.0, **COSTS_BEFORE_FEES),
    space: str = "discrete3",
    reward: str = "log_return",
) -> EnvConfig:
    """A small account; the weight spaces with a 0.05 no-trade band, target_weight short to -1 with ``allow_short``."""
    execution = execution_config(
        costs=costs,
        position_fraction=position_fraction,
        allow_short=allow_short,
        fractional_shares=fractional,
        fill_at=fill_at,
    )
    changes: dict[str, Any] = {**SPACES[space], "reward": reward, "rebalance_band": 0.05}
    if space == "target_weight" and allow_short:
        changes["weight_levels"] = SHORT_LEVELS
    return env_config(
        execution=execution, initial_cash=10_000.0, episode_length=episode_length, random_start=random_start, **changes
    )


def dummy(market: MarketArrays, cfg: EnvConfig, n_envs: int) -> DummyVecEnv:
    return DummyVecEnv([partial(SpyTradingEnv, market, cfg)] * n_envs)


def assert_same_infos(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if key == "terminal_observation":
                assert x[key].dtype == y[key].dtype == np.float32
                assert np.array_equal(x[key], y[key]), key
            else:
                assert type(x[key]) is type(y[key]), key
                assert x[key] == y[key], (key, x[key], y[key])


def random_actions(space: gym.Space[Any], rng: np.random.Generator, n_envs: int) -> np.ndarray:
    """What a policy hands a VecEnv: ``[n]`` ints for the discrete spaces, ``[n, 1]`` float32 weights for Box.

    Box samples are stretched past both bounds a third of the time (the env clips them, and the
    clipped ones repeat a weight exactly: inside the no-trade band)."""
    samples = np.array([space.sample() for _ in range(n_envs)])
    if isinstance(space, gym.spaces.Box):
        stretched = rng.random((n_envs, 1)) < 1 / 3
        samples = np.where(stretched, samples * np.float32(1.6) - np.float32(0.3), samples).astype(np.float32)
    return samples


def play_both(market: MarketArrays, cfg: EnvConfig, n_envs: int, seed: int, steps: int = 250) -> dict[str, int]:
    """Random actions, seeds, options and mid-episode resets into both VecEnvs; every output must match."""
    ours, theirs = BatchedSpyEnv(market, cfg, n_envs), dummy(market, cfg, n_envs)
    rng = np.random.default_rng(seed)
    space = SpyTradingEnv(market, cfg).action_space
    space.seed(seed)
    seen = {"done": 0, "ruin": 0, "trades": 0}
    for env in (ours, theirs):
        env.seed(seed)
    a, b = ours.reset(), theirs.reset()
    assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)
    assert ours.reset_infos == theirs.reset_infos
    for _ in range(steps):
        actions = random_actions(space, rng, n_envs)
        oa, ra, da, ia = ours.step(actions)
        ob, rb, db, ib = theirs.step(actions)
        assert oa.dtype == ob.dtype and np.array_equal(oa, ob)
        assert ra.dtype == rb.dtype == np.float32 and np.array_equal(ra, rb)
        assert np.array_equal(da, db)
        assert_same_infos(ia, ib)
        assert ours.reset_infos == theirs.reset_infos
        seen["done"] += int(da.sum())
        seen["ruin"] += int((ra == -10.0).sum())
        seen["trades"] += sum(info["traded"] for info in ia)
        draw = rng.random()
        if draw < 0.01:  # a reset from a new seed, some envs to a chosen start day
            reseed = int(rng.integers(0, 1000))
            options = [
                {"start": int(rng.integers(0, len(market) - 1))} if rng.random() < 0.5 else {} for _ in range(n_envs)
            ]
            for env in (ours, theirs):
                env.seed(reseed)
                env.set_options(options)
            a, b = ours.reset(), theirs.reset()
            assert np.array_equal(a, b) and ours.reset_infos == theirs.reset_infos
        elif draw < 0.02:  # a reset without a seed continues each env's own generator
            assert np.array_equal(ours.reset(), theirs.reset())
    assert ours.get_attr("np_random_seed") == theirs.get_attr("np_random_seed")
    return seen


CASES = list(itertools.product((False, True), (False, True), ("next_open", "next_close")))
# the sell/hold/buy agent, the default agent (Settings: target weights, drawdown penalty), and weights as a Box
AGENTS = [("discrete3", "log_return"), ("target_weight", "drawdown_penalty"), ("continuous", "drawdown_penalty")]
FEES = {"sec_fee_per_million": 5_000.0, "finra_taf_per_share": 0.01, "finra_taf_max": 0.9, "impact_coef": 1.0}


@pytest.mark.unit
@pytest.mark.parametrize("n_envs", [1, 16])
@pytest.mark.parametrize(("allow_short", "fractional", "fill_at"), CASES)
@pytest.mark.parametrize("kind", ["dividends", "ruin"])
@pytest.mark.parametrize(("space", "reward"), AGENTS)
def test_identical_to_dummy_vec_env(
    space: str, reward: str, kind: str, allow_short: bool, fractional: bool, fill_at: str, n_envs: int
) -> None:
    market = make_market(kind)
    cfg = config(allow_short, fractional, fill_at, space=space, reward=reward)
    seen = {"done": 0, "ruin": 0, "trades": 0}
    for seed in (0, 7):
        for key, count in play_both(market, cfg, n_envs, seed).items():
            seen[key] += count
    assert seen["done"] > 0 and seen["trades"] > 0
    if kind == "ruin" and n_envs == 16 and (allow_short or space == "discrete3"):
        assert seen["ruin"] > 0  # the ruin path was exercised


@pytest.mark.unit
@pytest.mark.parametrize("n_envs", [1, 16])
@pytest.mark.parametrize(("allow_short", "fractional", "fill_at"), CASES)
@pytest.mark.parametrize(("space", "reward"), AGENTS)
def test_identical_with_impact_and_sell_fees(
    space: str, reward: str, allow_short: bool, fractional: bool, fill_at: str, n_envs: int
) -> None:
    """Every cost component non-zero: square-root impact on every fill, SEC fee and FINRA TAF on sells."""
    market = make_market("impact")
    cfg = config(allow_short, fractional, fill_at, costs=cost_model(**FEES), space=space, reward=reward)
    seen = play_both(market, cfg, n_envs, seed=5)
    assert seen["done"] > 0 and seen["trades"] > 0
    log = run_logged(market, cfg)  # the components were all paid
    for name in ("cost_impact", "cost_sec_fee", "cost_taf"):
        assert log[name].max() > 0, name
    assert log["cost_taf"].max() <= 0.9  # the cap holds


def run_logged(market: MarketArrays, cfg: EnvConfig) -> dict[str, np.ndarray]:
    env = SpyTradingEnv(market, replace(cfg, episode_length=None), record=True)
    env.reset(seed=0)
    env.action_space.seed(1)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    assert env.log is not None
    return env.log.as_arrays()


@pytest.mark.unit
@pytest.mark.parametrize("fractional", [False, True])
@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("kind", ["dividends", "ruin"])
def test_identical_for_every_action_space_and_reward(
    kind: str, space: str, reward: str, allow_short: bool, fractional: bool
) -> None:
    """Each shaping's state carried per env across steps and reset with its episode; the weight spaces'
    bands, partial adds (averaged entry prices) and signed-weight observations; clipped Box actions."""
    cfg = config(allow_short, fractional, space=space, reward=reward)
    seen = play_both(make_market(kind), cfg, 8, seed=3)
    assert seen["done"] > 0 and seen["trades"] > 0
    if kind == "ruin" and allow_short:
        assert seen["ruin"] > 0


@pytest.mark.unit
@pytest.mark.parametrize(
    "cfg",
    [
        config(episode_length=None),  # the whole window, one episode after another
        config(episode_length=30, random_start=False),
        config(allow_short=True, position_fraction=0.5, fractional=True),
        config(costs=CostModel(0.0, 0.0, 0.0, **COSTS_BEFORE_FEES)),
        config(episode_length=None, space="target_weight", reward="differential_sharpe"),
        config(allow_short=True, position_fraction=0.5, space="target_weight", reward="drawdown_penalty"),
        config(costs=CostModel(0.0, 0.0, 0.0, **COSTS_BEFORE_FEES), space="continuous", reward="excess_log_return"),
    ],
    ids=[
        "whole-window",
        "fixed-start",
        "half-position",
        "no-costs",
        "weights-whole-window",
        "weights-half-position",
        "box-no-costs",
    ],
)
def test_identical_for_other_configs(cfg: EnvConfig) -> None:
    play_both(make_market("dividends", seed=3), cfg, 5, seed=11, steps=400)


@pytest.mark.unit
@pytest.mark.parametrize("agent", ["discrete3", "default"])
def test_real_features_market_identical(sample_bars: pd.DataFrame, agent: str) -> None:
    from finrl.meta.features import FeatureSpec, build_features
    from finrl.meta.preprocessing import FeatureNormalizer

    spec = FeatureSpec(use_vix=True)
    frame = build_features(sample_bars, spec).iloc[:400]
    market = MarketArrays.from_features(frame, FeatureNormalizer.fit(frame, spec.observation_columns))
    assert market.liquidity[0][-1] > 0 and market.liquidity[1][-1] > 0  # impact inputs from the bars
    cfg = env_config(episode_length=252)  # the Settings' defaults: costs, action space, reward
    if agent == "discrete3":
        cfg = replace(cfg, action_space="discrete3", reward="log_return")
    play_both(market, cfg, 16, seed=42, steps=300)


INVALID = {"discrete3": ([0, 1, 2, 3], "invalid action 3"), "target_weight": ([0, 4, 5, 1], "invalid action 5")}


@pytest.mark.unit
@pytest.mark.parametrize("space", list(SPACES))
def test_vec_env_contract(space: str) -> None:
    market, cfg = make_market("dividends"), config(space=space)
    env = BatchedSpyEnv(market, cfg, 4)
    reference = SpyTradingEnv(market, cfg)
    assert isinstance(env, VecEnv) and env.num_envs == 4
    assert env.observation_space == reference.observation_space and env.action_space == reference.action_space
    env.seed(5)
    obs = env.reset()
    assert obs.shape == (4, *env.observation_space.shape) and obs.dtype == np.float32
    assert all(env.observation_space.contains(row) for row in obs)
    for _ in range(100):
        obs, rewards, dones, infos = env.step(np.array([env.action_space.sample() for _ in range(4)]))
        assert obs.shape == (4, *env.observation_space.shape) and obs.dtype == np.float32
        assert rewards.shape == (4,) and rewards.dtype == np.float32
        assert dones.shape == (4,) and dones.dtype == np.bool_
        assert len(infos) == 4 and all(env.observation_space.contains(row) for row in obs)
    assert env.get_attr("render_mode") == [None] * 4
    assert env.get_attr("config", indices=[1]) == [cfg]
    assert env.get_attr("day_index", 2) == [int(env._t[2])]
    assert env.env_is_wrapped(object, indices=[0, 3]) == [False, False]  # type: ignore[arg-type]
    ((first, info),) = env.env_method("reset", seed=3, indices=0)
    assert np.array_equal(first, SpyTradingEnv(market, cfg).reset(seed=3)[0]) and info["nav"] == cfg.initial_cash
    generator = np.random.default_rng(0)
    env.set_attr("np_random", generator, indices=1)
    assert env.get_attr("np_random", 1) == [generator] and env.get_attr("np_random_seed", 1) == [-1]
    with pytest.raises(AttributeError):
        env.get_attr("no_such_thing")
    with pytest.raises(AttributeError):
        env.set_attr("nav", 1.0)
    bad, message = INVALID.get(space, (np.array([[0.5], [np.nan], [1.0], [0.0]], dtype=np.float32), "NaN"))
    state = [env.get_attr(name) for name in ("day_index", "nav", "position")]
    with pytest.raises(ValueError, match=message):
        env.step(np.array(bad))
    assert [env.get_attr(name) for name in ("day_index", "nav", "position")] == state  # refused before any env moved
    with pytest.raises(ValueError, match="exceeds the window"):
        BatchedSpyEnv(market, config(episode_length=len(market)), 2)


@pytest.mark.unit
def test_vec_monitor_reports_episodes() -> None:
    from stable_baselines3.common.vec_env import VecMonitor

    env = VecMonitor(BatchedSpyEnv(make_market("dividends"), config(episode_length=10), 3))
    env.seed(0)
    env.reset()
    episodes = []
    for _ in range(25):
        _, _, _, infos = env.step(np.ones(3, dtype=np.int64))
        episodes += [info["episode"] for info in infos if "episode" in info]
    assert len(episodes) == 6 and all(e["l"] == 10 for e in episodes)


@pytest.mark.integration
@pytest.mark.parametrize("agent", ["default", "discrete3"])
def test_ppo_learns_the_same_weights_batched_or_dummy(tmp_path: Path, agent: str) -> None:
    """Same seed, same transitions, same torch draws: the same weights, bit for bit, and the same validations."""
    from finrl.agents.bundle import FINAL_MODEL_FILE, MODEL_FILE
    from finrl.agents.training import train
    from unit_tests.agents.test_training import TINY_ENV, policy_state, same_state, tiny_job

    cfg = TINY_ENV if agent == "default" else replace(TINY_ENV, action_space="discrete3", reward="log_return")
    assert agent != "default" or (cfg.action_space, cfg.reward) == ("target_weight", "drawdown_penalty")
    runs = {kind: train(tiny_job(tmp_path, kind, vec_env=kind, env=cfg)) for kind in ("batched", "dummy")}
    batched, dummy = runs["batched"].bundle.path, runs["dummy"].bundle.path
    for name in (MODEL_FILE, FINAL_MODEL_FILE):
        assert same_state(policy_state(batched / name), policy_state(dummy / name)), name
    assert runs["batched"].metrics["validation_history"] == runs["dummy"].metrics["validation_history"]
