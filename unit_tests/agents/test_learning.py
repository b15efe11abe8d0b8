"""End-to-end proof that the pipeline learns what is learnable, and only that.

Both markets run through the whole pipeline: bars -> stockstats features -> normaliser fitted
on training days -> env -> PPO -> bundle -> deterministic replay out of sample. They catch
silent bugs that unit tests miss (a misaligned fill, a leaked future bar, a broken reward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import ModelBundle
from finrl.agents.training import train
from finrl.meta.env.execution import Action
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy, sb3_policy
from finrl.meta.features import build_features
from finrl.meta.preprocessing import split_by_dates
from unit_tests.conftest import env_config, feature_spec, nyse_days, ppo_config, training_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS, TRAIN_DAYS = 1600, 1100


def market(intraday_log_returns: np.ndarray, vix: np.ndarray) -> pd.DataFrame:
    """Bars whose day-t move happens between its open and close (opens gap-free from the last close)."""
    close = 100 * np.exp(np.cumsum(intraday_log_returns))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "adj_close": close,
            "volume": 1e6,
            "vix": vix,
        },
        index=pd.DatetimeIndex(nyse_days("2005-01-03", len(close)), name="date"),
    )


def train_and_replay(bars: pd.DataFrame, tmp_path: Path, timesteps: int) -> tuple[ModelBundle, dict[str, float]]:
    spec = feature_spec()
    features = build_features(bars, spec)
    split = split_by_dates(features.index, train_end=bars.index[TRAIN_DAYS].date(), with_validation=False)
    result = train(
        training_job(
            features=features,
            feature_spec=spec,
            data_info={"source": "generated"},
            split=split,
            run_name="learning",
            models_dir=tmp_path / "models",
            tensorboard_dir=tmp_path / "tb",
            ppo=ppo_config(n_envs=8, n_steps=128, batch_size=512, n_epochs=5, learning_rate=1e-3, ent_coef=0.0),
            env=env_config(episode_length=200),
            seed=7,
            total_timesteps=timesteps,
            eval_freq=0,
            checkpoint_freq=0,
            progress=False,
        )
    )
    bundle = result.bundle
    assert split.test is not None
    test = MarketArrays.from_features(split.test.slice(features), bundle.normalizer)
    model = bundle.load_model()
    rng = np.random.default_rng(0)
    returns = {
        "agent": run_policy(test, bundle.env_config, sb3_policy(model)).nav,
        "buy_and_hold": run_policy(test, bundle.env_config, lambda _: Action.BUY).nav,
        "random": run_policy(test, bundle.env_config, lambda _: int(rng.integers(3))).nav,
    }
    return bundle, {name: float(np.log(nav.iloc[-1] / nav.iloc[0])) for name, nav in returns.items()}


def test_ppo_learns_a_planted_signal_out_of_sample(tmp_path: Path) -> None:
    """VIX on day t gives the sign of day t+1's move: learnable only by acting on t+1's open."""
    rng = np.random.default_rng(1)
    signal = rng.choice([-1.0, 1.0], DAYS)
    moves = np.r_[0.0, 0.006 * signal[:-1]] + rng.normal(0, 0.004, DAYS)
    bars = market(moves, vix=20 + 5 * signal)
    _, result = train_and_replay(bars, tmp_path, timesteps=60_000)
    # the best possible long/flat strategy earns ~0.6% on half the ~430 test days
    assert result["agent"] > result["buy_and_hold"] + 0.5, result
    assert result["agent"] > result["random"] + 0.5, result
    assert result["agent"] > 0.5, result


def test_no_profit_from_noise_even_with_bait_for_look_ahead(tmp_path: Path) -> None:
    """Moves are i.i.d.; VIX on day t encodes day t's own move, worthless unless tomorrow's VIX leaks."""
    rng = np.random.default_rng(2)
    moves = rng.normal(0, 0.004, DAYS)
    bars = market(moves, vix=20 + 500 * moves)
    _, result = train_and_replay(bars, tmp_path, timesteps=30_000)
    # a one-day leak would earn ~0.3% a day (> +1.0 over the test window); honest play earns noise minus costs
    noise = 0.004 * np.sqrt(DAYS - TRAIN_DAYS)
    assert result["agent"] < 2.5 * noise, result
