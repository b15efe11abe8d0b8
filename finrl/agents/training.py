"""Train PPO on the training window, validate, and publish a model bundle.

The one function :func:`train` is what ``spy-rl train``, the example entry module and the
tests call; it takes plain data and configuration objects, never the application settings.
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from finrl.agents.bundle import (
    FINAL_MODEL_FILE,
    MODEL_FILE,
    POLICY_FILE,
    DriftReference,
    ModelBundle,
    check_latest_movable,
    check_run_name_free,
    export_policy,
    publish_bundle,
    staging_dir,
)
from finrl.agents.callbacks import (
    ProgressCallback,
    StopFlag,
    StopOnSignalCallback,
    TradingMetricsCallback,
    ValidationCallback,
    hparam_metric_tags,
    record_kept_validation,
    unchecked_distributions,
)
from finrl.agents.numpy_policy import NumpyPolicy
from finrl.agents.ppo import PPOConfig
from finrl.errors import DataError, FinRLError
from finrl.fileio import filesystem_errors, remove_quietly
from finrl.log import get_logger
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.meta.features import FeatureSpec
from finrl.meta.preprocessing import DataSplit, FeatureNormalizer
from finrl.seeding import seed_everything

log = get_logger(__name__)

VecEnvKind = Literal["batched", "dummy"]


class TrainingInterruptedError(FinRLError):
    """Training stopped on a signal; a checkpoint was saved and ``latest`` was left alone."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # 130 for Ctrl-C, 143 for docker stop's SIGTERM
        self.signum = signum

    def __reduce__(self) -> tuple[object, ...]:  # a spawn pool's worker sends it to the parent pickled
        return (type(self), (str(self), self.signum), self.__dict__)


@dataclass(frozen=True)
class TrainingJob:
    """One training run, fully specified by the caller: no setting defaults here (``Settings`` holds them)."""

    features: pd.DataFrame  # output of build_features over the whole dataset
    feature_spec: FeatureSpec
    data_info: dict[str, Any]  # MarketData.describe(): source, label, fingerprint, range
    split: DataSplit
    run_name: str
    models_dir: Path
    tensorboard_dir: Path
    ppo: PPOConfig
    env: EnvConfig
    seed: int
    total_timesteps: int
    eval_freq: int  # validate every N timesteps and keep the best; 0: off
    checkpoint_freq: int  # 0: off
    settings: dict[str, Any] = field(default_factory=dict)  # recorded in the bundle, secrets excluded
    progress: bool | None = None  # None: a bar on a terminal, log lines otherwise
    vec_env: VecEnvKind = "batched"  # "dummy": SB3's DummyVecEnv of SpyTradingEnv, same results, slower


@dataclass(frozen=True)
class TrainingResult:
    bundle: ModelBundle
    metrics: dict[str, Any]


def train(job: TrainingJob) -> TrainingResult:
    """Train, validate and publish; the caller's torch thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(job.ppo.torch_threads)
    try:
        return _train(job)
    finally:
        torch.set_num_threads(threads)


def _train(job: TrainingJob) -> TrainingResult:
    seed_everything(job.seed)
    train_frame = job.split.train.slice(job.features, what="training window")
    normalizer = FeatureNormalizer.fit(train_frame, job.feature_spec.observation_columns)
    train_market = MarketArrays.from_features(train_frame, normalizer)
    env_config = _fit_episode_length(job.env, len(train_market))
    validation_market = (
        MarketArrays.from_features(job.split.validation.slice(job.features, what="validation window"), normalizer)
        if job.split.validation
        else None
    )

    check_run_name_free(job.models_dir, job.run_name)  # before minutes of training, not after
    check_latest_movable(job.models_dir)
    staging = staging_dir(job.models_dir, job.run_name)  # a models folder that refuses writes: one line, now
    try:
        with filesystem_errors(job.models_dir, flag="--models-dir"):
            wall, metrics, manifest = _train_in(
                job, staging, train_frame, normalizer, train_market, env_config, validation_market
            )
            bundle = publish_bundle(staging, job.models_dir, manifest)
    except BaseException:
        remove_quietly(staging)  # gone after publishing; on any failure (a full disk too) nothing stays
        raise
    log.info("training_done", run=job.run_name, path=str(bundle.path), wall_s=round(wall, 1), **_headline(metrics))
    return TrainingResult(bundle, metrics)


def _train_in(
    job: TrainingJob,
    staging: Path,
    train_frame: pd.DataFrame,
    normalizer: FeatureNormalizer,
    train_market: MarketArrays,
    env_config: EnvConfig,
    validation_market: MarketArrays | None,
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Learn into ``staging`` and fill it with the bundle's files: (wall seconds, metrics, manifest)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecMonitor

    # VecMonitor: SB3's rollout/ep_rew_mean and ep_len_mean come from its "episode" infos
    envs = VecMonitor(training_envs(train_market, env_config, job.ppo.n_envs, job.vec_env))
    model = PPO("MlpPolicy", envs, seed=job.seed, verbose=0, **job.ppo.sb3_kwargs())
    validation = (
        ValidationCallback(validation_market, env_config, job.eval_freq, staging / "best_model.zip")
        if validation_market is not None and job.eval_freq > 0
        else None
    )
    rollout = job.ppo.n_steps * job.ppo.n_envs
    planned = -(-job.total_timesteps // rollout) * rollout  # SB3 always completes the last rollout
    hparams = {**job.ppo.to_dict(), "seed": job.seed, "total_timesteps": planned}  # what trains, not what was asked
    callbacks: list[Any] = [
        TradingMetricsCallback(hparams, hparam_metric_tags(validation is not None)),
        ProgressCallback(planned, job.progress),
    ]
    if validation is not None:
        callbacks.append(validation)
    if job.checkpoint_freq > 0:
        save_freq = max(job.checkpoint_freq // job.ppo.n_envs, 1)
        callbacks.append(CheckpointCallback(save_freq, str(staging / "checkpoints"), name_prefix="ppo"))

    if planned != job.total_timesteps:  # say so, rather than train more than the log claims
        log.info("timesteps_rounded_up", requested=job.total_timesteps, trains=planned, rollout=rollout,
                 note="PPO completes its last rollout: whole rollouts of n_steps x n_envs")  # fmt: skip
    log.info(
        "training_start", run=job.run_name, timesteps=planned, seed=job.seed,
        train=f"{job.split.train.start}..{job.split.train.end}", train_days=len(train_market),
        n_envs=job.ppo.n_envs, source=job.data_info.get("source"),
    )  # fmt: skip
    started = time.perf_counter()
    with (
        StopFlag().installed() as stop,
        unchecked_distributions(),
        filesystem_errors(job.tensorboard_dir, flag="--tensorboard-dir"),  # its logs; the staging's keep theirs
    ):
        tensorboard_run = tensorboard_run_dir(job.tensorboard_dir, job.run_name)
        model.set_logger(configure(str(tensorboard_run), ["tensorboard"]))  # SB3's own would add "_1" to the name
        callbacks.append(StopOnSignalCallback(stop))
        model.learn(job.total_timesteps, callback=CallbackList(callbacks))
    wall = time.perf_counter() - started
    if stop:
        _keep_interrupted(model, staging, job)
        raise TrainingInterruptedError(
            f"training interrupted by {signal.Signals(stop.signal).name} at {model.num_timesteps} timesteps; "  # type: ignore[arg-type]
            f"checkpoint kept in {staging.with_name(job.run_name + '.interrupted')}, latest unchanged",
            int(stop.signal),  # type: ignore[arg-type]
        )

    model.save(staging / FINAL_MODEL_FILE)
    use_best = validation is not None and (staging / "best_model.zip").exists()
    if use_best:
        shutil.move(staging / "best_model.zip", staging / MODEL_FILE)
    else:
        shutil.copyfile(staging / FINAL_MODEL_FILE, staging / MODEL_FILE)
    kept = kept_validation(validation, use_best)
    if validation is not None and kept is not None:
        with filesystem_errors(job.tensorboard_dir, flag="--tensorboard-dir"):
            record_kept_validation(model.logger, kept, model.num_timesteps)
    export_policy(staging)  # backtests and paper trading act from these arrays, without torch
    save_drift_reference(staging, train_frame, normalizer.columns, train_market, env_config)
    metrics = {
        "timesteps": int(model.num_timesteps),
        "wall_seconds": round(wall, 3),
        "steps_per_second": round(model.num_timesteps / wall, 1) if wall else None,
        "model_choice": "best_validation_sharpe" if use_best else "final",
        "validation_history": validation.history if validation else [],
        "best_validation_sharpe": validation.best_sharpe if validation and validation.history else None,
        "best_validation_timesteps": validation.best_timesteps if validation else None,
        "kept_validation": kept,  # the validation metrics of the model in model.zip (None: not validated)
        "validation_buy_and_hold": validation.buy_and_hold if validation and validation.history else None,
        "tensorboard_run": str(tensorboard_run),
    }
    manifest = {
        "run_name": job.run_name,
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "algorithm": "PPO",
        "seed": job.seed,
        "feature_spec": job.feature_spec.to_dict(),
        "normalizer": normalizer.to_dict(),
        "data": job.data_info,
        "split": job.split.to_dict(),
        "env_config": env_config.to_dict(),
        "ppo_config": job.ppo.to_dict(),
        "settings": job.settings,
        "training": metrics,
    }
    return wall, metrics, manifest


def tensorboard_run_dir(tensorboard_dir: Path, run_name: str) -> Path:
    """The run's TensorBoard folder, named as the run; ``<run>_2``, ``<run>_3``... where that folder is taken
    (a run interrupted and retried under its name, a bundle removed but not its logs): one run per folder."""
    folder, n = Path(tensorboard_dir) / run_name, 1
    while folder.exists():
        n += 1
        folder = Path(tensorboard_dir) / f"{run_name}_{n}"
    return folder


def kept_validation(validation: ValidationCallback | None, use_best: bool) -> dict[str, float] | None:
    """The validation metrics of the model kept in ``model.zip``: the best evaluation's, or the last one's
    (the final model's, evaluated when training ended) where no best model was saved."""
    if validation is None or not validation.history:
        return None
    if use_best:
        return next(e for e in validation.history if e["timesteps"] == validation.best_timesteps)
    return validation.history[-1]


def training_envs(market: MarketArrays, config: EnvConfig, n_envs: int, kind: VecEnvKind = "batched") -> Any:
    """The ``n_envs`` training envs as one SB3 ``VecEnv``; both kinds give bit-identical transitions."""
    if kind == "batched":
        from finrl.agents.batched_env import BatchedSpyEnv

        return BatchedSpyEnv(market, config, n_envs)
    if kind == "dummy":
        from stable_baselines3.common.vec_env import DummyVecEnv

        return DummyVecEnv([partial(SpyTradingEnv, market, config)] * n_envs)
    raise ValueError(f"vec_env must be 'batched' or 'dummy', got {kind!r}")


def save_drift_reference(
    staging: Path, frame: pd.DataFrame, columns: tuple[str, ...], market: MarketArrays, config: EnvConfig
) -> DriftReference:
    """The training window's feature distribution and the kept policy's action mix replayed over it from flat
    (as a backtest would), for the paper trader's drift metrics (:class:`finrl.agents.bundle.DriftReference`)."""
    ledger = run_policy(market, config, NumpyPolicy.load(staging / POLICY_FILE))
    reference = DriftReference.fit(frame, list(columns), ledger.frame["action"].to_numpy(), config)
    reference.save(staging)
    return reference


def _fit_episode_length(config: EnvConfig, days: int) -> EnvConfig:
    if days < 2:
        raise DataError(f"the training window holds {days} day(s): too few to train on")
    if config.episode_length is not None and config.episode_length > days - 1:
        log.warning("episode_length_clipped", asked=config.episode_length, training_days=days)
        return replace(config, episode_length=days - 1)
    return config


def _keep_interrupted(model: Any, staging: Path, job: TrainingJob) -> None:
    (staging / "checkpoints").mkdir(exist_ok=True)
    model.save(staging / "checkpoints" / f"interrupted_{model.num_timesteps}_steps.zip")
    target = staging.with_name(job.run_name + ".interrupted")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("timesteps", "steps_per_second", "model_choice", "best_validation_sharpe")}
