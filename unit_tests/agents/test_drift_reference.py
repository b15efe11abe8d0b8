"""The bundle's drift reference: the training window's feature deciles and the kept policy's action mix,
hashed with the model files; bundles written before it load without one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from finrl.agents.bundle import (
    DRIFT_FILE,
    MANIFEST_FILE,
    Binned,
    BundleError,
    DriftReference,
    action_bins,
    bin_shares,
    load_bundle,
)
from finrl.agents.training import TrainingResult, train
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy
from unit_tests.agents.test_training import generated_data, tiny_job
from unit_tests.conftest import discrete3_config, env_config


def test_bins_are_deciles_and_put_each_value_in_one_bin() -> None:
    values = np.arange(1000, dtype=np.float64)
    binned = Binned.deciles(values)
    assert len(binned.edges) == 9 and binned.shares == pytest.approx([0.1] * 10)
    assert bin_shares([-1.0, binned.edges[0], 1e9, np.nan], binned.edges).tolist() == pytest.approx(
        [1 / 3, 1 / 3] + [0.0] * 7 + [1 / 3]
    )  # an edge opens its bin; NaN is left out
    few = Binned.deciles([0.0] * 80 + [1.0] * 20)  # a feature with two values: repeated edges merge
    assert few.edges == (0.0, 1.0) and few.shares == pytest.approx([0.0, 0.8, 0.2])
    assert Binned.from_dict(json.loads(json.dumps(few.to_dict()))) == few


def test_action_bins_of_each_space() -> None:
    assert action_bins(discrete3_config()) == ((0.5, 1.5), ("sell", "hold", "buy"))
    levels = env_config(action_space="target_weight", weight_levels=(0.5, 0.0, 1.0))
    assert action_bins(levels) == ((0.25, 0.75), ("0", "0.5", "1"))
    edges, labels = action_bins(env_config(action_space="continuous"))
    assert labels == ("0", "0.25", "0.5", "0.75", "1") and edges == (0.125, 0.375, 0.625, 0.875)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("drift")
    return train(tiny_job(root, "drift", total_timesteps=256, eval_freq=0, checkpoint_freq=0, env=discrete3_config()))


@pytest.mark.integration
def test_training_writes_the_reference_of_the_training_window(trained: TrainingResult) -> None:
    bundle = trained.bundle
    assert DRIFT_FILE in bundle.manifest.files  # hashed like the model files
    reference = bundle.drift_reference
    assert isinstance(reference, DriftReference)
    _bars, features, _spec, split = generated_data()
    train_frame = split.train.slice(features)
    assert (reference.window.start, reference.window.end) == (train_frame.index[0].date(), train_frame.index[-1].date())
    assert sorted(reference.features) == sorted(bundle.normalizer.columns)
    for name, binned in reference.features.items():
        assert binned == Binned.deciles(train_frame[name].to_numpy()), name
    # the action mix is the kept policy's, replayed over the training window from flat
    market = MarketArrays.from_features(train_frame, bundle.normalizer)
    ledger = run_policy(market, bundle.env_config, bundle.load_policy())
    assert reference.action_space == "discrete3" and reference.actions.labels == ("sell", "hold", "buy")
    assert reference.actions.shares == pytest.approx(bin_shares(ledger.frame["action"], (0.5, 1.5)).tolist())
    assert sum(reference.actions.shares) == pytest.approx(1.0)


@pytest.mark.integration
def test_a_changed_reference_is_refused_and_an_old_bundle_has_none(trained: TrainingResult, tmp_path: Path) -> None:
    copy = tmp_path / "models" / "drift"
    shutil.copytree(trained.bundle.path, copy)
    (copy / DRIFT_FILE).write_text((copy / DRIFT_FILE).read_text().replace("0.", "0.0", 1))
    with pytest.raises(BundleError, match=r"drift_reference\.json does not match its recorded SHA-256"):
        load_bundle(copy, copy.parent)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"][DRIFT_FILE]  # as written before the reference existed
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    (copy / DRIFT_FILE).unlink()
    assert load_bundle(copy, copy.parent).drift_reference is None
