"""A real TensorBoard server reads the training run: the scalars a user will look at are there."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from finrl.agents.training import train
from finrl.meta.features import build_features
from finrl.meta.preprocessing import split_by_dates
from unit_tests.conftest import env_config, feature_spec, make_bars, ppo_config, training_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPECTED_TAGS = {
    "trading/episode_nav_return",
    "trading/episode_sharpe",
    "trading/episode_turnover",
    "trading/episode_costs",
    "trading/episode_buy_fraction",
    "trading/steps_per_second",
    "validation/sharpe",
    "rollout/ep_rew_mean",
    "train/loss",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def trained_run(tmp_path: Path) -> Path:
    spec = feature_spec()
    features = build_features(make_bars(500), spec)
    train(
        training_job(
            features=features,
            feature_spec=spec,
            data_info={"source": "generated"},
            split=split_by_dates(pd.DatetimeIndex(features.index)),
            run_name="tb-run",
            models_dir=tmp_path / "models",
            tensorboard_dir=tmp_path / "tb",
            ppo=ppo_config(n_envs=2, n_steps=128, batch_size=128),
            env=env_config(episode_length=60),
            total_timesteps=2048,
            eval_freq=1024,
            checkpoint_freq=0,
            progress=False,
        )
    )
    return tmp_path / "tb"


@pytest.fixture
def tensorboard(trained_run: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(trained_run), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tensorboard exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if get_json(f"{base}/data/runs"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("tensorboard did not list the run within 60 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_tensorboard_serves_trading_and_training_scalars(tensorboard: str) -> None:
    (run,) = get_json(f"{tensorboard}/data/runs")  # type: ignore[misc]
    assert run == "tb-run"
    deadline = time.monotonic() + 30
    tags: set[str] = set()
    while time.monotonic() < deadline and not tags >= EXPECTED_TAGS:
        tags = set(get_json(f"{tensorboard}/data/plugin/scalars/tags")[run])  # type: ignore[index]
        time.sleep(0.5)
    assert tags >= EXPECTED_TAGS, EXPECTED_TAGS - tags
    points = get_json(f"{tensorboard}/data/plugin/scalars/scalars?run={quote(run)}&tag=validation/sharpe")
    assert len(points) >= 2  # type: ignore[arg-type]
    hparams = get_json(f"{tensorboard}/data/plugin/hparams/experiment?request={quote(json.dumps({}))}")
    assert any(h["name"] == "learning_rate" for h in hparams["hparamInfos"])  # type: ignore[index]
