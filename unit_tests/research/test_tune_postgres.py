"""``spy-rl tune`` against a real PostgreSQL server with real worker processes: several workers form
one study (exactly N trials, no number twice, the best parameters reload), a worker killed with
SIGKILL mid-trial leaves its trial FAIL after the grace period and the trial runs again elsewhere,
and SIGTERM fails the trial in progress cleanly and exits 143. The password reaches the workers
as a secret file, never in the URL."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.research.postgres_server import PostgresServer, postgres_server
from unit_tests.research.tune_study import init_args, worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE = 10  # seconds without a heartbeat before a trial counts as dead (heartbeats every second)
TIMEOUT = 300  # seconds a worker may take: far above what these studies need


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


@pytest.fixture
def env(server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Storage settings as a deployment passes them: timings in the environment, the password as a secret file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tune_storage_password").write_text(server.password + "\n")
    settings = {"SPY_SECRETS_DIR": str(secrets), "SPY_TUNE_HEARTBEAT_INTERVAL": "1",
                "SPY_TUNE_GRACE_PERIOD": str(GRACE), "SPY_LOG_JSON": "true"}  # fmt: skip
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def init_study(root: Path, study: str, server: PostgresServer, *, timesteps: int = 256) -> None:
    outcome = CliRunner().invoke(app, init_args(root, study, server.url, timesteps=timesteps), catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output + outcome.stderr
    assert server.password not in outcome.output + outcome.stderr


def load(server: PostgresServer, study: str) -> optuna.Study:
    url = server.url.replace("finrl@", f"finrl:{server.password}@")
    return optuna.load_study(study_name=study, storage=url)


def states(study: optuna.Study) -> Counter[str]:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds}s for {what}"
        time.sleep(0.2)


def running_trial_of(study: optuna.Study, index: str) -> optuna.trial.FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == f"index-{index}":
            return trial
    return None


def test_three_workers_share_one_study_and_finish_exactly_n_trials(
    server: PostgresServer, env: dict[str, str], tmp_path: Path
) -> None:
    init_study(tmp_path, "three", server)
    workers = [worker(tmp_path, "three", server.url, 6, {**env, "JOB_COMPLETION_INDEX": str(i)}) for i in range(3)]
    codes = [w.wait(TIMEOUT) for w in workers]
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))
    assert codes == [0, 0, 0], logs
    assert server.password not in logs

    study = load(server, "three")
    counts = states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == 6 and counts["RUNNING"] == counts["WAITING"] == 0, counts
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert {t.user_attrs["worker"] for t in finished} <= {"index-0", "index-1", "index-2"}
    assert all(t.user_attrs["fold_scores"] and t.intermediate_values for t in finished)
    best = study.best_trial
    assert set(best.params) == {"learning_rate", "reward"}
    assert load(server, "three").best_trial.params == best.params  # reloads from the storage alone


def test_a_killed_worker_s_trial_fails_after_the_grace_period_and_runs_again(
    server: PostgresServer, env: dict[str, str], tmp_path: Path
) -> None:
    init_study(tmp_path, "killed", server)
    study = load(server, "killed")
    victim = worker(tmp_path, "killed", server.url, 3, {**env, "JOB_COMPLETION_INDEX": "0"})
    # killed once its trial has drawn its parameters (its worker attribute is set a moment before)
    wait_for(lambda: bool(getattr(running_trial_of(study, "0"), "params", None)), 120, "worker 0 to start a trial")
    killed = running_trial_of(study, "0")
    assert killed is not None
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL

    survivor = worker(tmp_path, "killed", server.url, 3, {**env, "JOB_COMPLETION_INDEX": "1"})
    assert survivor.wait(TIMEOUT) == 0, (tmp_path / "worker-1.log").read_text()

    study = load(server, "killed")
    assert study.trials[killed.number].state.name == "FAIL"
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params and retried[0].state.name in ("COMPLETE", "PRUNED")
    counts = states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == 3 and counts["RUNNING"] == counts["WAITING"] == 0, counts


def test_sigterm_fails_the_trial_in_progress_and_exits_143(
    server: PostgresServer, env: dict[str, str], tmp_path: Path
) -> None:
    """The trial cannot finish before the signal: each training has far more timesteps than the test waits
    for. Whether the signal comes before the first training (the stop check) or during it (the training's
    own stop), the trial ends FAIL with the reason and the worker exits 143."""
    init_study(tmp_path, "stopped", server, timesteps=10**9)
    study = load(server, "stopped")
    # PYTHONFAULTHANDLER: a worker that hangs after the signal is aborted with every thread's stack in its log
    debug = {"JOB_COMPLETION_INDEX": "0", "PYTHONFAULTHANDLER": "1"}
    process = worker(tmp_path, "stopped", server.url, 3, {**env, **debug})
    log = tmp_path / "worker-0.log"
    try:
        wait_for(lambda: running_trial_of(study, "0") is not None, 120, "the worker to start a trial")
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(120)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            process.wait(30)
            pytest.fail(f"the worker did not exit within 120 s of SIGTERM; its log ends:\n{log.read_text()[-6000:]}")
        assert code == 143, log.read_text()
    finally:
        if process.poll() is None:  # it would train for hours
            process.kill()

    trials = load(server, "stopped").trials
    assert [t.state.name for t in trials] == ["FAIL"], log.read_text()
    reason = trials[0].user_attrs["fail_reason"]
    assert reason.startswith("trial 0 stopped in fold 1") and reason.endswith("stopped by SIGTERM"), reason
    assert reason in log.read_text().splitlines()[-1]  # the worker's last line says why it stopped
