"""PPO training end to end, in tiny runs: reproducibility, the published bundle, model choice,
TensorBoard scalars, interruption by signals and refusal of a duplicate run name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import (
    DRIFT_FILE,
    FINAL_MODEL_FILE,
    LATEST,
    MANIFEST_FILE,
    MODEL_FILE,
    POLICY_FILE,
    BundleError,
    load_bundle,
    sha256_file,
)
from finrl.agents.training import TrainingJob, TrainingResult, train
from finrl.meta.data.frames import fingerprint
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy, sb3_policy
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DataSplit, split_by_dates
from unit_tests.conftest import REPO_ROOT, env_config, feature_spec, make_bars, ppo_config, training_job

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------- helpers (test_bundle.py uses them too)

TINY_PPO = ppo_config(n_steps=64, batch_size=64, n_epochs=2, n_envs=2, net_arch=(32, 32))
TINY_ENV = env_config(episode_length=20)  # short episodes: several finish within a tiny run


@cache
def generated_data() -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec, DataSplit]:
    """Bars, features, spec and default split of 300 generated NYSE days (cached: treat as read-only)."""
    bars = make_bars(300, seed=3)
    spec = feature_spec()
    features = build_features(bars, spec)
    return bars, features, spec, split_by_dates(pd.DatetimeIndex(features.index))


def tiny_job(root: Path, run_name: str, **overrides: Any) -> TrainingJob:
    """A training job over the generated data that trains for about a second."""
    bars, features, spec, split = generated_data()
    job = training_job(
        features=features,
        feature_spec=spec,
        data_info={"source": "generated", "symbol": "SPY", "fingerprint": fingerprint(bars), "rows": len(bars)},
        split=split,
        run_name=run_name,
        models_dir=root / "models",
        tensorboard_dir=root / "tensorboard",
        ppo=TINY_PPO,
        env=TINY_ENV,
        seed=7,
        total_timesteps=1024,
        eval_freq=256,
        checkpoint_freq=512,
        settings={"note": "recorded as given", "total_timesteps": 1024},
        progress=False,
    )
    return replace(job, **overrides)


def policy_state(path: Path) -> dict[str, Any]:
    from stable_baselines3 import PPO

    return PPO.load(path, device="cpu").policy.state_dict()


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def validation_actions(result: TrainingResult) -> np.ndarray:
    """The bundle's deterministic actions over the validation window, as the validation replays them."""
    bundle = result.bundle
    _, features, _, split = generated_data()
    assert split.validation is not None
    market = MarketArrays.from_features(split.validation.slice(features), bundle.normalizer)
    ledger = run_policy(market, bundle.env_config, sb3_policy(bundle.load_model()))
    return ledger.frame["action"].to_numpy()


# ---------------------------------------------------------------- three runs shared by most tests


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs a1 and a2 (same seed) and b (another seed), one after another, into one models folder."""
    root = tmp_path_factory.mktemp("runs")
    out: dict[str, Any] = {"root": root, "models": root / "models", "latest_after": {}}
    for name, seed in (("a1", 7), ("a2", 7), ("b", 8)):
        out[name] = train(tiny_job(root, name, seed=seed))
        out["latest_after"][name] = str((root / "models" / LATEST).readlink())
    return out


def test_same_seed_same_weights_and_actions(runs: dict[str, Any]) -> None:
    a1, a2 = runs["a1"].bundle.path, runs["a2"].bundle.path
    for name in (MODEL_FILE, FINAL_MODEL_FILE):
        assert same_state(policy_state(a1 / name), policy_state(a2 / name)), name
    assert np.array_equal(validation_actions(runs["a1"]), validation_actions(runs["a2"]), equal_nan=True)
    assert runs["a1"].metrics["validation_history"] == runs["a2"].metrics["validation_history"]


def test_another_seed_other_weights(runs: dict[str, Any]) -> None:
    a1, b = runs["a1"].bundle.path, runs["b"].bundle.path
    assert not same_state(policy_state(a1 / FINAL_MODEL_FILE), policy_state(b / FINAL_MODEL_FILE))


def test_bundle_records_everything_needed_to_act_as_in_training(runs: dict[str, Any]) -> None:
    result: TrainingResult = runs["a1"]
    path = result.bundle.path
    assert path.resolve() == (runs["models"] / "a1").resolve()
    for name in (MODEL_FILE, FINAL_MODEL_FILE, MANIFEST_FILE):
        assert (path / name).is_file(), name
    assert sorted(p.name for p in (path / "checkpoints").glob("ppo_*_steps.zip"))  # checkpoint_freq=512

    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for key in (
        "format", "run_name", "feature_spec", "normalizer", "data", "split", "env_config", "ppo_config",
        "settings", "seed", "versions", "training", "files",
    ):  # fmt: skip
        assert key in manifest, key
    bars, features, spec, split = generated_data()
    assert manifest["run_name"] == "a1" and manifest["seed"] == 7
    assert manifest["feature_spec"] == spec.to_dict()
    assert manifest["data"]["fingerprint"] == fingerprint(bars)
    assert manifest["split"] == split.to_dict()
    assert manifest["env_config"] == TINY_ENV.to_dict()
    assert manifest["ppo_config"] == TINY_PPO.to_dict()
    assert manifest["settings"] == {"note": "recorded as given", "total_timesteps": 1024}
    assert {"python", "torch", "stable-baselines3", "numpy", "pandas"} <= manifest["versions"].keys()

    # the normaliser saw the training window only
    columns = list(spec.observation_columns)
    train_slice = split.train.slice(features)
    assert manifest["normalizer"]["columns"] == columns
    np.testing.assert_allclose(manifest["normalizer"]["mean"], train_slice[columns].mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(manifest["normalizer"]["std"], train_slice[columns].std(ddof=0).to_numpy(), rtol=1e-9)
    assert not np.allclose(manifest["normalizer"]["mean"], features[columns].mean().to_numpy(), rtol=1e-6)

    training = manifest["training"]
    assert training["timesteps"] >= 1024
    assert training["wall_seconds"] > 0 and training["steps_per_second"] > 0
    assert [h["timesteps"] for h in training["validation_history"]] == [256, 512, 768, 1024]
    hashed = (MODEL_FILE, FINAL_MODEL_FILE, POLICY_FILE, DRIFT_FILE)
    assert manifest["files"] == {name: sha256_file(path / name) for name in hashed}


def test_latest_moves_to_each_new_run_and_no_staging_is_left(runs: dict[str, Any]) -> None:
    assert runs["latest_after"] == {"a1": "a1", "a2": "a2", "b": "b"}
    models = runs["models"]
    assert (models / LATEST).is_symlink() and (models / LATEST).resolve() == (models / "b").resolve()
    assert load_bundle(LATEST, models).run_name == "b"
    assert not list(models.glob(".staging-*")) and not list(models.glob(".latest.*"))
    assert sorted(p.name for p in models.iterdir()) == ["a1", "a2", "b", LATEST]


def test_validation_picks_the_best_sharpe(runs: dict[str, Any]) -> None:
    metrics = runs["a1"].metrics
    assert metrics["model_choice"] == "best_validation_sharpe"
    history = metrics["validation_history"]
    best = max(history, key=lambda h: h["sharpe"])
    assert metrics["best_validation_sharpe"] == best["sharpe"]
    assert metrics["best_validation_timesteps"] == best["timesteps"]


def test_without_validation_the_final_model_is_used(tmp_path: Path) -> None:
    result = train(tiny_job(tmp_path, "final-only", eval_freq=0, checkpoint_freq=0))
    path = result.bundle.path
    assert result.metrics["model_choice"] == "final"
    assert result.metrics["validation_history"] == [] and result.metrics["best_validation_sharpe"] is None
    assert (path / MODEL_FILE).read_bytes() == (path / FINAL_MODEL_FILE).read_bytes()
    assert not (path / "checkpoints").exists() and not (path / "best_model.zip").exists()


def test_tensorboard_holds_trading_validation_sb3_scalars_and_hparams(runs: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(runs["a1"].metrics["tensorboard_run"])
    assert run_dir == runs["root"] / "tensorboard" / "a1"  # the run's name: what TensorBoard lists
    (events,) = run_dir.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    scalars = set(accumulator.Tags()["scalars"])
    expected = {
        "trading/episode_nav_return", "trading/episode_sharpe", "trading/episode_turnover", "trading/episode_costs",
        "trading/episode_buy_fraction", "trading/steps_per_second", "validation/sharpe",
    }  # fmt: skip
    assert expected <= scalars, expected - scalars
    assert any(t.startswith("train/") for t in scalars) and any(t.startswith("rollout/") for t in scalars)
    assert "_hparams_/experiment" in accumulator.PluginTagToContent("hparams")
    assert all(np.isfinite(e.value) for e in accumulator.Scalars("trading/episode_nav_return"))


def run_events(run_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = run_dir.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_hparams_tab_shows_the_kept_models_validation_metrics(runs: dict[str, Any]) -> None:
    """The HParams table shows each declared metric's last scalar: the kept model's, not the last evaluation's."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = runs["a1"]
    training = result.bundle.manifest.training
    history = training["validation_history"]
    assert training["model_choice"] == "best_validation_sharpe"
    assert history[-1]["sharpe"] != training["best_validation_sharpe"]  # else this test proves nothing
    events = run_events(Path(training["tensorboard_run"]))
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert "validation/sharpe" not in metrics
    kept = training["kept_validation"]
    assert kept["sharpe"] == training["best_validation_sharpe"]
    assert kept["timesteps"] == training["best_validation_timesteps"]
    for name in ("sharpe", "total_return", "exposure"):
        tag = f"hparams/kept_validation_{name}"
        assert tag in metrics
        (point,) = events.Scalars(tag)  # written once, as training ends: the table's value
        assert point.value == pytest.approx(kept[name], rel=1e-6, abs=1e-7)  # stored as float32
        assert point.step == training["timesteps"]
    # the last evaluation's scalars reach the file too (SB3 dumps once per rollout)
    assert [p.step for p in events.Scalars("validation/sharpe")] == [int(h["timesteps"]) for h in history]


def test_validation_logs_buy_and_hold_over_the_same_window_as_the_backtest_replays_it(runs: dict[str, Any]) -> None:
    from finrl.backtest.engine import run_backtest

    result = runs["a1"]
    training = result.bundle.manifest.training
    reference = training["validation_buy_and_hold"]
    events = run_events(Path(training["tensorboard_run"]))
    assert "validation/buy_and_hold_sharpe" in [i.name.tag for i in _experiment(events).metric_infos]
    points = events.Scalars("validation/buy_and_hold_sharpe")
    assert len(points) == len(training["validation_history"])  # logged with every evaluation, the same value
    assert [p.value for p in points] == [pytest.approx(reference["sharpe"], rel=1e-6)] * len(points)
    _, features, _, split = generated_data()
    assert split.validation is not None
    backtest = run_backtest(result.bundle, split.validation.slice(features), split.validation, 0.0)
    assert reference["sharpe"] == pytest.approx(backtest.metrics["buy_and_hold"]["sharpe"], rel=1e-9)
    assert reference["total_return"] == pytest.approx(backtest.metrics["buy_and_hold"]["total_return"], rel=1e-9)


def _experiment(events: Any) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    return plugin_data_pb2.HParamsPluginData.FromString(content).experiment


def test_a_taken_tensorboard_folder_gets_the_next_free_name(tmp_path: Path) -> None:
    (tmp_path / "tensorboard" / "again").mkdir(parents=True)  # an interrupted run's logs, say
    result = train(tiny_job(tmp_path, "again", total_timesteps=256, eval_freq=0, checkpoint_freq=0))
    assert result.metrics["tensorboard_run"] == str(tmp_path / "tensorboard" / "again_2")
    assert result.metrics["kept_validation"] is None
    assert not list((tmp_path / "tensorboard" / "again").iterdir())


# ---------------------------------------------------------------- a run name that already exists


@pytest.fixture(scope="module")
def duplicate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("duplicate")
    first = train(tiny_job(root, "taken", total_timesteps=512, checkpoint_freq=0))
    before = {p.relative_to(root): p.read_bytes() for p in (root / "models").rglob("*") if p.is_file()}
    with pytest.raises(BundleError) as caught:
        train(tiny_job(root, "taken", total_timesteps=512, checkpoint_freq=0, seed=99))
    return {"root": root, "first": first, "before": before, "error": caught.value}


def test_duplicate_run_name_fails_and_leaves_the_existing_bundle_untouched(duplicate: dict[str, Any]) -> None:
    root, models = duplicate["root"], duplicate["root"] / "models"
    assert "taken already exists" in str(duplicate["error"]) and "--name" in str(duplicate["error"])
    after = {p.relative_to(root): p.read_bytes() for p in (models / "taken").rglob("*") if p.is_file()}
    assert after == {k: v for k, v in duplicate["before"].items() if k.parts[1] == "taken"}
    assert str((models / LATEST).readlink()) == "taken"
    bundle = load_bundle(LATEST, models)
    assert bundle.seed == 7 and bundle.manifest == duplicate["first"].bundle.manifest


def test_duplicate_run_name_is_refused_before_training_and_leaves_nothing(duplicate: dict[str, Any]) -> None:
    root = duplicate["root"]
    assert not list((root / "models").glob(".staging-*"))
    assert [p.name for p in (root / "tensorboard").iterdir()] == ["taken"]  # no second training run


def test_leftovers_of_an_earlier_staging_are_not_published(tmp_path: Path) -> None:
    stale = tmp_path / "models" / ".staging-fresh"
    (stale / "checkpoints").mkdir(parents=True)
    (stale / "checkpoints" / "ppo_999999_steps.zip").write_bytes(b"from another run")
    (stale / "best_model.zip").write_bytes(b"from another run")
    result = train(tiny_job(tmp_path, "fresh", total_timesteps=512, eval_freq=0, checkpoint_freq=0))
    published = sorted(str(p.relative_to(result.bundle.path)) for p in result.bundle.path.rglob("*"))
    assert published == sorted([MANIFEST_FILE, FINAL_MODEL_FILE, MODEL_FILE, POLICY_FILE, DRIFT_FILE])


# ---------------------------------------------------------------- interruption of a real process


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder whose ``latest`` is a finished run named ``old``."""
    root = tmp_path_factory.mktemp("published")
    train(tiny_job(root, "old", total_timesteps=512, checkpoint_freq=0))
    return root / "models"


def spy_rl_process(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)  # the autouse fixture has removed SPY_*/ALPACA_* and pointed .env/secrets away
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_training_keeps_a_checkpoint_and_leaves_latest(
    published: Path, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    run = f"stopped-{signum.name.lower()}"
    process = spy_rl_process(
        "--log-json", "train", "--source", "sample", "--datasets-dir", str(tmp_path / "datasets"),
        "--timesteps", "60000", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1",
        "--eval-freq", "0", "--checkpoint-freq", "0", "--episode-length", "20", "--run-name", run,
        "--models-dir", str(published), "--tensorboard-dir", str(tmp_path / "tb"),
        cwd=tmp_path,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # JSON log lines; the first progress line comes at 10%
            seen.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "training_progress":
                break
        else:
            pytest.fail("no progress line before the process ended:\n" + "".join(seen))
        process.send_signal(signum)
        stdout, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = "".join(seen) + rest
    assert process.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: training interrupted by {signum.name} at "), lines[-3:]
    assert "latest unchanged" in lines[-1]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert "Traceback" not in stderr and "model:" not in stdout

    (checkpoint,) = (published / f"{run}.interrupted" / "checkpoints").glob("interrupted_*_steps.zip")
    steps = int(checkpoint.name.split("_")[1])
    assert 6_000 <= steps < 60_000
    assert policy_state(checkpoint)  # a loadable model
    assert not (published / run).exists() and not list(published.glob(".staging-*"))
    assert str((published / LATEST).readlink()) == "old"
    old = load_bundle(LATEST, published)
    assert old.run_name == "old" and old.load_model() is not None
