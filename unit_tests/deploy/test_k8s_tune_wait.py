"""The init containers' wait script of k8s/tune (the ConfigMap finrl-tune-wait), run as the Jobs run it,
against a real study on SQLite: it waits while the database does not answer, while the study is not
defined (before tune init) and while it has fewer than TUNE_N_TRIALS finished trials, and never shows a
traceback or a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.deploy.conftest import K8S_DIR
from unit_tests.deploy.test_k8s_tune import of_kind
from unit_tests.research.tune_study import folders, init_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait(script: Path, stage: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), stage, "once"], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_wait_script_waits_for_the_database_the_study_and_its_trials(tmp_path: Path) -> None:
    script = tmp_path / "wait_for_study.py"
    script.write_text(of_kind("ConfigMap")["finrl-tune-wait"]["data"]["wait_for_study.py"])
    storage = f"sqlite:///{tmp_path}/studies/spy.db"
    secrets = tmp_path / "secrets"  # no /run/secrets of the machine running the tests
    secrets.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "TUNE_"))}
    env.update({"SPY_TUNE_STORAGE": storage, "SPY_SECRETS_DIR": str(secrets), "TUNE_STUDY": "waited",
                "TUNE_N_TRIALS": "1", "PYTHONPATH": str(K8S_DIR.parent)})  # fmt: skip

    nowhere = {**env, "SPY_TUNE_STORAGE": "postgresql+psycopg://finrl@127.0.0.1:1/x",
               "SPY_TUNE_STORAGE_PASSWORD": "pw-x"}  # fmt: skip
    missing = wait(script, "database", nowhere, tmp_path)
    assert missing.returncode == 1 and "waiting for database" in missing.stdout, missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr and "pw-x" not in missing.stdout + missing.stderr
    before = wait(script, "defined", env, tmp_path)
    assert before.returncode == 1 and "waiting for defined" in before.stdout, before.stdout + before.stderr

    runner = CliRunner()
    created = runner.invoke(app, init_args(tmp_path, "waited", storage), catch_exceptions=False)
    assert created.exit_code == 0, created.output
    for stage in ("database", "defined"):
        ready = wait(script, stage, env, tmp_path)
        assert ready.returncode == 0 and f"ready: {stage}" in ready.stdout, ready.stdout + ready.stderr
    pending = wait(script, "done", env, tmp_path)
    assert pending.returncode == 1 and "0 of 1 trials finished" in pending.stdout, pending.stdout + pending.stderr

    ran = runner.invoke(app, ["tune", "run", "--study", "waited", "--storage", storage, "--n-trials", "1",
                              *folders(tmp_path)], catch_exceptions=False)  # fmt: skip
    assert ran.exit_code == 0, ran.output
    done = wait(script, "done", env, tmp_path)
    assert done.returncode == 0 and "ready: done" in done.stdout, done.stdout + done.stderr
