"""``spy-rl train`` and the example training module: flags mirror SPY_* variables, tiny runs
finish and publish a bundle, bad values fail in one line."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import torch
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.applications.spy_rl_trading.cli_support import SPLIT_FLAGS, TRAINING_FLAGS
from finrl.applications.spy_rl_trading.settings import env_name
from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
runner = CliRunner()

# tiny PPO on the offline sample data; every run here trains for about a second
TINY = (
    "--source", "sample", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1",
    "--eval-freq", "256", "--episode-length", "20", "--checkpoint-freq", "0",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command points logging at CliRunner's streams, which close afterwards: put it back."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))  # seed_everything exports it
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def manifest_of(models: Path) -> dict:
    return json.loads((models / "latest" / "bundle.json").read_text())


# ---------------------------------------------------------------- help


def test_help_lists_training_flags_with_their_variables() -> None:
    result = invoke("train", "--help", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    options = result.output.split("Examples:")[0].split("\nOptions:\n", 1)[1]  # not the command's description
    # each option: its names on a line, its help (default, variable) on the lines under it
    blocks = re.split(r"\n(?=  -)", options)

    def line_of(flag: str) -> str:
        found = [block for block in blocks if re.match(rf"\s*(\S+, )*{re.escape(flag)}[\s,]", block)]
        assert len(found) == 1, (flag, found)
        return " ".join(found[0].split())

    expected = {
        "--timesteps": "SPY_TOTAL_TIMESTEPS", "--learning-rate": "SPY_LEARNING_RATE", "--seed": "SPY_RANDOM_SEED",
        "--n-envs": "SPY_N_ENVS", "--n-steps": "SPY_N_STEPS", "--batch-size": "SPY_BATCH_SIZE",
        "--net-arch": "SPY_NET_ARCH", "--eval-freq": "SPY_EVAL_FREQ", "--episode-length": "SPY_EPISODE_LENGTH",
        "--run-name": "SPY_RUN_NAME", "--models-dir": "SPY_TRAINED_MODELS_DIR",
        "--tensorboard-dir": "SPY_TENSORBOARD_LOG_DIR", "--train-start": "SPY_TRAIN_START",
        "--train-end": "SPY_TRAIN_END", "--val-start": "SPY_VAL_START", "--test-end": "SPY_TEST_END",
    }  # fmt: skip
    for flag, variable in expected.items():
        assert f"[env: {variable}]" in line_of(flag), flag
    for flag in (*TRAINING_FLAGS, *SPLIT_FLAGS):
        assert f"[env: {env_name(flag.field)}]" in result.output, flag.field
    assert "(default: 200000)" in line_of("--timesteps") and "(default: 64,64)" in line_of("--net-arch")


# ---------------------------------------------------------------- a flag and its variable mean the same


def test_flags_and_variables_record_identical_settings(tmp_path: Path) -> None:
    models = tmp_path / "models"
    common = (*TINY, "--datasets-dir", str(tmp_path / "data"), "--tensorboard-dir", str(tmp_path / "tb"))
    by_flag = invoke(
        "train", *common, "--timesteps", "768", "--learning-rate", "0.001", "--seed", "5",
        "--train-end", "2016-12-30", "--models-dir", str(models),
    )  # fmt: skip
    assert by_flag.exit_code == 0, by_flag.stderr
    shutil.move(models, tmp_path / "first")  # the second run publishes into the same folder
    by_variable = invoke(
        "train",
        *common,
        env={
            "SPY_TOTAL_TIMESTEPS": "768",
            "SPY_LEARNING_RATE": "0.001",
            "SPY_RANDOM_SEED": "5",
            "SPY_TRAIN_END": "2016-12-30",
            "SPY_TRAINED_MODELS_DIR": str(models),
        },
    )
    assert by_variable.exit_code == 0, by_variable.stderr

    first, second = manifest_of(tmp_path / "first"), manifest_of(models)
    assert first["settings"] == second["settings"]
    settings = first["settings"]
    assert settings["total_timesteps"] == 768 and settings["learning_rate"] == 0.001
    assert settings["random_seed"] == 5 and settings["train_end"] == "2016-12-30"
    assert settings["trained_models_dir"] == str(models)
    assert "alpaca_api_key" not in settings and "alpaca_api_secret" not in settings
    for manifest in (first, second):
        assert manifest["seed"] == 5 and manifest["ppo_config"]["learning_rate"] == 0.001
        assert manifest["training"]["timesteps"] >= 768
        assert manifest["split"]["train"]["end"] <= "2016-12-30"
        assert manifest["split"]["validation"]["end"] == "2016-12-30"  # carved from the declared window
    # same settings, same seed: the same policy
    from stable_baselines3 import PPO

    a = PPO.load(tmp_path / "first" / "latest" / "final_model.zip").policy.state_dict()
    b = PPO.load(models / "latest" / "final_model.zip").policy.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- smoke runs


def test_train_smoke_run_prints_the_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default folders are relative to the working directory
    result = invoke("train", *TINY, "--timesteps", "1024", "--eval-freq", "512")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model:")
    model = Path(lines[0].split(maxsplit=1)[1])
    assert model.parent == Path("trained_models") and model.name.startswith("ppo-spy-sample-seed42-")
    assert (tmp_path / model / "bundle.json").is_file() and (tmp_path / model / "model.zip").is_file()
    assert (tmp_path / "trained_models" / "latest").resolve() == (tmp_path / model).resolve()
    assert any(line.startswith("timesteps:  1024 in") for line in lines)
    assert any(line.startswith("chosen:     best_validation_sharpe") for line in lines)
    assert any(line.startswith("tensorboard: tensorboard_logs/") for line in lines)
    assert list((tmp_path / "tensorboard_logs").glob("ppo-spy-sample-seed42-*/events.out.tfevents.*"))


def test_timesteps_rounded_up_to_whole_rollouts_are_said_and_recorded(tmp_path: Path) -> None:
    """PPO completes its last rollout: 1000 steps of 2 envs x 64 steps train 1024, and the run says so."""
    models = tmp_path / "models"
    result = invoke("--log-json", "train", *TINY, "--timesteps", "1000", "--eval-freq", "0",
                    "--models-dir", str(models), "--tensorboard-dir", str(tmp_path / "tb"),
                    "--datasets-dir", str(tmp_path / "ds"))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    events = {
        e["event"]: e for e in map(json.loads, (line for line in result.stderr.splitlines() if line.startswith("{")))
    }
    assert events["timesteps_rounded_up"]["requested"] == 1000 and events["timesteps_rounded_up"]["trains"] == 1024
    assert events["training_start"]["timesteps"] == 1024
    (folder,) = (tmp_path / "ds").iterdir()  # training caches the features beside the bars, as data fetch does
    assert {"bars.csv", "metadata.json", "features.csv", "features.json"} <= {p.name for p in folder.iterdir()}
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("timesteps:")]
    assert line.startswith("timesteps:  1024 (asked 1000; PPO trains whole rollouts of --n-envs 2 x --n-steps 64) in ")


@pytest.mark.slow
def test_example_training_module_runs_as_a_process(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [
            sys.executable, "-m", "finrl.applications.spy_rl_trading.example_training",
            "--timesteps", "512", *TINY, "--run-name", "example",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model:      trained_models/example\n")
    assert "Traceback" not in result.stderr
    manifest = manifest_of(tmp_path / "trained_models")
    assert manifest["run_name"] == "example" and manifest["settings"]["total_timesteps"] == 512


# ---------------------------------------------------------------- one-line failures


@pytest.mark.parametrize(
    ("args", "env", "fragments"),
    [
        (["--net-arch", "64,x"], {}, ["--net-arch: expected comma-separated layer widths like 64,64, got '64,x'"]),
        ([], {"SPY_NET_ARCH": "64,x"}, ["SPY_NET_ARCH: ", "got '64,x'"]),
        (["--batch-size", "4096", "--n-steps", "64", "--n-envs", "2"], {},
         ["--batch-size 4096 exceeds one rollout", "(--n-steps x --n-envs = 128)"]),
        ([], {"SPY_BATCH_SIZE": "4096", "SPY_N_STEPS": "64", "SPY_N_ENVS": "2"},
         ["SPY_BATCH_SIZE=4096 (--batch-size) exceeds"]),
        (["--learning-rate", "0"], {}, ["--learning-rate: expected a number in (0, 1), got 0.0"]),
        ([], {"SPY_LEARNING_RATE": "0"}, ["SPY_LEARNING_RATE: expected a number in (0, 1), got '0'"]),
        (["--train-end", "31/12/2020"], {},
         ["--train-end: expected a date as YYYY-MM-DD (e.g. 2020-12-31), got '31/12/2020'"]),
        ([], {"SPY_TRAIN_END": "31/12/2020"}, ["SPY_TRAIN_END: expected a date as YYYY-MM-DD", "got '31/12/2020'"]),
        (["--source", "bogus"], {}, ["--source: expected 'yahoo', 'csv', 'alpaca' or 'sample', got 'bogus'"]),
        (["--n-envs", "1000"], {}, ["--n-envs: expected a whole number in [1, 256], got 1000"]),
    ],
)  # fmt: skip
def test_invalid_values_fail_in_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], fragments: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("train", *args, env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(("error: --", "error: SPY_")), lines
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("2015-06-01", "2015-06-01", "need at least two training days"),
        ("2015-06-06", "2015-06-07", "the training window 2015-06-06..2015-06-07 holds no trading days"),
    ],
)
def test_too_short_training_window_fails_in_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str, end: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("--log-level", "ERROR", "train", *TINY, "--train-start", start, "--train-end", end)
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines(result.stderr)) == 1 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "trained_models" / "latest").exists()


def test_config_error_in_a_real_process_writes_nothing_to_stdout(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", "train", "--net-arch", "64,x"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: --net-arch: expected comma-separated layer widths")
    assert result.stdout == ""
