"""Settings in, library calls out: the jobs behind ``spy-rl`` and the example entry modules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from finrl.agents.ppo import PPOConfig
from finrl.agents.training import TrainingJob, TrainingResult, train
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.meta.data.market_data import MarketData, load_market_data
from finrl.meta.env.execution import CostModel, ExecutionConfig
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DataSplit, split_by_dates


@dataclass(frozen=True)
class PreparedData:
    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame


def prepare_data(settings: Settings, spec: FeatureSpec | None = None) -> PreparedData:
    market = load_market_data(settings.data_request(), settings.datasets_dir)
    spec = spec or FeatureSpec(use_vix=settings.use_vix)
    return PreparedData(market, spec, build_features(market.bars, spec))


def execution_config(settings: Settings) -> ExecutionConfig:
    return ExecutionConfig(
        costs=CostModel(settings.commission_bps, settings.spread_bps, settings.slippage_bps),
        position_fraction=settings.position_fraction,
        allow_short=settings.allow_short,
        fractional_shares=settings.fractional_shares,
        fill_at=settings.fill_at,
    )


def env_config(settings: Settings) -> EnvConfig:
    return EnvConfig(
        execution=execution_config(settings),
        initial_cash=settings.initial_cash,
        episode_length=settings.episode_length or None,
    )


def ppo_config(settings: Settings) -> PPOConfig:
    return PPOConfig(
        learning_rate=settings.learning_rate,
        n_steps=settings.n_steps,
        batch_size=settings.batch_size,
        n_epochs=settings.n_epochs,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_range=settings.clip_range,
        ent_coef=settings.ent_coef,
        target_kl=settings.target_kl,
        net_arch=tuple(int(n) for n in settings.net_arch.split(",")),
        n_envs=settings.n_envs,
        torch_threads=settings.torch_threads,
        device=settings.device,
    )


def data_split(settings: Settings, features: pd.DataFrame) -> DataSplit:
    return split_by_dates(
        pd.DatetimeIndex(features.index),
        train_start=settings.train_start,
        train_end=settings.train_end,
        val_start=settings.val_start,
        val_end=settings.val_end,
        test_start=settings.test_start,
        test_end=settings.test_end,
        with_validation=settings.eval_freq > 0,
    )


def default_run_name(settings: Settings) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"ppo-{settings.symbol.lower()}-{settings.data_source}-seed{settings.random_seed}-{stamp}"


def run_training(settings: Settings, *, progress: bool | None = None) -> TrainingResult:
    data = prepare_data(settings)
    job = TrainingJob(
        features=data.features,
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=data_split(settings, data.features),
        run_name=settings.run_name or default_run_name(settings),
        models_dir=settings.trained_models_dir,
        tensorboard_dir=settings.tensorboard_log_dir,
        ppo=ppo_config(settings),
        env=env_config(settings),
        seed=settings.random_seed,
        total_timesteps=settings.total_timesteps,
        eval_freq=settings.eval_freq,
        checkpoint_freq=settings.checkpoint_freq,
        settings=settings.snapshot(),
        progress=progress,
    )
    return train(job)
