"""``spy-rl ensemble`` end to end on the session's tiny bundles (offline sample): made from two
trained models, backtested like any bundle (NAV = research's ensemble of the members' backtests),
paper-traded once with the simulated broker (the decision = the members replayed from the anchor),
without torch, and every user error one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import LATEST, MANIFEST_FILE, POLICY_FILE, load_bundle, point_latest
from finrl.agents.ensemble_bundle import EnsembleBundle, load_any_bundle
from finrl.applications.spy_rl_trading.cli import app
from finrl.backtest.engine import run_backtest
from finrl.backtest.report import REPORT_FILES
from finrl.meta.dataset import load_feature_data
from finrl.meta.preprocessing import DateWindow
from finrl.research.ensemble import ensemble_ledger
from unit_tests.applications.test_startup import TRAINING_ONLY, run_cli
from unit_tests.conftest import data_request, default_settings

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path, sample_bundles: dict[str, Path]) -> Path:
    """Copies of r1 and r2 (latest -> r1) and the sample's datasets cache."""
    models = tmp_path / "models"
    for name, path in sample_bundles.items():
        shutil.copytree(path, models / name)
    point_latest(models, models / "r1")
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", tmp_path / "datasets")
    return tmp_path


def folders(root: Path) -> list[str]:
    return ["--models-dir", str(root / "models"), "--datasets-dir", str(root / "datasets")]


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def assert_one_line(result, fragment: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.output + result.stderr


def make_ensemble(root: Path, *extra: str) -> Path:
    result = invoke(
        "ensemble", "--model", "r1", "--model", "r2", "--name", "ens", "--models-dir", root / "models", *extra
    )
    assert_ok(result)
    assert f"ensemble: {root / 'models' / 'ens'}" in result.stdout and "members:  r1, r2" in result.stdout
    return root / "models" / "ens"


def test_an_ensemble_backtests_as_research_s_ensemble_and_paper_trades_once(root: Path) -> None:
    path = make_ensemble(root, "--rule", "mean_weight")
    assert (root / "models" / LATEST).resolve() == (root / "models" / "r1").resolve()

    result = invoke("backtest", "--model", "ens", *folders(root), "--results-dir", root / "results")
    assert_ok(result)
    (report,) = sorted((root / "results").glob("ens__*"))
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    meta = json.loads((report / "metrics.json").read_text())["meta"]
    assert meta["ensemble"]["rule"] == "mean_weight"
    assert [m["model"] for m in meta["ensemble"]["members"]] == ["r1", "r2"]
    window = DateWindow.from_dict({"start": meta["test_start"], "end": meta["test_end"]})
    assert meta["test_start"] == meta["ensemble"]["anchor"]  # the default window starts at the anchor

    features = load_feature_data(
        data_request(source="sample"), root / "datasets", load_bundle("r1", path.parent).feature_spec
    ).features
    members = [
        run_backtest(load_bundle(n, path.parent), features, window, default_settings().risk_free_rate)
        for n in ("r1", "r2")
    ]
    nav = pd.read_csv(report / "nav.csv", index_col="date")["agent_nav"].to_numpy()
    np.testing.assert_allclose(nav, ensemble_ledger(members)["nav"].to_numpy(), rtol=0, atol=1e-9)

    result = invoke("paper", "--live-source", "sample", "--model", "ens", "--broker", "simulated", "--once",
                    "--metrics-port", "0", "--logs-dir", root / "logs", *folders(root))  # fmt: skip
    assert_ok(result)
    assert "session: 2018-12-31" in result.stdout
    ensemble = load_any_bundle("ens", path.parent)
    assert isinstance(ensemble, EnsembleBundle)
    expected = ensemble.decide_after(features, ensemble.env_config.execution)
    entries = [json.loads(line) for line in (root / "logs" / "journal.jsonl").read_text().splitlines()]
    (decision,) = [e for e in entries if e["event"] == "decision"]
    (members_decided,) = [e for e in entries if e["event"] == "ensemble_decision"]
    assert decision["target"] == expected.targets[-1]
    assert members_decided["members"] == dict(zip(expected.members, expected.weights[-1].tolist(), strict=True))


def test_members_that_disagree_or_repeat_end_in_one_line_and_write_nothing(root: Path) -> None:
    models = root / "models"
    shutil.copytree(models / "r2", models / "r3")
    manifest = json.loads((models / "r3" / MANIFEST_FILE).read_text())
    manifest["run_name"] = "r3"
    manifest["env_config"]["execution"]["costs"]["commission_bps"] = 5.0
    (models / "r3" / MANIFEST_FILE).write_text(json.dumps(manifest))
    before = sorted(p.name for p in models.iterdir())
    result = invoke("ensemble", "--model", "r1", "--model", "r3", "--rule", "majority", "--models-dir", models)
    assert_one_line(result, "disagree on the execution (costs.commission_bps): r1 has 1.0, r3 has 5.0")
    assert_one_line(invoke("ensemble", "--model", "r1", "--model", "r1", "--rule", "majority", "--models-dir", models),
                    "r1 is given twice")  # fmt: skip
    assert_one_line(invoke("ensemble", "--model", "r1", "--rule", "majority", "--models-dir", models), "at least 2")
    assert_one_line(invoke("ensemble", "--model", "r1", "--model", "r2", "--models-dir", models), "--rule", code=2)
    assert_one_line(invoke("ensemble", "--model", "r1", "--model", "r2", "--rule", "mean_weight", "--anchor", "soon",
                           "--models-dir", models), "--anchor 'soon' is not a date", code=2)  # fmt: skip
    named = invoke("ensemble", "--model", "r1", "--model", "r2", "--rule", "majority", "--name", "../up",
                   "--models-dir", models)  # fmt: skip
    assert_one_line(named, "'../up'", code=2)
    missing = invoke("ensemble", "--model", "r1", "--model", "nope", "--rule", "majority", "--models-dir", models)
    assert_one_line(missing, "model bundle not found: nope")
    assert sorted(p.name for p in models.iterdir()) == before


def test_a_modified_member_is_one_line_for_backtest_and_paper(root: Path) -> None:
    path = make_ensemble(root, "--rule", "majority")
    policy = path / "members" / "r2" / POLICY_FILE
    policy.write_bytes(policy.read_bytes() + b" ")
    fragment = "policy.npz does not match its recorded SHA-256"
    assert_one_line(invoke("backtest", "--model", "ens", *folders(root), "--results-dir", root / "results"), fragment)
    assert not (root / "results").exists()
    assert_one_line(invoke("paper", "--live-source", "sample", "--model", "ens", "--once", "--metrics-port", "0",
                           "--logs-dir", root / "logs", *folders(root)), fragment)  # fmt: skip
    assert_one_line(invoke("runs", "convert", "ens", "--models-dir", root / "models"), "ensemble of model bundles")


def test_an_ensemble_is_made_backtested_and_paper_traded_without_torch(root: Path) -> None:
    commands = [
        ["ensemble", "--model", "r1", "--model", "r2", "--rule", "mean_weight", "--name", "ens",
         "--models-dir", str(root / "models")],
        ["backtest", "--model", "ens", *folders(root), "--results-dir", str(root / "results")],
        ["paper", "--live-source", "sample", "--model", "ens", "--broker", "simulated", "--once", "--metrics-port", "0",
         "--logs-dir", str(root / "logs"), *folders(root)],
    ]  # fmt: skip
    for args in commands:
        code, modules, output = run_cli(args, root, blocked=TRAINING_ONLY)
        assert code == 0, output
        assert not modules & set(TRAINING_ONLY), (args[0], sorted(modules & set(TRAINING_ONLY)))
    assert len(list((root / "results").glob("ens__*/report.html"))) == 1
    assert "ensemble_decision" in (root / "logs" / "journal.jsonl").read_text()
