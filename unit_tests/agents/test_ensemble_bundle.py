"""Ensemble bundles: made whole and self-contained, members that cannot be compared refused in one
line, the rules (a majority tie is flat), hash-checked members, and a decision after any close equal
to the same day's decision in a replay of the whole window from the anchor.

The member bundles here are written by hand (random NumPy policies, a normaliser fitted on generated
bars): no training, so every test is fast."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.agents import ensemble_bundle
from finrl.agents.bundle import (
    LATEST,
    MANIFEST_FILE,
    POLICY_FILE,
    BundleError,
    load_bundle,
    publish_bundle,
    staging_dir,
)
from finrl.agents.ensemble import combine_targets, decided_weights
from finrl.agents.ensemble_bundle import EnsembleBundle, create_ensemble, load_any_bundle
from finrl.agents.numpy_policy import NumpyPolicy
from finrl.errors import ConfigError, DataError
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DataSplit, DateWindow, FeatureNormalizer
from unit_tests.conftest import cost_model, env_config, execution_config, feature_spec, make_bars

pytestmark = pytest.mark.unit

SPEC = feature_spec()
TRAIN_DAYS = 150
BAND = 0.02


@cache
def market(spec: FeatureSpec = SPEC) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated bars on NYSE sessions and their features (read-only)."""
    bars = make_bars(400, seed=21)
    return bars, build_features(bars, spec)


def train_window(days: int = TRAIN_DAYS) -> DateWindow:
    index = market()[1].index
    return DateWindow(index[0].date(), index[days - 1].date())


def random_policy(observations: int, config: EnvConfig, seed: int) -> NumpyPolicy:
    """A small MLP with random weights: its actions change with the features, so its book trades."""
    rng = np.random.default_rng(seed)
    outputs = {"discrete3": 3, "target_weight": len(config.weight_levels), "continuous": 1}[config.action_space]
    continuous = config.action_space == "continuous"
    return NumpyPolicy(
        hidden=((rng.normal(0, 1, (16, observations)), rng.normal(0, 0.1, 16)),),
        activation="tanh",
        action_weight=rng.normal(0, 1, (outputs, 16)),
        action_bias=rng.normal(0, 0.1, outputs),
        distribution="diag_gaussian" if continuous else "categorical",
        action_low=np.zeros(1) if continuous else None,
        action_high=np.ones(1) if continuous else None,
    )


def write_bundle(
    models: Path,
    name: str,
    seed: int,
    *,
    config: EnvConfig | None = None,
    spec: FeatureSpec = SPEC,
    symbol: str = "SPY",
    split: DataSplit | None = None,
    policy_of: Path | None = None,
) -> Path:
    """A complete model bundle, as training publishes one (``latest`` moves to it)."""
    _, features = market(spec)
    split = split or DataSplit(train_window(), None, None)
    config = config or env_config()
    normalizer = FeatureNormalizer.fit(split.train.slice(features), spec.observation_columns)
    staging = staging_dir(models, name)
    if policy_of is not None:
        shutil.copy2(policy_of / POLICY_FILE, staging / POLICY_FILE)
    else:
        random_policy(len(normalizer.columns) + 3, config, seed).save(staging / POLICY_FILE)
    manifest = {
        "run_name": name,
        "seed": seed,
        "feature_spec": spec.to_dict(),
        "normalizer": normalizer.to_dict(),
        "env_config": config.to_dict(),
        "split": split.to_dict(),
        "data": {"source": "generated", "symbol": symbol, "fingerprint": "generated-21"},
        "settings": {"data_source": "csv", "symbol": symbol, "random_seed": seed},
    }
    return publish_bundle(staging, models, manifest).path


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models folder with two comparable bundles, a and b (latest -> b)."""
    folder = tmp_path / "models"
    write_bundle(folder, "a", 1)
    write_bundle(folder, "b", 2)
    return folder


def make(models: Path, *names: str, rule: str = "mean_weight", **kwargs: Any) -> EnsembleBundle:
    return create_ensemble(list(names), models, rule=rule, rebalance_band=BAND, **kwargs)


# ---------------------------------------------------------------- making and loading


def test_an_ensemble_is_a_self_contained_bundle_and_latest_stays(models: Path) -> None:
    ensemble = make(models, "a", "b", name="ab")
    assert ensemble.path == (models / "ab").resolve()
    assert (models / LATEST).resolve() == (models / "b").resolve()
    document = json.loads((models / "ab" / MANIFEST_FILE).read_text())
    assert document["kind"] == "ensemble" and document["rule"] == "mean_weight"
    assert [m["run_name"] for m in document["members"]] == ["a", "b"]
    for record in document["members"]:
        original = load_bundle(models / record["run_name"], models)
        assert record["policy_sha256"] == original.manifest.files[POLICY_FILE]
        copy = models / "ab" / "members" / record["run_name"]
        assert (copy / MANIFEST_FILE).read_bytes() == (original.path / MANIFEST_FILE).read_bytes()
    assert ensemble.env_config.action_space == "continuous" and ensemble.env_config.rebalance_band == BAND
    assert ensemble.env_config.execution == load_bundle("a", models).env_config.execution
    assert not [p for p in models.iterdir() if p.name.startswith(".staging")]

    shutil.rmtree(models / "a")  # the ensemble does not need the originals
    loaded = load_any_bundle("ab", models)
    assert isinstance(loaded, EnsembleBundle) and loaded.manifest == ensemble.manifest
    assert [m.run_name for m in loaded.members] == ["a", "b"]


def test_a_single_model_command_refuses_an_ensemble_in_one_line(models: Path) -> None:
    make(models, "a", "b", name="ab")
    with pytest.raises(BundleError, match=r"ab is an ensemble of model bundles: this needs a single model bundle"):
        load_bundle("ab", models)
    with pytest.raises(BundleError, match="single model bundle"):  # nor can an ensemble be a member
        make(models, "a", "ab")


def test_the_default_name_is_stable_and_a_second_identical_ensemble_is_refused(models: Path) -> None:
    first = make(models, "a", "b")
    assert first.run_name.startswith("ensemble-mean-weight-")
    with pytest.raises(BundleError, match=rf"{first.run_name} already exists .*choose another --name"):
        make(models, "a", "b")
    assert make(models, "a", "b", rule="majority").run_name.startswith("ensemble-majority-")
    with pytest.raises(ConfigError, match=r"'\.\./up' is not a folder name"):
        make(models, "a", "b", name="../up")


def test_the_default_anchor_is_the_day_after_what_any_member_saw(models: Path) -> None:
    train = train_window(120)
    validation = DateWindow(train.end + timedelta(days=1), train_window(170).end)
    write_bundle(models, "c", 3, split=DataSplit(train, validation, None))
    assert make(models, "a", "c").anchor == validation.end + timedelta(days=1)
    assert make(models, "a", "b", name="x", anchor=date(2016, 9, 1)).anchor == date(2016, 9, 1)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"spec": replace(SPEC, volatility_window=10)}, "the feature spec (volatility_window): a has 20, c has 10"),
        ({"spec": replace(SPEC, use_vix=False)}, "the feature spec (use_vix)"),
        ({"symbol": "QQQ"}, "the symbol: a has 'SPY', c has 'QQQ'"),
        (
            {"config": env_config(execution=execution_config(costs=cost_model(commission_bps=5.0)))},
            "the execution (costs.commission_bps): a has 1.0, c has 5.0",
        ),
        ({"config": env_config(execution=execution_config(fill_at="next_close"))}, "the execution (fill_at)"),
        ({"config": env_config(execution=execution_config(allow_short=True))}, "the execution (allow_short)"),
        ({"config": env_config(initial_cash=50_000.0)}, "the starting cash: a has 100000.0, c has 50000.0"),
    ],
)
def test_members_that_cannot_be_compared_are_refused_naming_the_difference(
    models: Path, change: dict[str, Any], fragment: str
) -> None:
    write_bundle(models, "c", 3, **change)
    with pytest.raises(BundleError, match="ensemble members disagree on") as caught:
        make(models, "a", "c")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in models.iterdir()) == ["a", "b", "c", LATEST]  # nothing written


def test_action_spaces_may_differ_and_keep_their_own_normalisers(models: Path) -> None:
    write_bundle(
        models, "w", 3, config=env_config(action_space="target_weight"), split=DataSplit(train_window(120), None, None)
    )
    ensemble = make(models, "a", "w")
    normalisers = [m.normalizer for m in ensemble.members]
    assert normalisers[0] != normalisers[1]


def test_fewer_than_two_members_duplicates_and_bad_rules_are_refused(models: Path) -> None:
    with pytest.raises(BundleError, match="at least 2 model bundles, got 1"):
        make(models, "a")
    with pytest.raises(BundleError, match="a is given twice"):
        make(models, "a", "a")
    write_bundle(models, "a2", 9, policy_of=models / "a")
    with pytest.raises(BundleError, match="a2 holds the same policy as a"):
        make(models, "a", "a2")
    with pytest.raises(ConfigError, match="unknown ensemble rule 'vote': choose mean_weight or majority"):
        make(models, "a", "b", rule="vote")
    write_bundle(models, "c", 3, config=env_config(action_space="continuous"))
    with pytest.raises(BundleError, match="majority needs members with discrete decisions; c decide"):
        make(models, "a", "c", rule="majority")
    make(models, "a", "c")  # the mean of continuous weights is fine


def test_a_failed_copy_leaves_nothing_behind(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ensemble_bundle, "_member_records", broken)
    with pytest.raises(OSError, match="disk full"):
        make(models, "a", "b", name="ab")
    assert sorted(p.name for p in models.iterdir()) == ["a", "b", LATEST]


@pytest.mark.parametrize(
    ("file", "fragment"),
    [
        (POLICY_FILE, "policy.npz does not match its recorded SHA-256"),
        (MANIFEST_FILE, "member a's bundle.json does not match its recorded SHA-256"),
    ],
)
def test_a_modified_member_file_is_refused_in_one_line(models: Path, file: str, fragment: str) -> None:
    make(models, "a", "b", name="ab")
    target = models / "ab" / "members" / "a" / file
    target.write_bytes(target.read_bytes() + b" ")
    with pytest.raises(BundleError) as caught:
        load_any_bundle("ab", models)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_member_or_a_malformed_manifest_is_one_line(models: Path) -> None:
    make(models, "a", "b", name="ab")
    document = json.loads((models / "ab" / MANIFEST_FILE).read_text())
    (models / "ab" / MANIFEST_FILE).write_text(json.dumps({**document, "rule": "vote"}))
    with pytest.raises(BundleError, match=r"field 'rule'"):
        load_any_bundle("ab", models)
    (models / "ab" / MANIFEST_FILE).write_text(json.dumps(document))
    shutil.rmtree(models / "ab" / "members" / "b")
    with pytest.raises(BundleError, match="member b is missing"):
        load_any_bundle("ab", models)


def test_an_edited_action_space_is_refused(models: Path) -> None:
    """The ensemble's book trades target weights; a trader reading discrete3 would cut 0.67 to flat."""
    make(models, "a", "b", name="ab")
    document = json.loads((models / "ab" / MANIFEST_FILE).read_text())
    document["env_config"]["action_space"] = "discrete3"
    (models / "ab" / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(BundleError, match="action space is discrete3, not continuous"):
        load_any_bundle("ab", models)


# ---------------------------------------------------------------- the rules


def test_mean_weight_is_the_mean_of_the_decided_weights() -> None:
    weights = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 0.5]])
    np.testing.assert_array_equal(combine_targets(weights, "mean_weight"), [2 / 3, 0.0, 0.5 / 3])


def test_majority_takes_the_most_common_weight_and_a_tie_is_flat() -> None:
    weights = np.array(
        [
            [1.0, 1.0, 0.0],  # 2 of 3 long
            [0.0, -1.0, -1.0],  # 2 of 3 short
            [1.0, 0.0, -1.0],  # a three-way tie: flat
            [1.0, 0.0, 0.5],  # every weight once: flat
            [0.5, 0.5, 0.5],
        ]
    )
    np.testing.assert_array_equal(combine_targets(weights, "majority"), [1.0, -1.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(combine_targets(np.array([[1.0, 0.0], [1.0, 1.0]]), "majority"), [0.0, 1.0])


def test_decided_weights_read_positions_or_weights_and_a_ruined_book_is_flat() -> None:
    ledger = pd.DataFrame({"position": [0, 1, 1, 0], "action": [2.0, 1.0, 0.0, np.nan]})
    np.testing.assert_array_equal(decided_weights(ledger, "discrete3", 3), [1, 1, 0])
    np.testing.assert_array_equal(decided_weights(ledger, "target_weight", 3), [2.0, 1.0, 0.0])
    np.testing.assert_array_equal(decided_weights(ledger, "discrete3", 5), [1, 1, 0, 0, 0])


# ---------------------------------------------------------------- the replay


def test_a_decision_after_any_close_equals_that_day_in_the_replay_from_the_anchor(models: Path) -> None:
    """What the paper trader computes on day t (replay from the anchor to t) is the backtest's day t."""
    write_bundle(models, "w", 3, config=env_config(action_space="target_weight"))
    ensemble = make(models, "a", "b", "w")
    _, features = market()
    window = features.loc[pd.Timestamp(ensemble.anchor) :].iloc[:40]
    execution = ensemble.env_config.execution
    whole = ensemble.replay(window, features, execution)
    assert whole.weights.shape == (40, 3) and len(set(whole.targets.round(6))) >= 3  # the members disagree
    for t in (0, 1, 17, 39):
        today = ensemble.decide_after(features.loc[: window.index[t]], execution)
        np.testing.assert_array_equal(today.weights[-1], whole.weights[t])
        assert today.targets[-1] == whole.targets[t]
        assert today.dates[0] == window.index[0]  # the books start on the anchor, whatever the data's start
    later_start = features.loc[features.index[30] :]
    assert ensemble.decide_after(later_start.loc[: window.index[17]], execution).targets[-1] == whole.targets[17]


def test_decisions_need_data_from_the_anchor_to_the_day(models: Path) -> None:
    ensemble = make(models, "a", "b")
    _, features = market()
    execution = ensemble.env_config.execution
    with pytest.raises(DataError, match="before it"):
        ensemble.decide_after(features.loc[: pd.Timestamp(ensemble.anchor) - pd.Timedelta(days=3)], execution)
    after = features.loc[pd.Timestamp(ensemble.anchor) + pd.Timedelta(days=10) :]
    with pytest.raises(DataError, match=rf"after the ensemble's anchor {ensemble.anchor}"):
        ensemble.decide_after(after, execution)
