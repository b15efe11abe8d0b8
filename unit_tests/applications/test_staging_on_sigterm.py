"""SIGTERM (``docker stop``, Kubernetes) while bundles are being assembled: the command exits 143 in one
line and leaves neither the bundle nor its hidden staging folder behind (SIGTERM's default action
would end the process without the cleanup that a failure runs)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finrl.agents import ensemble_bundle
from finrl.agents.bundle import StoppedError, sigterm_raises
from finrl.applications.spy_rl_trading.cli import app


@pytest.mark.unit
def test_sigterm_raises_inside_and_keeps_its_old_action_outside() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StoppedError, match="stopped by SIGTERM: nothing was published"), sigterm_raises():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
    assert StoppedError.exit_code == 143


@pytest.mark.integration
def test_spy_rl_ensemble_stopped_while_copying_members_leaves_nothing(
    tmp_path: Path, sample_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    for name, path in sample_bundles.items():
        shutil.copytree(path, models / name)
    copy = ensemble_bundle._copy_member

    def stopped_at_the_second_member(member: Any, target: Path) -> None:
        if target.name == "r2":
            signal.raise_signal(signal.SIGTERM)
        copy(member, target)

    monkeypatch.setattr(ensemble_bundle, "_copy_member", stopped_at_the_second_member)
    args = ["ensemble", "--model", "r1", "--model", "r2", "--rule", "mean_weight", "--name", "ens", "--models-dir"]
    result = CliRunner().invoke(app, [*args, str(models)])
    assert result.exit_code == 143, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: stopped by SIGTERM: nothing was published"
    ]
    assert sorted(p.name for p in models.iterdir()) == ["r1", "r2"]  # no ens, no hidden staging
