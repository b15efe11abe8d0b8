"""Loading model bundles: by path, run name or ``latest``; every way a bundle can be broken; the
recorded configuration round-trips; the model acts on the env's observations."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finrl.agents.bundle import (
    FINAL_MODEL_FILE,
    LATEST,
    MANIFEST_FILE,
    MODEL_FILE,
    POLICY_FILE,
    BundleError,
    ModelBundle,
    convert_bundle,
    load_bundle,
    sha256_file,
)
from finrl.agents.training import TrainingResult, train
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.meta.preprocessing import FeatureNormalizer
from unit_tests.agents.test_training import TINY_ENV, generated_data, tiny_job
from unit_tests.conftest import env_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("bundle")
    return train(tiny_job(root, "base", total_timesteps=512, checkpoint_freq=0))


@pytest.fixture
def copy(trained: TrainingResult, tmp_path: Path) -> Path:
    """A writable copy of the trained bundle, alone in its own models folder."""
    target = tmp_path / "models" / "base"
    shutil.copytree(trained.bundle.path, target)
    return target


def edit_manifest(bundle: Path, **changes: Any) -> None:
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del manifest[key]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))


# ---------------------------------------------------------------- finding a bundle


def test_load_by_path_by_run_name_and_by_latest(trained: TrainingResult, monkeypatch: pytest.MonkeyPatch) -> None:
    models = trained.bundle.path.parent
    monkeypatch.chdir(models.parent)  # a relative path is read from the working directory
    elsewhere = models.parent / "elsewhere"
    loaded = [
        load_bundle(trained.bundle.path, elsewhere),
        load_bundle(str(trained.bundle.path), elsewhere),
        load_bundle(Path("models") / "base", elsewhere),
        load_bundle("base", models),
        load_bundle(LATEST, models),
    ]
    for bundle in loaded:
        assert isinstance(bundle, ModelBundle)
        assert bundle.path == trained.bundle.path.resolve()
        assert bundle.run_name == "base" and bundle.manifest == trained.bundle.manifest


def test_missing_latest_says_to_train_first(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"model bundle not found: latest .*spy-rl train"):
        load_bundle(LATEST, tmp_path / "models")


def test_dangling_latest_is_reported_as_missing(copy: Path) -> None:
    (copy.parent / LATEST).symlink_to("gone", target_is_directory=True)
    with pytest.raises(BundleError, match="spy-rl train"):
        load_bundle(LATEST, copy.parent)


def test_missing_run_name(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"model bundle not found: nope \(no model bundles in .*pass --models-dir\)$"):
        load_bundle("nope", tmp_path)


def test_a_missing_run_name_lists_the_runs_there_are(copy: Path) -> None:
    with pytest.raises(
        BundleError, match=rf"model bundle not found: nope in .* \(its runs, newest first: {copy.name}\)$"
    ):
        load_bundle("nope", copy.parent)


# ---------------------------------------------------------------- broken bundles


def test_directory_without_manifest(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / MODEL_FILE).write_bytes(b"zip")
    with pytest.raises(BundleError, match=r"not a complete model bundle \(no bundle.json\)"):
        load_bundle("half", tmp_path)


@pytest.mark.parametrize("content", ["{not json", "", b"\xff\xfe\x00garbage"])
def test_corrupt_manifest(copy: Path, content: str | bytes) -> None:
    manifest = copy / MANIFEST_FILE
    manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(BundleError, match=r"corrupt .*bundle.json"):
        load_bundle(copy, copy.parent)


@pytest.mark.parametrize("number", [2, 0, None, "1"])
def test_wrong_format_number(copy: Path, number: object) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["format"] = number
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=rf"bundle format {number!r}, this finrl reads 1"):
        load_bundle(copy, copy.parent)


@pytest.mark.parametrize("key", ["normalizer", "feature_spec", "env_config", "split", "files", "run_name"])
def test_manifest_missing_a_key(copy: Path, key: str) -> None:
    edit_manifest(copy, **{key: None})
    with pytest.raises(BundleError, match=f"corrupt .*bundle.json: field '{key}': Field required"):
        load_bundle(copy, copy.parent)


def env_config_with(**execution: Any) -> dict[str, Any]:
    """A complete ``env_config`` entry, as training writes it, with some execution fields changed."""
    config = env_config().to_dict()
    config["execution"].update(execution)
    return config


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("env_config", [], "field 'env_config': expected a JSON object, got list"),
        ("env_config", env_config_with(fill_at="tomorrow"), "field 'env_config': ValueError: fill_at"),
        ("env_config", {"execution": {"fill_at": "next_open"}}, "field 'env_config': KeyError: 'costs'"),  # no defaults
        ("files", "model.zip", "field 'files': Input should be a valid dictionary"),
        ("split", {"train": "2020"}, "field 'split': TypeError"),
        ("seed", "seven", "field 'seed': Input should be a valid integer"),
        ("feature_spec", {"use_vix": True, "indicators": 5}, "field 'feature_spec': TypeError"),
    ],
)
def test_manifest_field_of_the_wrong_type_is_one_line_naming_it(
    copy: Path, key: str, value: object, fragment: str
) -> None:
    edit_manifest(copy, **{key: value})
    with pytest.raises(BundleError) as caught:
        load_bundle(copy, copy.parent)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert message.startswith(f"corrupt {copy / MANIFEST_FILE}")


def test_manifest_with_unusable_normalizer(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["normalizer"]["mean"] = manifest["normalizer"]["mean"][:-1]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"corrupt .*inconsistent lengths"):
        load_bundle(copy, copy.parent)


@pytest.mark.parametrize("name", [MODEL_FILE, FINAL_MODEL_FILE, POLICY_FILE])
def test_modified_model_file_fails_its_sha256(copy: Path, name: str) -> None:
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name} does not match its recorded SHA-256"):
        load_bundle(copy, copy.parent)


@pytest.mark.parametrize("name", [MODEL_FILE, FINAL_MODEL_FILE, POLICY_FILE])
def test_missing_model_file(copy: Path, name: str) -> None:
    (copy / name).unlink()
    with pytest.raises(BundleError, match=f"{name} is missing"):
        load_bundle(copy, copy.parent)


def test_unloadable_model_with_matching_hash_is_a_bundle_error(copy: Path) -> None:
    (copy / MODEL_FILE).write_bytes(b"not a zip file")
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["files"][MODEL_FILE] = sha256_file(copy / MODEL_FILE)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    bundle = load_bundle(copy, copy.parent)
    with pytest.raises(BundleError, match=r"cannot load .*model\.zip"):
        bundle.load_model()


# ---------------------------------------------------------------- what a bundle gives back


def test_check_features_names_the_missing_column(trained: TrainingResult) -> None:
    _, features, spec, _ = generated_data()
    trained.bundle.check_features(features)  # the training schema passes
    lacking = features.drop(columns=["vix", "turbulence"])
    with pytest.raises(BundleError, match="feature schema mismatch") as caught:
        trained.bundle.check_features(lacking)
    message = str(caught.value)
    assert "bundle base" in message and message.endswith("the data lacks turbulence, vix")
    assert ", ".join(spec.observation_columns) in message


def test_properties_round_trip_what_training_used(trained: TrainingResult) -> None:
    _, features, spec, split = generated_data()
    bundle = load_bundle(trained.bundle.path, trained.bundle.path.parent)
    assert bundle.feature_spec == spec
    assert bundle.split == split
    assert bundle.env_config == TINY_ENV and isinstance(bundle.env_config, EnvConfig)
    assert bundle.seed == 7 and bundle.run_name == "base"
    assert bundle.normalizer == FeatureNormalizer.fit(split.train.slice(features), spec.observation_columns)


def test_load_model_predicts_on_an_env_observation(trained: TrainingResult) -> None:
    _, features, _, split = generated_data()
    bundle = load_bundle(LATEST, trained.bundle.path.parent)
    bundle.check_features(features)
    assert split.test is not None
    market = MarketArrays.from_features(split.test.slice(features), bundle.normalizer)
    env = SpyTradingEnv(market, replace(bundle.env_config, episode_length=None))
    obs, _ = env.reset(seed=0)
    model = bundle.load_model()
    assert model.observation_space.shape == obs.shape
    action, _ = model.predict(obs, deterministic=True)
    assert int(action) in (0, 1, 2)
    again, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(action, again)
    _, reward, *_ = env.step(int(action))
    assert np.isfinite(reward)


@pytest.mark.parametrize("content", ["[]", "null"])
def test_manifest_that_is_not_a_json_object(copy: Path, content: str) -> None:
    (copy / MANIFEST_FILE).write_text(content)
    with pytest.raises(BundleError, match="corrupt"):
        load_bundle(copy, copy.parent)


# ---------------------------------------------------------------- torch-free policy arrays


def legacy_copy(copy: Path) -> Path:
    """The bundle as written before ``policy.npz`` existed."""
    (copy / POLICY_FILE).unlink()
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"][POLICY_FILE]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def test_policy_arrays_act_like_the_model(trained: TrainingResult) -> None:
    bundle = load_bundle(trained.bundle.path, trained.bundle.path.parent)
    policy, model = bundle.load_policy(), bundle.load_model()
    observations = np.random.default_rng(3).normal(0, 3, (500, policy.observation_size)).astype(np.float32)
    expected, _ = model.predict(observations, deterministic=True)
    assert np.array_equal(policy.act_batch(observations), expected)


def test_a_bundle_without_policy_arrays_still_loads_and_acts_the_same(trained: TrainingResult, copy: Path) -> None:
    bundle = load_bundle(legacy_copy(copy), copy.parent)
    observations = np.random.default_rng(4).normal(0, 3, (200, 15)).astype(np.float32)
    converted_in_memory = bundle.load_policy()
    assert np.array_equal(
        converted_in_memory.act_batch(observations), trained.bundle.load_policy().act_batch(observations)
    )


def test_convert_adds_hashed_policy_arrays_and_keeps_the_rest(trained: TrainingResult, copy: Path) -> None:
    before = json.loads((legacy_copy(copy) / MANIFEST_FILE).read_text())
    converted = convert_bundle(load_bundle(copy, copy.parent))
    after = json.loads((copy / MANIFEST_FILE).read_text())
    assert after["files"][POLICY_FILE] == sha256_file(copy / POLICY_FILE)
    assert {k: v for k, v in after.items() if k != "files"} == {k: v for k, v in before.items() if k != "files"}
    reloaded = load_bundle(copy, copy.parent)
    assert reloaded.manifest == converted.manifest
    assert convert_bundle(reloaded) == reloaded  # converting twice changes nothing


def test_corrupt_policy_arrays_with_matching_hash_are_a_bundle_error(copy: Path) -> None:
    (copy / POLICY_FILE).write_bytes(b"not an npz")
    edit_manifest(
        copy,
        files={**json.loads((copy / MANIFEST_FILE).read_text())["files"], POLICY_FILE: sha256_file(copy / POLICY_FILE)},
    )
    with pytest.raises(BundleError, match=r"cannot read .*policy\.npz"):
        load_bundle(copy, copy.parent).load_policy()
