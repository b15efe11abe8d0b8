"""``tune best`` publishes all or nothing: a failure or SIGTERM at any seed leaves no bundle, no ensemble
and no staging behind, and a rerun then exports the trial in full (bundles, ensemble, ``latest``).
Bundles exported before the selection span was recorded still load."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from finrl.agents.bundle import LATEST, BundleError, ModelBundle, StoppedError, TuneOrigin, load_bundle
from finrl.errors import DataError
from finrl.research.tune.best import BestExport, export_best

ORIGIN = TuneOrigin(study="s", trial=3, value=0.4, params={"reward": "log_return"})


def name(seed: int) -> str:
    return f"tune-s-trial3-seed{seed}"


def trainer(
    sample_bundles: dict[str, Path], fail_at: Callable[[int], None] | None = None
) -> Callable[..., ModelBundle]:
    """Stands in for a training: the session's tiny bundles (seed 1: r1, seed 2: r2) under the run's name."""

    def train_seed(seed: int, staging: Path, run_name: str) -> ModelBundle:
        if fail_at is not None:
            fail_at(seed)
        shutil.copytree(sample_bundles[f"r{seed}"], staging / run_name)
        trained = load_bundle(staging / run_name, staging)
        return ModelBundle(trained.path, trained.manifest.model_copy(update={"run_name": run_name}))

    return train_seed


def export(models: Path, train_seed: Callable[..., ModelBundle]) -> BestExport:
    return export_best((1, 2), models, name, train_seed, ORIGIN, ("tune-s-trial3-ensemble", 0.02))


def fails_at_seed_2(seed: int) -> None:
    if seed == 2:
        raise DataError("the data went away")


def sigterm_at_seed_2(seed: int) -> None:
    if seed == 2:
        signal.raise_signal(signal.SIGTERM)


@pytest.mark.integration
@pytest.mark.parametrize(("fail_at", "error"), [(fails_at_seed_2, DataError), (sigterm_at_seed_2, StoppedError)])
def test_a_failure_at_any_seed_publishes_nothing_and_a_rerun_exports_everything(
    sample_bundles: dict[str, Path], tmp_path: Path, fail_at: Callable[[int], None], error: type[Exception]
) -> None:
    models = tmp_path / "models"
    with pytest.raises(error):
        export(models, trainer(sample_bundles, fail_at))
    assert list(models.iterdir()) == []  # not seed 1, not the ensemble, no staging

    done = export(models, trainer(sample_bundles))
    names = [LATEST, "tune-s-trial3-ensemble", name(1), name(2)]
    assert sorted(p.name for p in models.iterdir()) == names
    assert (models / LATEST).resolve() == (models / name(2)).resolve()
    for seed in (1, 2):
        assert load_bundle(models / name(seed), models).manifest.tune == ORIGIN  # hashes hold, origin recorded
    assert done.ensemble == models / "tune-s-trial3-ensemble"

    with pytest.raises(BundleError, match=r"tune-s-trial3-seed1 already exists in .*: this trial was exported before"):
        export(models, trainer(sample_bundles))


@pytest.mark.unit
def test_an_origin_recorded_before_the_selection_span_still_loads() -> None:
    older = TuneOrigin.model_validate({"study": "s", "trial": 3, "value": 0.4, "params": {"reward": "log_return"}})
    assert older == ORIGIN and older.selection_start is None and older.selection_end is None
