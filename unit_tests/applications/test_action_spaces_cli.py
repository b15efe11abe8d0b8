"""Each action space and reward end to end: `spy-rl train --action-space X --reward Y` records them in
the bundle, `spy-rl backtest` replays the agent in that space (baselines keep their meaning), and
`spy-rl paper --once` decides through the same mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import load_bundle
from finrl.applications.spy_rl_trading.cli import app
from finrl.meta.env.spy_env import ENV_CONFIG_VERSION
from unit_tests.conftest import TINY_TRAINING, isolated_env

pytestmark = pytest.mark.integration
runner = CliRunner()

CASES = {
    "discrete3": ("--action-space", "discrete3", "--reward", "differential_sharpe", "--dsr-eta", "0.05"),
    "target_weight": (
        "--action-space",
        "target_weight",
        "--weight-levels",
        "0,0.5,1",
        "--reward",
        "drawdown_penalty",
        "--drawdown-penalty",
        "2",
    ),
    "continuous": ("--action-space", "continuous", "--rebalance-band", "0.05", "--reward", "excess_log_return"),
}


@pytest.mark.parametrize("space", list(CASES))
def test_train_backtest_and_paper_once(space: str, tmp_path: Path) -> None:
    models, datasets = tmp_path / "models", tmp_path / "datasets"
    env = isolated_env(tmp_path)
    folders = ["--models-dir", str(models), "--datasets-dir", str(datasets)]
    train = runner.invoke(
        app,
        [
            "train",
            "--source",
            "sample",
            *TINY_TRAINING,
            "--run-name",
            space,
            *CASES[space],
            *folders,
            "--tensorboard-dir",
            str(tmp_path / "tb"),
        ],
        env=env,
        catch_exceptions=False,
    )
    assert train.exit_code == 0, train.output
    bundle = load_bundle(space, models)
    config = bundle.env_config
    assert config.action_space == space
    recorded = json.loads((models / space / "bundle.json").read_text())
    assert recorded["env_config"]["version"] == ENV_CONFIG_VERSION and recorded["settings"]["action_space"] == space
    if space == "target_weight":
        assert config.weight_levels == (0.0, 0.5, 1.0) and config.reward == "drawdown_penalty"
        assert config.drawdown_penalty == 2.0
    if space == "continuous":
        assert config.rebalance_band == 0.05 and config.reward == "excess_log_return"
    if space == "discrete3":
        assert config.reward == "differential_sharpe" and config.dsr_eta == 0.05

    results = tmp_path / "results"
    backtest = runner.invoke(
        app, ["backtest", "--model", space, *folders, "--results-dir", str(results)], env=env, catch_exceptions=False
    )
    assert backtest.exit_code == 0, backtest.output
    (report,) = [p for p in results.iterdir() if p.is_dir()]
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["buy_and_hold"]["exposure"] == 1.0 and metrics["flat"]["total_return"] == 0.0

    paper = runner.invoke(
        app,
        [
            "paper",
            "--once",
            "--live-source",
            "sample",
            "--model",
            space,
            *folders,
            "--logs-dir",
            str(tmp_path / "logs"),
            "--metrics-port",
            "0",
        ],
        env=env,
    )
    assert paper.exit_code == 0, paper.output
    decisions = [json.loads(line) for line in (tmp_path / "logs" / "journal.jsonl").read_text().splitlines()]
    (decision,) = [d for d in decisions if d.get("event") == "decision"]
    if space != "discrete3":
        assert 0.0 <= decision["target"] <= 1.0
