"""``spy-rl runs``: ``convert`` gives a bundle from before torch-free inference its policy arrays (without
them, and without torch, a backtest ends in one line naming that command); ``list``, ``show`` and
``compare`` read the models folder and the backtest reports, never importing torch."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import MANIFEST_FILE, POLICY_FILE, load_bundle, point_latest, sha256_file
from finrl.applications.spy_rl_trading.cli import app
from unit_tests.applications.test_startup import TRAINING_ONLY, run_cli
from unit_tests.conftest import isolated_env

pytestmark = pytest.mark.integration


def legacy_models(sample_bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A models folder holding r1 as written before ``policy.npz`` existed."""
    models = tmp_path / "models"
    shutil.copytree(sample_bundles["r1"], models / "r1")
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", tmp_path / "datasets")
    (models / "r1" / POLICY_FILE).unlink()
    manifest = json.loads((models / "r1" / MANIFEST_FILE).read_text())
    del manifest["files"][POLICY_FILE]
    (models / "r1" / MANIFEST_FILE).write_text(json.dumps(manifest))
    return models


def test_convert_writes_hashed_policy_arrays_once(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    models = legacy_models(sample_bundles, tmp_path)
    first = CliRunner().invoke(app, ["runs", "convert", "r1", "--models-dir", str(models)])
    assert first.exit_code == 0, first.output
    assert f"wrote {POLICY_FILE}" in first.output
    bundle = load_bundle("r1", models)
    assert bundle.manifest.files[POLICY_FILE] == sha256_file(models / "r1" / POLICY_FILE)
    assert (models / "r1" / POLICY_FILE).read_bytes() == (sample_bundles["r1"] / POLICY_FILE).read_bytes()
    again = CliRunner().invoke(app, ["runs", "convert", "r1", "--models-dir", str(models)])
    assert again.exit_code == 0 and "already has" in again.output


def test_legacy_bundle_without_torch_names_the_convert_command(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    models = legacy_models(sample_bundles, tmp_path)
    args = ["backtest", "--models-dir", str(models), "--model", "r1", "--datasets-dir", str(tmp_path / "datasets"),
            "--results-dir", str(tmp_path / "results")]  # fmt: skip
    code, _, output = run_cli(args, tmp_path, blocked=TRAINING_ONLY)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, output
    assert "predates torch-free inference" in errors[0] and "spy-rl runs convert" in errors[0]
    assert not (tmp_path / "results").exists()  # nothing half-written


# ---------------------------------------------------------------- runs list / show / compare

KEPT_SHARPE, LAST_SHARPE = 0.612, -0.215  # the kept model's validation Sharpe, and the last evaluation's


@pytest.fixture(scope="module")
def catalog(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """r1 and r2 (r1's manifest says validation kept the best of several evaluations), an ensemble of both
    never backtested, a corrupt bundle, an interrupted run; r1 backtested twice (the later on another
    window), r2 once."""
    root = tmp_path_factory.mktemp("catalog")
    models, results, datasets = root / "models", root / "results", root / "datasets"
    for name in ("r1", "r2"):
        shutil.copytree(sample_bundles[name], models / name)
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", datasets)
    manifest = json.loads((models / "r1" / MANIFEST_FILE).read_text())
    manifest["training"] |= {
        "model_choice": "best_validation_sharpe", "best_validation_sharpe": KEPT_SHARPE,
        "best_validation_timesteps": 512,
        "validation_history": [{"timesteps": 512.0, "sharpe": KEPT_SHARPE, "total_return": 0.03, "exposure": 0.5},
                               {"timesteps": 1024.0, "sharpe": LAST_SHARPE, "total_return": -0.01, "exposure": 0.9}],
    }  # fmt: skip
    (models / "r1" / MANIFEST_FILE).write_text(json.dumps(manifest))
    folders = ["--models-dir", str(models), "--results-dir", str(results), "--datasets-dir", str(datasets)]
    commands = [
        ["ensemble", "--model", "r1", "--model", "r2", "--rule", "mean_weight", "--name", "ens", "--models-dir",
         str(models)],
        ["backtest", "--model", "r1", "--model", "r2", *folders],
        ["backtest", "--model", "r1", "--test-start", "2018-06-01", *folders],
    ]  # fmt: skip
    for args in commands:
        result = CliRunner().invoke(app, args, env=isolated_env(root))  # before the per-test isolation
        assert result.exit_code == 0, result.output
    (models / "broken").mkdir()
    (models / "broken" / MANIFEST_FILE).write_text("{not json")
    os.utime(models / "broken", (1e9, 1e9))  # 2001: the oldest entry
    (models / "r3.interrupted" / "checkpoints").mkdir(parents=True)
    (models / ".staging-r4-x").mkdir()
    point_latest(models, models / "r2")
    return {"root": root, "models": models, "results": results}


def invoke(args: list[str], catalog: dict[str, Path]) -> Any:
    flags = ["--models-dir", str(catalog["models"]), "--results-dir", str(catalog["results"])]
    return CliRunner().invoke(app, [*args, *flags], env={"COLUMNS": "80"})


def test_list_shows_each_run_newest_first_with_the_kept_models_validation_sharpe_and_last_test(
    catalog: dict[str, Path],
) -> None:
    listed = invoke(["runs", "list", "--json"], catalog)
    assert listed.exit_code == 0, listed.output
    runs = {run["name"]: run for run in json.loads(listed.stdout)}
    assert list(runs) == ["ens", "r2", "r1", "broken"]  # no latest, staging or interrupted folder
    r1 = runs["r1"]
    assert r1["validation_sharpe"] == KEPT_SHARPE and r1["seed"] == 1 and r1["data_source"] == "sample SPY"
    assert r1["kind"] == "model" and r1["backtests"] == 2
    last = r1["last_backtest"]
    assert last["test"]["start"] == "2018-06-01"  # the report written last
    metrics = json.loads((Path(last["path"]) / "metrics.json").read_text())
    assert last["agent"]["sharpe"] == metrics["agent"]["sharpe"]
    assert last["buy_and_hold"]["sharpe"] == metrics["buy_and_hold"]["sharpe"]
    assert runs["r2"]["validation_sharpe"] is None  # trained without validation
    assert [name for name, run in runs.items() if run["latest"]] == ["r2"]
    assert runs["ens"]["kind"] == "ensemble" and runs["ens"]["last_backtest"] is None
    assert [m["seed"] for m in runs["ens"]["members"]] == [1, 2]
    assert runs["broken"]["problem"].startswith("corrupt bundle.json")

    table = invoke(["runs", "list"], catalog)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    notes = [line for line in lines if line.startswith(("broken: ", "interrupted"))]  # prose: the terminal wraps it
    assert max(len(line) for line in lines if line not in notes) <= 80, table.stdout
    for name in ("ens (ensemble)", "r1 ", "r2 (latest)", "broken "):
        assert any(line.startswith(name) for line in lines), name
    assert f"{KEPT_SHARPE:.3f}" in table.stdout and f"{LAST_SHARPE:.3f}" not in table.stdout
    assert "broken: unreadable: corrupt bundle.json" in table.stdout
    assert "r3.interrupted" in table.stdout and "r4" not in table.stdout


def test_reports_follow_the_run_name_in_the_manifest_not_the_folder_name(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A copied bundle folder keeps its manifest's run name, which its backtests record: the copy's
    reports are found under it, and a run whose name extends another's (r1b) never takes r1's."""
    models, results = tmp_path / "models", tmp_path / "results"
    shutil.copytree(sample_bundles["r1"], models / "r1")
    shutil.copytree(sample_bundles["r1"], models / "copy-of-r1")
    shutil.copytree(sample_bundles["r2"], models / "r1b")
    manifest = json.loads((models / "r1b" / MANIFEST_FILE).read_text())
    (models / "r1b" / MANIFEST_FILE).write_text(json.dumps(manifest | {"run_name": "r1b"}))
    datasets = sample_bundles["r1"].parent.parent / "datasets"
    folders = ["--models-dir", str(models), "--results-dir", str(results), "--datasets-dir", str(datasets)]
    backtest = CliRunner().invoke(app, ["backtest", "--model", "copy-of-r1", "--test-start", "2018-06-01", *folders])
    assert backtest.exit_code == 0, backtest.output
    listed = CliRunner().invoke(app, ["runs", "list", "--json", *folders[:4]])
    runs = {run["name"]: run for run in json.loads(listed.stdout)}
    assert runs["copy-of-r1"]["last_backtest"]["test"]["start"] == "2018-06-01"
    assert runs["r1"]["last_backtest"]["test"]["start"] == "2018-06-01"  # the same run (r1), the same report
    assert runs["r1b"]["last_backtest"] is None


def test_compare_says_when_backtests_ran_on_other_terms(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """The same window, but another risk-free rate and other costs: the Sharpe ratios and buy-and-hold
    do not line up, and compare says both."""
    models, results = tmp_path / "models", tmp_path / "results"
    for name in ("r1", "r2"):
        shutil.copytree(sample_bundles[name], models / name)
    datasets = sample_bundles["r1"].parent.parent / "datasets"
    folders = ["--models-dir", str(models), "--results-dir", str(results), "--datasets-dir", str(datasets)]
    for args in (["--model", "r1"], ["--model", "r2", "--risk-free-rate", "0.03", "--commission-bps", "25"]):
        result = CliRunner().invoke(app, ["backtest", *args, *folders])
        assert result.exit_code == 0, result.output
    compared = CliRunner().invoke(app, ["runs", "compare", "r1", "r2", *folders[:4]], env={"COLUMNS": "200"})
    assert compared.exit_code == 0, compared.output
    assert "different risk-free rates (r1 0.00%; r2 3.00%)" in compared.output
    assert "buy-and-hold differs between the backtests on" in compared.output
    assert "different test windows" not in compared.output


def test_list_of_an_empty_or_missing_models_folder_says_how_to_train(tmp_path: Path) -> None:
    args = ["runs", "list", "--models-dir", str(tmp_path / "none"), "--results-dir", str(tmp_path / "results")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "no runs in" in result.stdout and "spy-rl train" in result.stdout
    assert json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout) == []


def test_show_tells_everything_about_one_run(catalog: dict[str, Path]) -> None:
    shown = invoke(["runs", "show", "r1"], catalog)
    assert shown.exit_code == 0, shown.output
    manifest = json.loads((catalog["models"] / "r1" / MANIFEST_FILE).read_text())
    for text in (manifest["data"]["fingerprint"], "learning_rate=", "action space:", "reward:", "commission",
                 "features:", f"Sharpe {KEPT_SHARPE:.3f}", "the best on validation, at 512 timesteps (of 2",
                 f"tensorboard:  {manifest['training']['tensorboard_run']}", "backtests (2, newest first)",
                 "r1__2018-06-01_2018-12-31/report.html"):  # fmt: skip
        assert text in shown.stdout, text
    assert shown.stdout.index("2018-06-01..2018-12-31:") < shown.stdout.index("report.html")
    details = json.loads(invoke(["runs", "show", "r1", "--json"], catalog).stdout)
    assert details["backtests"][0]["test"]["start"] == "2018-06-01"
    assert details["data"]["fingerprint"] == manifest["data"]["fingerprint"]
    assert details["ppo"] == manifest["ppo_config"]
    latest = json.loads(invoke(["runs", "show", "latest", "--json"], catalog).stdout)
    assert latest["name"] == "r2"


def test_show_of_a_missing_run_lists_the_runs_there(catalog: dict[str, Path]) -> None:
    result = invoke(["runs", "show", "nope"], catalog)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "nope" in errors[0] and "r1" in errors[0] and "r2" in errors[0]


def test_compare_prints_one_table_and_writes_an_offline_page(catalog: dict[str, Path]) -> None:
    result = invoke(["runs", "compare", "r1", "r2", "ens"], catalog)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ens: not backtested — run spy-rl backtest --model ens" in out
    assert "different test windows" in out and "r1 2018-06-01..2018-12-31" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith(("warning:", "page:"))) <= 80
    digest = hashlib.sha256(b"ens\nr1\nr2").hexdigest()[:12]  # of the sorted names
    page = catalog["results"] / f"compare__{digest}" / "compare.html"
    assert f"page: {page}" in out
    text = page.read_text()
    assert text.count("plotly.js v") == 1 and not re.search(r"<script[^>]*\bsrc=", text)  # embedded once, offline
    traces = re.findall(r'"name":"([^"]+)"', text)
    assert {"r1", "r2"} <= set(traces) and "ens" not in traces  # an untested run is left out of the chart
    assert sum(t.startswith("buy and hold") for t in traces) == 2  # one per test window
    assert "not backtested" in text and "different test windows" in text
    (r2_report,) = catalog["results"].glob("r2__*/metrics.json")
    metrics = json.loads(r2_report.read_text())
    for strategy in ("agent", "buy_and_hold"):  # the page's table: the numbers of the reports
        assert f"<td>{metrics[strategy]['total_return']:.2%}</td>" in text
        assert f"<td>{metrics[strategy]['sharpe']:.3f}</td>" in text
    before = page.read_bytes()
    again = invoke(["runs", "compare", "r1", "r2", "ens"], catalog)
    assert again.exit_code == 0 and page.read_bytes() == before  # the same path, the same bytes


def test_compare_needs_two_distinct_runs(catalog: dict[str, Path], tmp_path: Path) -> None:
    for args in (["r1"], ["r1", "r1"]):
        result = invoke(["runs", "compare", *args, "--output", str(tmp_path / "c.html")], catalog)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1, result.output
    assert not (tmp_path / "c.html").exists()


def test_compare_writes_where_asked(catalog: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "pages" / "seeds.html"
    result = invoke(["runs", "compare", "r1", "r2", "--output", str(target)], catalog)
    assert result.exit_code == 0, result.output
    assert target.is_file() and f"page: {target}" in result.stdout
    assert [p.name for p in target.parent.iterdir()] == ["seeds.html"]  # no temporary file left


@pytest.mark.parametrize(
    ("args", "needs"), [(["list"], ()), (["show", "r1"], ()), (["compare", "r1", "r2"], ("plotly",))],
    ids=["list", "show", "compare"],
)  # fmt: skip
def test_runs_commands_never_import_torch(
    catalog: dict[str, Path], tmp_path: Path, args: list[str], needs: tuple[str, ...]
) -> None:
    flags = ["--models-dir", str(catalog["models"]), "--results-dir", str(catalog["results"])]
    if args[0] == "compare":
        flags += ["--output", str(tmp_path / "c.html")]
    code, modules, output = run_cli(["runs", *args, *flags], tmp_path, blocked=TRAINING_ONLY)
    assert code == 0, output
    assert not modules & {*TRAINING_ONLY, "plotly"} - set(needs), sorted(modules)


def test_kept_validation_sharpe_of_every_kind_of_manifest() -> None:
    from finrl.runs.catalog import kept_validation_sharpe

    history = [{"sharpe": 0.5}, {"sharpe": -0.2}]
    assert kept_validation_sharpe({"kept_validation": {"sharpe": 0.7}, "validation_history": history}) == 0.7
    assert kept_validation_sharpe({"model_choice": "best_validation_sharpe", "best_validation_sharpe": 0.5}) == 0.5
    assert kept_validation_sharpe({"model_choice": "final", "validation_history": history}) == -0.2
    assert kept_validation_sharpe({"model_choice": "final", "validation_history": []}) is None
    assert kept_validation_sharpe({"model_choice": "best_validation_sharpe", "best_validation_sharpe": None}) is None
