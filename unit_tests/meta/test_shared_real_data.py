"""The data layer on real SPY/VIX 2015-2024 (../shared/data); skipped where that folder is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.meta.data.market_data import load_market_data
from finrl.meta.features import build_features
from unit_tests.conftest import data_request, feature_spec

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]


def test_real_spy_loads_validates_and_featurises(shared_data: Path, tmp_path: Path) -> None:
    request = data_request(
        source="csv", csv_path=shared_data / "spy_daily.csv", vix_csv_path=shared_data / "vix_daily.csv"
    )
    data = load_market_data(request, tmp_path)
    assert len(data.bars) == 2516
    assert data.report.errors == [] and data.report.warnings == []
    assert f"{data.bars.index[0]:%Y-%m-%d}" == "2015-01-02" and f"{data.bars.index[-1]:%Y-%m-%d}" == "2024-12-31"
    assert data.bars.loc["2020-03-23", "close"] == 222.95  # unadjusted traded price kept for execution
    features = build_features(data.bars, feature_spec())
    assert len(features) == 2516 - feature_spec().warmup_bars
    # ex-dividend days move the raw close but not the adjusted return
    returns = features["log_return"]
    assert np.isfinite(returns).all() and returns.abs().max() < 0.12


def test_real_spy_through_the_cli(shared_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "data",
            "fetch",
            "--source",
            "csv",
            "--csv",
            str(shared_data / "spy_daily.csv"),
            "--vix-csv",
            str(shared_data / "vix_daily.csv"),
            "--datasets-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "2516 days 2015-01-02..2024-12-31" in result.stdout
    assert list(tmp_path.glob("csv-SPY-*/features.csv"))
    validate = CliRunner().invoke(app, ["data", "validate", "--csv", str(shared_data / "spy_daily.csv")])
    assert validate.exit_code == 0 and "2516 rows" in validate.stdout and "0 error(s)" in validate.stdout


@pytest.mark.slow
def test_issue_training_command_on_real_spy_is_reproducible(shared_data: Path, tmp_path: Path) -> None:
    """spy-rl train on real SPY 2015-2022, twice with --seed 1: loadable bundles with identical weights."""
    import torch

    from finrl.agents.bundle import load_bundle

    weights = []
    for run in ("a", "b"):
        result = CliRunner().invoke(
            app,
            ["train", "--data-source", "csv", "--csv", str(shared_data / "spy_daily.csv"),
             "--vix-csv", str(shared_data / "vix_daily.csv"), "--train-start", "2015-01-01",
             "--train-end", "2022-12-31", "--timesteps", "8192", "--seed", "1", "--run-name", run,
             "--models-dir", str(tmp_path / "models"), "--tensorboard-dir", str(tmp_path / "tb"),
             "--datasets-dir", str(tmp_path / "ds")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        bundle = load_bundle(run, tmp_path / "models")
        assert bundle.split.train.start.isoformat() == "2015-01-01"
        weights.append(bundle.load_model().policy.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert len(list((tmp_path / "tb").iterdir())) == 2
