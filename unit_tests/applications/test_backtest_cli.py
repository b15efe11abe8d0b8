"""``spy-rl backtest`` and ``spy-rl pipeline`` end to end on the offline sample (tiny bundles), the
example entry module as a subprocess, and one run on the real SPY data of ../shared/data."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import LATEST, MANIFEST_FILE, point_latest
from finrl.applications.spy_rl_trading.cli import app
from finrl.backtest.report import REPORT_FILES
from finrl.performance import METRIC_NAMES
from unit_tests.conftest import REPO_ROOT, TINY_TRAINING

pytestmark = pytest.mark.integration
runner = CliRunner()

TINY = list(TINY_TRAINING)
STRATEGIES = ("agent", "buy_and_hold", "flat", "sma_crossover")


def invoke(*args: str, env: dict[str, str | None] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def assert_one_line_failure(result, fragment: str, code: int = 1) -> str:
    assert result.exit_code == code, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output + result.stderr
    return errors[0]


@pytest.fixture
def dirs(tmp_path: Path, sample_bundles: dict[str, Path]) -> dict[str, Path]:
    """This test's own models folder (copies of r1 and r2, latest -> r1), results and datasets folders."""
    models = tmp_path / "models"
    for name, path in sample_bundles.items():
        shutil.copytree(path, models / name)
    point_latest(models, models / "r1")
    return {"models": models, "results": tmp_path / "results", "datasets": tmp_path / "datasets"}


def folder_args(dirs: dict[str, Path]) -> list[Path | str]:
    return ["--models-dir", dirs["models"], "--results-dir", dirs["results"], "--datasets-dir", dirs["datasets"]]


def reports(results: Path, run_name: str) -> list[Path]:
    return sorted(results.glob(f"{run_name}__*"))


def independent_check(report: Path) -> dict:
    """metrics.json's Sharpe and max drawdown against NumPy on nav.csv (10 significant digits)."""
    document = json.loads((report / "metrics.json").read_text())
    nav = pd.read_csv(report / "nav.csv")
    for name in ("agent", "buy_and_hold", "sma_crossover"):
        values = nav[f"{name}_nav"].to_numpy(dtype=float)
        r = values[1:] / values[:-1] - 1
        sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252) if r.std() > 0 else 0.0
        max_dd = float(np.min(values / np.maximum.accumulate(values) - 1))
        assert document[name]["sharpe"] == pytest.approx(sharpe, rel=2e-8, abs=1e-9), name
        assert document[name]["max_drawdown"] == pytest.approx(max_dd, rel=1e-8, abs=2e-9), name
    return document


# ------------------------------------------------------------------ backtest


def test_backtest_a_bundle_folder(dirs: dict[str, Path]) -> None:
    result = invoke("backtest", "--model", dirs["models"] / "r1", *folder_args(dirs))
    assert_ok(result)
    (report,) = reports(dirs["results"], "r1")
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    for name in STRATEGIES:
        assert name in result.stdout
    assert "total_return" in result.stdout and "sharpe" in result.stdout
    assert f"report: {report}" in result.stdout
    document = independent_check(report)
    assert set(document) == {*STRATEGIES, "meta"}
    assert all(set(document[name]) == set(METRIC_NAMES) for name in STRATEGIES)
    # the default window: the days after the training window recorded in the bundle
    manifest = json.loads((dirs["models"] / "r1" / MANIFEST_FILE).read_text())
    train_end = pd.Timestamp(manifest["split"]["train"]["end"])
    assert pd.Timestamp(document["meta"]["test_start"]) > train_end
    assert document["meta"]["test_end"] == "2018-12-31"  # the sample's last day
    assert document["meta"]["warnings"] == []
    assert report.name == f"r1__{document['meta']['test_start']}_{document['meta']['test_end']}"


def test_backtest_defaults_to_latest(dirs: dict[str, Path]) -> None:
    result = invoke("backtest", *folder_args(dirs))
    assert_ok(result)
    assert len(reports(dirs["results"], "r1")) == 1 and reports(dirs["results"], "r2") == []
    assert "r1:" in result.stdout


def check_summary(results: Path) -> dict:
    (summary_dir,) = sorted(results.glob("multi-2-models__*"))
    document = json.loads((summary_dir / "summary.json").read_text())
    assert document["models"] == ["r1", "r2"]
    per_model = {
        name: json.loads((Path(path) / "metrics.json").read_text()) for name, path in document["reports"].items()
    }
    assert set(per_model) == {"r1", "r2"}
    for metric in METRIC_NAMES:
        values = np.array([per_model[m]["agent"][metric] for m in ("r1", "r2")], dtype=float)
        stats = document["agent"][metric]
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15), metric
        assert stats["std"] == pytest.approx(values.std(ddof=1), rel=1e-12, abs=1e-15), metric
        assert stats["min"] == values.min() and stats["max"] == values.max()
    assert document["buy_and_hold"]["sharpe"]["std"] == 0.0  # the same baseline for both models
    return document


def test_two_models_write_a_multi_seed_summary(dirs: dict[str, Path]) -> None:
    result = invoke("backtest", "--model", "r1", "--model", "r2", *folder_args(dirs))
    assert_ok(result)
    assert len(reports(dirs["results"], "r1")) == 1 and len(reports(dirs["results"], "r2")) == 1
    document = check_summary(dirs["results"])
    assert document["per_model"]["r1"]["agent"] != document["per_model"]["r2"]["agent"]  # seeds differ
    assert "2 models" in result.stdout and "summary:" in result.stdout


def test_a_folder_of_bundles_expands_to_all(dirs: dict[str, Path], tmp_path: Path) -> None:
    """Every trained model in the folder; not an ensemble of them (tune best writes one alongside), not staging."""
    from finrl.agents.ensemble_bundle import create_ensemble

    sweep = tmp_path / "sweep"
    for name in ("r1", "r2"):
        shutil.copytree(dirs["models"] / name, sweep / name)
    create_ensemble(["r1", "r2"], sweep, rule="mean_weight", rebalance_band=0.02, name="r1-r2")
    shutil.copytree(dirs["models"] / "r1", sweep / ".staging-r3")
    result = invoke("backtest", "--model", sweep, *folder_args(dirs))
    assert_ok(result)
    assert len(reports(dirs["results"], "r1")) == 1 and len(reports(dirs["results"], "r2")) == 1
    check_summary(dirs["results"])


def test_missing_latest_says_to_train(tmp_path: Path) -> None:
    result = invoke("backtest", "--models-dir", tmp_path / "empty", "--results-dir", tmp_path / "results",
                    "--datasets-dir", tmp_path / "datasets")  # fmt: skip
    assert_one_line_failure(result, "spy-rl train")
    assert not (tmp_path / "results").exists()


def test_missing_named_bundle(dirs: dict[str, Path]) -> None:
    line = assert_one_line_failure(invoke("backtest", "--model", "nope", *folder_args(dirs)), "model bundle not found")
    assert "nope" in line


def test_corrupt_manifest_is_one_line(dirs: dict[str, Path]) -> None:
    (dirs["models"] / "r1" / MANIFEST_FILE).write_text('{"format": 1, "run_name": ')
    assert_one_line_failure(invoke("backtest", "--model", "r1", *folder_args(dirs)), "corrupt")
    assert not dirs["results"].exists()


def test_no_vix_against_a_vix_bundle_is_a_schema_mismatch(dirs: dict[str, Path]) -> None:
    result = invoke("backtest", "--model", "r1", "--no-vix", *folder_args(dirs))
    assert_one_line_failure(result, "feature schema mismatch")


def test_no_vix_against_a_vix_bundle_fails_in_one_line(dirs: dict[str, Path]) -> None:
    """Whatever the message, the refusal itself holds: exit 1, one line, no report."""
    result = invoke("backtest", "--model", "r1", "--no-vix", *folder_args(dirs))
    assert_one_line_failure(result, "vix")
    assert not dirs["results"].exists()


@pytest.mark.parametrize(
    ("window", "fragment", "code"),
    [
        (["--test-start", "2030-01-02", "--test-end", "2030-06-30"], "holds no trading days", 1),
        (["--test-start", "2001-01-02", "--test-end", "2001-06-29"], "holds no trading days", 1),
        (["--test-start", "2030-01-02"], "starts after it ends", 1),
        # two dates given in the wrong order: a settings error, refused before any data is read
        (
            ["--test-start", "2018-06-01", "--test-end", "2018-01-02"],
            "--test-start 2018-06-01 is after --test-end 2018-01-02",
            2,
        ),
    ],
)
def test_test_window_outside_the_data_is_one_line(
    dirs: dict[str, Path], window: list[str], fragment: str, code: int
) -> None:
    result = invoke("backtest", "--model", "r1", *window, *folder_args(dirs))
    assert_one_line_failure(result, fragment, code)
    assert not dirs["results"].exists()


def test_explicit_test_window_inside_training_warns_of_leakage(dirs: dict[str, Path]) -> None:
    result = invoke("backtest", "--model", "r1", "--test-start", "2016-01-04", "--test-end", "2016-06-30",
                    *folder_args(dirs))  # fmt: skip
    assert_ok(result)
    assert "DATA LEAKAGE" in result.stdout
    (report,) = reports(dirs["results"], "r1")
    assert report.name == "r1__2016-01-04_2016-06-30"
    meta = json.loads((report / "metrics.json").read_text())["meta"]
    assert any("DATA LEAKAGE" in w for w in meta["warnings"])
    assert "DATA LEAKAGE" in (report / "report.html").read_text()


# ------------------------------------------------------------------ pipeline and the example module


@pytest.mark.slow
def test_pipeline_trains_and_backtests_the_sample(tmp_path: Path) -> None:
    result = invoke(
        "pipeline", "--source", "sample", *TINY, "--run-name", "pipe",
        "--models-dir", tmp_path / "models", "--results-dir", tmp_path / "results",
        "--datasets-dir", tmp_path / "datasets", "--tensorboard-dir", tmp_path / "tb",
    )  # fmt: skip
    assert_ok(result)
    assert (tmp_path / "models" / "pipe" / MANIFEST_FILE).is_file()
    assert (tmp_path / "models" / LATEST).readlink() == Path("pipe")
    (report,) = reports(tmp_path / "results", "pipe")
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    assert "model:" in result.stdout and "agent" in result.stdout and "buy_and_hold" in result.stdout
    document = independent_check(report)
    manifest = json.loads((tmp_path / "models" / "pipe" / MANIFEST_FILE).read_text())
    assert pd.Timestamp(document["meta"]["test_start"]) > pd.Timestamp(manifest["split"]["train"]["end"])
    assert document["meta"]["warnings"] == []


@pytest.mark.slow
def test_example_backtesting_module_as_a_subprocess(dirs: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "finrl.applications.spy_rl_trading.example_backtesting",
         "--model", str(dirs["models"] / "r2"), *map(str, folder_args(dirs))],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert "agent" in completed.stdout and "buy_and_hold" in completed.stdout
    (report,) = reports(dirs["results"], "r2")
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    assert list(work.iterdir()) == []  # nothing written to the working directory


# ------------------------------------------------------------------ real SPY data


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_spy_train_then_backtest_the_default_window(shared_data: Path, tmp_path: Path) -> None:
    data = ["--source", "csv", "--csv", shared_data / "spy_daily.csv", "--vix-csv", shared_data / "vix_daily.csv",
            "--datasets-dir", tmp_path / "datasets"]  # fmt: skip
    trained = invoke(
        "train", *data, *TINY, "--train-start", "2015-01-01", "--train-end", "2022-12-31", "--run-name", "real",
        "--models-dir", tmp_path / "models", "--tensorboard-dir", tmp_path / "tb",
    )  # fmt: skip
    assert_ok(trained)
    # the data source, CSV files and VIX come from the bundle's recorded settings
    folders = ["--models-dir", tmp_path / "models", "--results-dir", tmp_path / "results"]
    result = invoke("backtest", *folders, "--datasets-dir", tmp_path / "datasets")
    assert_ok(result)
    (report,) = reports(tmp_path / "results", "real")
    assert report.name == "real__2023-01-03_2024-12-31"
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    document = independent_check(report)
    meta = document["meta"]
    assert meta["test_start"] == "2023-01-03" and meta["test_end"] == "2024-12-31"
    assert meta["days"] == 250 + 252 and meta["warnings"] == []
    assert meta["train_window"]["end"] == "2022-12-31"
    nav = pd.read_csv(report / "nav.csv", parse_dates=["date"])
    assert f"{nav['date'].iloc[0]:%Y-%m-%d}" == "2023-01-03" and f"{nav['date'].iloc[-1]:%Y-%m-%d}" == "2024-12-31"
    assert nav.loc[nav["date"] == "2024-12-31", "price"].item() == 586.08
    # SPY rose in 2023-2024: buy-and-hold made money
    assert document["buy_and_hold"]["total_return"] > 0.3 and document["buy_and_hold"]["n_trades"] == 1


# ------------------------------------------------------------------ costs


def recorded_execution(bundle: Path) -> dict:
    execution: dict = json.loads((bundle / MANIFEST_FILE).read_text())["env_config"]["execution"]
    return execution


def test_cost_flags_override_only_what_is_given(dirs: dict[str, Path]) -> None:
    recorded = recorded_execution(dirs["models"] / "r1")
    assert_ok(invoke("backtest", "--model", "r1", *folder_args(dirs)))
    (report,) = reports(dirs["results"], "r1")
    document = json.loads((report / "metrics.json").read_text())
    assert document["meta"]["execution"]["execution"] == recorded  # no flags: the bundle's own costs
    shutil.rmtree(dirs["results"])

    flags = ("--commission-bps", "7", "--impact-coef", "2.5", "--finra-taf-max", "3", "--fill-at", "next_close")
    assert_ok(invoke("backtest", "--model", "r1", *flags, *folder_args(dirs)))
    (report,) = reports(dirs["results"], "r1")
    document = json.loads((report / "metrics.json").read_text())
    execution = document["meta"]["execution"]["execution"]
    expected_costs = {**recorded["costs"], "commission_bps": 7.0, "impact_coef": 2.5, "finra_taf_max": 3.0}
    assert execution == {**recorded, "costs": expected_costs, "fill_at": "next_close"}
    # one trades.csv column and one metric per component; total_costs is their sum
    trades = pd.read_csv(report / "trades.csv")
    components = ("commission", "spread", "slippage", "impact", "sec_fee", "taf")
    np.testing.assert_allclose(trades[list(components)].sum(axis=1), trades["costs"], rtol=1e-12)
    for name in STRATEGIES:
        metrics = document[name]
        total = sum(metrics[f"costs_{c}"] for c in components)
        assert total == pytest.approx(metrics["total_costs"], rel=1e-9, abs=1e-9), name
    agent = document["agent"]
    if agent["n_trades"]:
        assert agent["costs_commission"] > 0 and agent["costs_impact"] > 0


def test_an_old_bundle_backtests_without_fees_or_impact(dirs: dict[str, Path]) -> None:
    """A bundle written before the fees and the impact existed keeps its meaning: those components are 0."""
    manifest_path = dirs["models"] / "r1" / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["env_config"]["version"] = 2
    for name in ("sec_fee_per_million", "finra_taf_per_share", "finra_taf_max", "impact_coef"):
        del manifest["env_config"]["execution"]["costs"][name]
    manifest_path.write_text(json.dumps(manifest))
    assert_ok(invoke("backtest", "--model", "r1", *folder_args(dirs)))
    (report,) = reports(dirs["results"], "r1")
    document = json.loads((report / "metrics.json").read_text())
    costs = document["meta"]["execution"]["execution"]["costs"]
    assert [costs[n] for n in ("sec_fee_per_million", "finra_taf_per_share", "finra_taf_max", "impact_coef")] == [0] * 4
    for name in STRATEGIES:
        assert document[name]["costs_sec_fee"] == document[name]["costs_taf"] == document[name]["costs_impact"] == 0
    assert document["buy_and_hold"]["costs_commission"] > 0
