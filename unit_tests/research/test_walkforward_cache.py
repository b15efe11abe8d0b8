"""The walk-forward training cache shared by tune workers on several machines: two workers that
train the same key both succeed (the second keeps the first's bundle), the cache holds bundles only
(no ``latest`` link, no leftovers), and ``latest`` elsewhere is moved without clashing with another
container's process of the same PID."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from finrl.agents import bundle
from finrl.agents.bundle import LATEST, BundleError, point_latest, publish_bundle
from finrl.research.folds import FoldPlan
from finrl.research.walkforward import WalkForward, publish_cached, train_into_cache
from unit_tests.conftest import default_settings


def trained_folder(root: Path, name: str, marker: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(json.dumps({"who": marker}))
    return folder


@pytest.mark.unit
def test_the_second_publish_of_a_key_keeps_the_first_bundle(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    first = trained_folder(tmp_path / "worker-a", "key", "a")
    second = trained_folder(tmp_path / "worker-b", "key", "b")
    assert publish_cached(first, cache / "key") == cache / "key"
    assert publish_cached(second, cache / "key") == cache / "key"  # no error: the same training, published
    assert json.loads((cache / "key" / "bundle.json").read_text()) == {"who": "a"}
    assert sorted(p.name for p in cache.iterdir()) == ["key"]


@pytest.mark.unit
def test_a_half_entry_in_the_way_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cache" / "key").mkdir(parents=True)
    (tmp_path / "cache" / "key" / "model.zip").write_bytes(b"partial")
    with pytest.raises(BundleError, match=r"cache/key is in the way of a trained model but is no complete bundle"):
        publish_cached(trained_folder(tmp_path / "worker", "key", "a"), tmp_path / "cache" / "key")


@pytest.mark.unit
def test_latest_moves_without_touching_another_process_s_temporary_link(tmp_path: Path) -> None:
    """Containers sharing a volume all run as PID 1: a temporary name made of the PID alone would clash."""
    for run in ("r1", "r2"):
        (tmp_path / run).mkdir()
    theirs = tmp_path / f".{LATEST}.{os.getpid()}"
    theirs.symlink_to("r1", target_is_directory=True)
    point_latest(tmp_path, tmp_path / "r2")
    assert (tmp_path / LATEST).resolve() == (tmp_path / "r2").resolve()
    assert theirs.is_symlink() and str(theirs.readlink()) == "r1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, LATEST, "r1", "r2"]


@pytest.mark.integration
def test_a_run_name_taken_while_publishing_is_one_line(
    sample_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run publishes the same name between the check and the rename: a user error, not an OSError."""
    staging, models = tmp_path / "models" / ".staging-r1", tmp_path / "models"
    shutil.copytree(sample_bundles["r1"], staging)
    check = bundle.check_run_name_free

    def other_run_publishes_after_the_check(models_dir: Path, run_name: str) -> None:
        check(models_dir, run_name)
        monkeypatch.setattr(bundle, "check_run_name_free", check)
        (Path(models_dir) / run_name / "checkpoints").mkdir(parents=True)

    monkeypatch.setattr(bundle, "check_run_name_free", other_run_publishes_after_the_check)
    manifest = json.loads((staging / "bundle.json").read_text())
    with pytest.raises(BundleError, match="a model named r1 already exists"):
        publish_bundle(staging, models, manifest)
    assert not (models / LATEST).exists()


@pytest.mark.integration
@pytest.mark.slow
def test_two_workers_training_one_key_both_succeed_and_the_cache_holds_bundles_only(tmp_path: Path) -> None:
    folders = {"datasets_dir": tmp_path / "datasets", "results_dir": tmp_path / "results",
               "tensorboard_log_dir": tmp_path / "tb"}  # fmt: skip
    tiny = {"total_timesteps": 256, "n_envs": 2, "n_steps": 64, "batch_size": 64, "eval_freq": 128,
            "episode_length": 40, "net_arch": "8,8"}  # fmt: skip
    settings = default_settings().model_copy(update={"data_source": "sample", **folders, **tiny})
    plan = FoldPlan("rolling", 1, 3, 3, 3, date(2016, 1, 4), date(2017, 6, 30))
    walk = WalkForward.plan(settings.walkforward_config(plan, (1,), workers=1), settings.feature_data())
    (job,) = walk.pending(walk.folds[:1])  # both workers planned it before either had published

    first = train_into_cache(job)
    published = (first / "bundle.json").read_bytes()
    assert train_into_cache(job) == first  # the second worker's identical training: theirs is kept
    assert (first / "bundle.json").read_bytes() == published
    assert [p.name for p in walk.config.cache_dir.iterdir()] == [job.run_name]  # no latest, no leftovers
    assert walk.pending(walk.folds[:1]) == []
