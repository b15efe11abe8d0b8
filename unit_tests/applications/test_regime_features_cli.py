"""Regime features as a user switches them on: ``SPY_REGIME_FEATURES`` or ``--regime-features`` on the
training commands; the bundle records them, and its backtest and paper trader rebuild them from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.applications.spy_rl_trading.settings import load_settings
from unit_tests.conftest import TINY_TRAINING

runner = CliRunner()
REGIME = ["vol_ratio", "drawdown", "vix_change"]


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.unit
@pytest.mark.parametrize(("value", "expected"), [(None, False), ("true", True), ("false", False)])
def test_variable_reaches_the_feature_spec(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is not None:
        monkeypatch.setenv("SPY_REGIME_FEATURES", value)
    assert load_settings().feature_spec().regime_features is expected


@pytest.mark.unit
@pytest.mark.parametrize("command", ["train", "pipeline", "walkforward"])
def test_training_commands_take_the_flag(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "--regime-features" in result.output and "SPY_REGIME_FEATURES" in result.output


@pytest.mark.integration
def test_a_regime_bundle_trains_backtests_and_trades(tmp_path: Path) -> None:
    dirs = ["--models-dir", tmp_path / "models", "--datasets-dir", tmp_path / "datasets"]
    trained = invoke(
        "train", "--source", "sample", *TINY_TRAINING, "--regime-features", "--run-name", "regime",
        "--tensorboard-dir", tmp_path / "tb", *dirs,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output + trained.stderr
    manifest = json.loads((tmp_path / "models" / "regime" / "bundle.json").read_text())
    assert manifest["feature_spec"]["regime_features"] is True
    assert manifest["normalizer"]["columns"][-3:] == REGIME

    # neither command is told about regime features: each rebuilds the bundle's own
    backtest = invoke("backtest", "--model", "regime", "--results-dir", tmp_path / "results", *dirs)
    assert backtest.exit_code == 0, backtest.output + backtest.stderr
    (report,) = (tmp_path / "results").glob("regime__*")
    assert json.loads((report / "metrics.json").read_text())["meta"]["warnings"] == []

    paper = invoke(
        "paper", "--once", "--live-source", "sample", "--dry-run", "--logs-dir", tmp_path / "logs",
        "--metrics-port", "0", *dirs,
    )  # fmt: skip
    assert paper.exit_code == 0, paper.output + paper.stderr
    assert "session: 2018-12-31" in paper.stdout
