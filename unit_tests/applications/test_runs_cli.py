"""``spy-rl runs convert``: a bundle from before torch-free inference gets its policy arrays, and
without them (and without torch) a backtest ends in one line naming that command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import MANIFEST_FILE, POLICY_FILE, load_bundle, sha256_file
from finrl.applications.spy_rl_trading.cli import app
from unit_tests.applications.test_startup import TRAINING_ONLY, run_cli

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
