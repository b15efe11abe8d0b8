"""Walk-forward evaluation: does the agent beat buy-and-hold on data it never saw?

For every fold (see :mod:`finrl.research.folds`) and every seed, PPO trains on the fold's
training window and keeps the checkpoint with the best Sharpe on the fold's validation window:
the only thing that chooses a model. The kept model is then tested once on the fold's test
window through the same env, costs and baselines as ``spy-rl backtest``. Test windows never
choose anything.

Each fold x seed training is cached under ``<cache>/<key>/`` (a normal model bundle), where the
key hashes the data actually used (training and validation rows), the feature specification, the
PPO and env configuration, the timesteps, the windows and the seed. A rerun with the same
arguments trains nothing, and an interrupted run resumes where it stopped (bundles are published
whole or not at all). Trainings run in ``workers`` processes; each is seeded and single-threaded,
so results do not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from finrl.agents.bundle import MANIFEST_FILE, BundleError, ModelBundle, load_bundle
from finrl.agents.ppo import PPOConfig
from finrl.backtest.engine import AGENT, BacktestResult, run_backtest
from finrl.fileio import fsync_dir
from finrl.log import get_logger
from finrl.meta.dataset import FeatureData
from finrl.meta.env.spy_env import EnvConfig
from finrl.research.collapse import collapse_flags
from finrl.research.ensemble import ensemble_ledger
from finrl.research.folds import Fold, FoldPlan, plan_folds

if TYPE_CHECKING:
    from finrl.agents.training import TrainingJob

log = get_logger(__name__)

CACHE_FORMAT = 1  # bump when a change to training makes cached bundles stale


@dataclass(frozen=True)
class WalkForwardConfig:
    plan: FoldPlan
    seeds: tuple[int, ...]
    ppo: PPOConfig
    env: EnvConfig
    total_timesteps: int
    eval_freq: int
    risk_free_rate: float
    cache_dir: Path
    tensorboard_dir: Path
    workers: int = 1
    settings: dict[str, Any] = field(default_factory=dict)  # recorded in each bundle, not part of any key
    log_level: str = "WARNING"  # for worker processes

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if self.eval_freq <= 0:
            raise ValueError("walk-forward keeps each seed's model by its validation window: eval_freq must be > 0")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")

    def training_identity(self, data: FeatureData) -> dict[str, Any]:
        """Everything that shapes a trained model except the windows and the seed."""
        return {
            "format": CACHE_FORMAT,
            "feature_spec": data.spec.to_dict(),
            "ppo": self.ppo.to_dict(),
            "env": self.env.to_dict(),
            "total_timesteps": self.total_timesteps,
            "eval_freq": self.eval_freq,
            "symbol": data.market.symbol,
        }


@dataclass(frozen=True)
class SeedRun:
    fold: Fold
    seed: int
    bundle: ModelBundle
    result: BacktestResult
    collapse: list[str]

    @property
    def agent(self) -> dict[str, float]:
        return self.result.metrics[AGENT]


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    seeds: list[SeedRun]
    agent: pd.DataFrame  # the fold's agent ledger: the one seed, or the seeds' ensemble
    buy_and_hold: pd.DataFrame  # buy-and-hold's ledger on the same window


@dataclass(frozen=True)
class WalkForwardResult:
    config: WalkForwardConfig
    identity: dict[str, Any]  # training identity + data + plan + seeds: names the run
    folds: list[FoldResult]
    trained: int  # fold x seed trainings run now (0 on a rerun)

    @property
    def run_key(self) -> str:
        return digest(self.identity)[:10]


def run_walkforward(config: WalkForwardConfig, data: FeatureData) -> WalkForwardResult:
    """Train every fold x seed that is not cached (in ``config.workers`` processes), then test each fold once."""
    walk = WalkForward.plan(config, data)
    jobs = walk.pending()
    log.info("walkforward_plan", folds=len(walk.folds), seeds=len(config.seeds), cached=len(walk.keys) - len(jobs),
             to_train=len(jobs), workers=config.workers)  # fmt: skip
    _train_all(jobs, config.workers, config.log_level)
    results = [walk.evaluate(fold) for fold in walk.folds]
    return WalkForwardResult(config, walk.run_identity(), results, trained=len(jobs))


@dataclass(frozen=True)
class WalkForward:
    """A walk-forward planned over data: its folds and the cache key of every fold x seed training.

    :func:`run_walkforward` trains all folds, then tests each; the tuner trains and scores one fold
    at a time on its validation window, so that a bad configuration stops early. Both go through
    this one plan, so they share the cache: a configuration the tuner tried is not trained again.
    """

    config: WalkForwardConfig
    data: FeatureData
    folds: list[Fold]
    keys: dict[tuple[int, int], str]  # (fold number, seed) -> cache key

    @classmethod
    def plan(cls, config: WalkForwardConfig, data: FeatureData) -> WalkForward:
        features = data.features
        days = pd.DatetimeIndex(features.index)
        folds = plan_folds(days[(days >= pd.Timestamp(config.plan.start)) & (days <= pd.Timestamp(config.plan.end))],
                           config.plan)  # fmt: skip
        identity = config.training_identity(data)
        keys: dict[tuple[int, int], str] = {}
        for fold in folds:
            used = _data_digest(features.loc[pd.Timestamp(fold.train.start) : pd.Timestamp(fold.validation.end)])
            for seed in config.seeds:
                keys[fold.number, seed] = digest({**identity, "data": used, "fold": fold.to_dict(), "seed": seed})[:24]
        return cls(config, data, folds, keys)

    def pending(self, folds: Sequence[Fold] | None = None) -> list[TrainingJob]:
        """The trainings of ``folds`` (default: all) that are not in the cache, fold by fold, seed by seed."""
        return [
            _job(self.config, self.data, fold, seed, self.keys[fold.number, seed])
            for fold in (self.folds if folds is None else folds)
            for seed in self.config.seeds
            if not (self.config.cache_dir / self.keys[fold.number, seed] / MANIFEST_FILE).is_file()
        ]

    def train(self, fold: Fold) -> int:
        """Train the seeds of ``fold`` that are not cached (one after another); how many were trained."""
        jobs = self.pending([fold])
        _train_all(jobs, 1, self.config.log_level)
        return len(jobs)

    def bundles(self, fold: Fold) -> dict[int, ModelBundle]:
        """Each seed's kept model for ``fold`` (chosen by its validation window), from the cache."""
        cache = self.config.cache_dir
        return {seed: load_bundle(cache / self.keys[fold.number, seed], cache) for seed in self.config.seeds}

    def evaluate(self, fold: Fold) -> FoldResult:
        """Test the seeds' kept models once on ``fold``'s test window, with the baselines and collapse flags."""
        runs = []
        for seed, bundle in self.bundles(fold).items():
            result = run_backtest(bundle, self.data.features, fold.test, self.config.risk_free_rate)
            runs.append(SeedRun(fold, seed, bundle, result, collapse_flags(result)))
        first = runs[0].result
        agent = first.ledgers[AGENT].frame if len(runs) == 1 else ensemble_ledger([r.result for r in runs])
        return FoldResult(fold, runs, agent, first.ledgers["buy_and_hold"].frame)

    def run_identity(self) -> dict[str, Any]:
        """Training identity + data + plan + seeds: names the run."""
        config = self.config
        return {
            **config.training_identity(self.data),
            "data": self.data.market.fingerprint,
            "plan": {k: str(v) for k, v in config.plan.__dict__.items()},
            "seeds": list(config.seeds),
            "risk_free_rate": config.risk_free_rate,
        }


# ---------------------------------------------------------------------------- training


def _job(config: WalkForwardConfig, data: FeatureData, fold: Fold, seed: int, key: str) -> TrainingJob:
    from finrl.agents.training import TrainingJob  # torch: only where something trains (tune init plans, no more)

    return TrainingJob(
        features=data.features.loc[: pd.Timestamp(fold.validation.end)],  # the test window stays unseen
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=fold.split,
        run_name=key,
        models_dir=config.cache_dir,
        tensorboard_dir=config.tensorboard_dir,
        ppo=config.ppo,
        env=config.env,
        seed=seed,
        total_timesteps=config.total_timesteps,
        eval_freq=config.eval_freq,
        checkpoint_freq=0,
        settings={**config.settings, "walkforward_fold": fold.to_dict(), "random_seed": seed},
        progress=False,
    )


def _train_all(jobs: Sequence[TrainingJob], workers: int, log_level: str) -> None:
    if not jobs:
        return
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            train_into_cache(job)
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch state shared through fork
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_worker_init,
                             initargs=(log_level,)) as pool:  # fmt: skip
        for path in pool.map(train_into_cache, jobs):
            log.info("walkforward_trained", bundle=path)


def _worker_init(log_level: str) -> None:
    from finrl.log import configure_logging

    configure_logging(log_level)


def train_into_cache(job: TrainingJob) -> Path:
    """Train ``job`` in a private folder beside the cache, then publish its bundle under its key.

    Several processes may train one key at once: tune workers on other machines sharing the cache
    volume, whose trials drew the same configuration. The first to publish wins; a later one finds
    the key complete and keeps that bundle, discarding its own (the key names the data, the
    configuration and the seed: both trained the same model). Training aside also keeps what a
    normal training leaves beside its bundle (``latest``, an interrupted run's checkpoint) out of
    the cache.
    """
    from finrl.agents.training import train

    cache = Path(job.models_dir)
    cache.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".training-{job.run_name}-", dir=cache))
    try:
        return publish_cached(train(replace(job, models_dir=private)).bundle.path, cache / job.run_name)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def publish_cached(trained: Path, entry: Path) -> Path:
    """Rename the bundle folder ``trained`` to the cache entry ``entry`` (atomic); an entry another
    process completed first is kept as it is, and ``trained`` is left to its caller to remove."""
    try:
        trained.rename(entry)
    except OSError:
        if not (entry / MANIFEST_FILE).is_file():
            raise BundleError(
                f"{entry} is in the way of a trained model but is no complete bundle: remove it"
            ) from None
        log.info("walkforward_cache_published_elsewhere", key=entry.name)
        return entry
    fsync_dir(entry.parent)
    return entry


# ---------------------------------------------------------------------------- stitching


def stitched_returns(folds: Sequence[FoldResult], pick: Callable[[FoldResult], pd.DataFrame]) -> pd.Series:
    """Daily simple returns of the test windows in order, each day once.

    Every fold starts flat with fresh cash on its first test day, so that day's return is 0
    for the agent and buy-and-hold alike.
    """
    parts = []
    for fold in folds:
        nav = pick(fold)["nav"]
        parts.append(nav.pct_change().fillna(0.0))
    returns = pd.concat(parts)
    if returns.index.has_duplicates:
        raise ValueError("a test day belongs to two folds")
    return returns


def stitched_nav(returns: pd.Series, initial_cash: float) -> pd.Series:
    return initial_cash * (1.0 + returns).cumprod()


# ---------------------------------------------------------------------------- helpers


def _data_digest(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def digest(document: dict[str, Any]) -> str:
    """SHA-256 of a JSON document (keys sorted): names cached trainings, runs and trial-ledger entries."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
