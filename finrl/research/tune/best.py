"""The best trial's configuration as normal model bundles, each recording where it came from.

``spy-rl tune best`` trains one bundle per seed into a hidden folder beside the models, writes the
study name, trial number, score and parameters into each manifest (:class:`TuneOrigin`), and
only then renames it into the models folder: a bundle appears complete, with its origin, or not at
all. ``latest`` moves once, to the last of them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from finrl.agents.bundle import MANIFEST_FILE, ModelBundle, TuneOrigin, check_run_name_free, point_latest
from finrl.fileio import atomic_write_json, fsync_dir


@contextmanager
def staging_models_dir(models_dir: Path) -> Iterator[Path]:
    """A hidden folder on the models' file system (renames out of it are atomic); removed afterwards."""
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tune-best-", dir=models_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def adopt_bundle(bundle: ModelBundle, models_dir: Path, origin: TuneOrigin) -> ModelBundle:
    """Record ``origin`` in the staged ``bundle``'s manifest, then move the bundle into ``models_dir``."""
    check_run_name_free(models_dir, bundle.run_name)
    manifest = bundle.manifest.model_copy(update={"tune": origin})
    atomic_write_json(bundle.path / MANIFEST_FILE, manifest.to_json())
    target = Path(models_dir) / bundle.run_name
    bundle.path.rename(target)
    fsync_dir(Path(models_dir))
    return ModelBundle(target, manifest)


def export_best(
    seeds: tuple[int, ...],
    models_dir: Path,
    run_name: Callable[[int], str],
    train_seed: Callable[[int, Path, str], ModelBundle],
    origin: TuneOrigin,
) -> list[ModelBundle]:
    """Train ``train_seed(seed, staging_dir, run_name)`` for each seed and adopt the bundles; ``latest`` -> the last."""
    for seed in seeds:  # before minutes of training, not after
        check_run_name_free(models_dir, run_name(seed))
    bundles = []
    with staging_models_dir(models_dir) as staging:
        for seed in seeds:
            bundles.append(adopt_bundle(train_seed(seed, staging, run_name(seed)), models_dir, origin))
    point_latest(Path(models_dir), bundles[-1].path)
    return bundles
