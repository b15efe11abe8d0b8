"""No look-ahead under random perturbations: whatever happens to the bars after day t (prices scaled,
volume, VIX, dividends planted by a new adj_close factor, any subset of them), the features, the
observations, rewards and NAV up to day t are bit-identical; and actions taken after t change nothing up to t."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import FeatureNormalizer
from unit_tests.conftest import discrete3_config, env_config, execution_config, feature_spec, make_bars
from unit_tests.properties.settings import examples

pytestmark = pytest.mark.unit

PERIODS = 160
PERTURBABLE = ("open", "high", "low", "close", "adj_close", "volume", "vix")


@cache
def base() -> tuple[pd.DataFrame, FeatureSpec, pd.DataFrame, FeatureNormalizer]:
    """Bars, the default feature spec, their features and a normaliser fitted once on the first 60 days."""
    bars = make_bars(PERIODS, seed=21)
    spec = feature_spec()
    frame = build_features(bars, spec)
    return bars, spec, frame, FeatureNormalizer.fit(frame.iloc[:60], spec.observation_columns)


def perturb(bars: pd.DataFrame, after: pd.Timestamp, columns: list[str], seed: int) -> pd.DataFrame:
    """``bars`` with ``columns`` changed on every day after ``after`` (prices keep high >= open, close >= low)."""
    out = bars.copy()
    later = out.index > after
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.normal(0, 0.05, later.sum()))
    if {"open", "high", "low", "close"} & set(columns):
        for column in ("open", "high", "low", "close"):
            out.loc[later, column] = out.loc[later, column] * scale
        out.loc[later, "adj_close"] = out.loc[later, "close"] * 0.9  # the factor of make_bars
    if "adj_close" in columns:  # a different factor plants dividends after `after`
        out.loc[later, "adj_close"] = out.loc[later, "close"] * np.linspace(0.88, 0.9, later.sum())
    if "volume" in columns:
        out.loc[later, "volume"] = out.loc[later, "volume"] * rng.uniform(0.2, 5.0, later.sum())
    if "vix" in columns:
        out.loc[later, "vix"] = rng.uniform(10.0, 80.0, later.sum())
    return out


def trajectory(market: MarketArrays, config: EnvConfig, actions: list[object]) -> tuple[np.ndarray, list, list]:
    env = SpyTradingEnv(market, config)
    observation, info = env.reset(seed=0)
    observations, rewards, navs = [observation], [], [info["nav"]]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        observations.append(observation)
        rewards.append(reward)
        navs.append(info["nav"])
        if terminated or truncated:
            break
    return np.stack(observations), rewards, navs


configs = st.builds(
    lambda space, short, fill_at: env_config(
        execution=execution_config(allow_short=short, fill_at=fill_at),
        episode_length=None,
        action_space=space,
        weight_levels=(-1.0, 0.0, 0.5, 1.0) if short else (0.0, 0.5, 1.0),
        reward="log_return",
    ),
    st.sampled_from(["discrete3", "target_weight", "continuous"]),
    st.booleans(),
    st.sampled_from(["next_open", "next_close"]),
)


@examples(60)
@given(
    data=st.data(),
    columns=st.lists(st.sampled_from(PERTURBABLE), min_size=1, unique=True),
    config=configs,
    seed=st.integers(0, 2**16),
)
def test_later_bars_never_change_earlier_observations(
    data: st.DataObject, columns: list[str], config: EnvConfig, seed: int
) -> None:
    bars, spec, frame, normalizer = base()
    t = data.draw(st.integers(0, len(frame) - 3), label="t")
    perturbed_frame = build_features(perturb(bars, frame.index[t], columns, seed), spec)
    pd.testing.assert_frame_equal(perturbed_frame.iloc[: t + 1], frame.iloc[: t + 1], check_exact=True)
    market_a = MarketArrays.from_features(frame, normalizer)
    market_b = MarketArrays.from_features(perturbed_frame, normalizer)
    arrays = ("features", "open", "close", "dividends", "volatility", "adv")
    assert any(not np.array_equal(getattr(market_a, a)[t + 1 :], getattr(market_b, a)[t + 1 :]) for a in arrays)
    env = SpyTradingEnv(market_a, config)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(len(market_a) - 1)]
    obs_a, rewards_a, nav_a = trajectory(market_a, config, actions)
    obs_b, rewards_b, nav_b = trajectory(market_b, config, actions)
    np.testing.assert_array_equal(obs_a[: t + 1], obs_b[: t + 1])
    assert rewards_a[:t] == rewards_b[:t] and nav_a[: t + 1] == nav_b[: t + 1]


@examples(40)
@given(data=st.data(), seed=st.integers(0, 2**16), short=st.booleans())
def test_actions_after_t_never_change_what_was_observed_up_to_t(data: st.DataObject, seed: int, short: bool) -> None:
    _, _, frame, normalizer = base()
    market = MarketArrays.from_features(frame, normalizer)
    config = discrete3_config(execution=execution_config(allow_short=short), episode_length=None)
    n = len(market) - 1
    t = data.draw(st.integers(0, n - 1), label="t")
    rng = np.random.default_rng(seed)
    first = list(rng.integers(0, 3, n))
    second = first[:t] + list(rng.integers(0, 3, n - t))  # the same decisions before t, any after
    obs_a, rewards_a, nav_a = trajectory(market, config, first)
    obs_b, rewards_b, nav_b = trajectory(market, config, second)
    np.testing.assert_array_equal(obs_a[: t + 1], obs_b[: t + 1])
    assert rewards_a[:t] == rewards_b[:t] and nav_a[: t + 1] == nav_b[: t + 1]
