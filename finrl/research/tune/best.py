"""The best trial's configuration as normal model bundles, each recording where it came from.

``spy-rl tune best`` trains one bundle per seed, and with two seeds or more their mean-weight
ensemble, all in a hidden folder beside the models; each manifest records the study, trial, score,
parameters and the days that chose them (:class:`TuneOrigin`). Only when every one is ready are they
renamed into the models folder: a failure, or SIGTERM, at any seed publishes nothing, so a rerun
starts afresh instead of being refused by half an export. ``latest`` moves once, to the last seed's.

Each bundle trains on the study's last fold's training window and keeps its checkpoint by that
fold's validation window (the caller's ``train_seed`` does; see ``spy-rl tune best``): the study
saw nothing later, so the default backtest window (the days after a model's own windows) and the
ensemble's default anchor start after all of the validation data that chose the configuration.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from finrl.agents.bundle import (
    MANIFEST_FILE,
    BundleError,
    ModelBundle,
    TuneOrigin,
    point_latest,
    sigterm_raises,
)
from finrl.agents.ensemble_bundle import create_ensemble
from finrl.agents.training import TrainingInterruptedError
from finrl.fileio import atomic_write_json, fsync_dir

TrainSeed = Callable[[int, Path, str], ModelBundle]  # (seed, folder, run name) -> the bundle trained there


@dataclass(frozen=True)
class BestExport:
    bundles: list[ModelBundle]  # one per seed, in the models folder
    ensemble: Path | None  # their ensemble bundle (two seeds or more)


@contextmanager
def staging_models_dir(models_dir: Path) -> Iterator[Path]:
    """A hidden folder on the models' file system (renames out of it are atomic); removed afterwards."""
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tune-best-", dir=models_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_best(
    seeds: tuple[int, ...],
    models_dir: Path,
    name: Callable[[int], str],
    train_seed: TrainSeed,
    origin: TuneOrigin,
    ensemble: tuple[str, float] | None,
) -> BestExport:
    """Train ``train_seed(seed, staging, name(seed))`` for each seed and, with ``ensemble`` = (its name, its
    rebalance band), the seeds' mean-weight ensemble; then publish them all. ``latest`` -> the last seed's."""
    names = [name(seed) for seed in seeds] + ([ensemble[0]] if ensemble else [])
    _check_free(models_dir, names)  # before minutes of training, not after
    with sigterm_raises(), staging_models_dir(models_dir) as staging:
        staged = [_with_origin(_train(train_seed, seed, staging, name(seed)), origin) for seed in seeds]
        if ensemble:
            create_ensemble([b.path for b in staged], staging, rule="mean_weight", rebalance_band=ensemble[1],
                            name=ensemble[0])  # fmt: skip
        _check_free(models_dir, names)  # still free: then every rename below succeeds
        for folder in names:
            (staging / folder).rename(Path(models_dir) / folder)
        fsync_dir(Path(models_dir))
    point_latest(Path(models_dir), Path(models_dir) / name(seeds[-1]))
    bundles = [ModelBundle(Path(models_dir) / b.run_name, b.manifest) for b in staged]
    return BestExport(bundles, Path(models_dir) / ensemble[0] if ensemble else None)


def _check_free(models_dir: Path, names: list[str]) -> None:
    for folder in names:
        if (Path(models_dir) / folder).exists():
            raise BundleError(
                f"{folder} already exists in {models_dir}: this trial was exported before "
                "(remove its bundles to export it again, or choose another --models-dir)"
            )


def _train(train_seed: TrainSeed, seed: int, staging: Path, run_name: str) -> ModelBundle:
    try:
        return train_seed(seed, staging, run_name)
    except TrainingInterruptedError as exc:  # its message names a checkpoint in the staging, which goes
        signum = exc.exit_code - 128
        raise TrainingInterruptedError(f"tune best stopped while training seed {seed}: nothing was published",
                                       signum) from None  # fmt: skip


def _with_origin(bundle: ModelBundle, origin: TuneOrigin) -> ModelBundle:
    """``bundle`` with ``origin`` in its manifest (not a hashed file: the model files' hashes still hold)."""
    manifest = bundle.manifest.model_copy(update={"tune": origin})
    atomic_write_json(bundle.path / MANIFEST_FILE, manifest.to_json())
    return ModelBundle(bundle.path, manifest)
