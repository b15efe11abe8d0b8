"""End to end with a real Docker engine: the Compose tune stack (docker-compose.yml +
docker-compose.tune.yml) with 2 workers on the `postgres:16` service. `tune-init` creates a tiny
study (offline sample, 256 timesteps, 2 folds, a two-setting search space copied into the datasets
volume, as the README says to), `--scale tune-worker=2` runs it to N trials, and the database itself
(psql in the postgres container) must hold exactly N complete trials with distinct numbers; then
`tune-report` and `tune-best` write the HTML page and the bundles into the shared volumes, owned by
the non-root user; `down -v` removes everything, also on failure.

No registry is needed: where no `postgres:16` image exists, the test builds a stand-in from Debian's
`postgresql` package (postgres-standin/ beside this file) under that tag, and removes the tag again
afterwards; an image of that name it did not build (the official one) is used as it is. The finrl
image is the end-to-end test's `finrl:e2e` (its build is cached when test_docker_e2e ran first).

Skips where no engine answers, unless FINRL_DOCKER_REQUIRED=1 (.ci/run), which makes it fail.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unit_tests.deploy.conftest import COMPOSE_FILE, REPO_ROOT
from unit_tests.deploy.test_docker_e2e import FINRL_UID, TREE, Stack, _docker, engine_ready_for_builds

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

TUNE_FILE = REPO_ROOT / "docker-compose.tune.yml"
FILES = (COMPOSE_FILE, TUNE_FILE)
PROFILES = ("tune-results", "dashboard")  # for `down`: every service of the files
POSTGRES_IMAGE = "postgres:16"
STANDIN_DIR = Path(__file__).with_name("postgres-standin")
STANDIN_TITLE = "postgres-standin"  # the stand-in's org.opencontainers.image.title label
STUDY = "e2e"
N_TRIALS = 4
WORKERS = 2
SPACE_PATH = "/app/datasets/e2e-space.yaml"  # in the datasets volume: the same path in every container
SPACE = """\
learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
reward: {type: categorical, choices: [log_return, differential_sharpe]}
"""
# 2 folds (1 year training, 3 months validation and test) of 256 timesteps, one seed: seconds a trial
INIT_ARGS = (
    f"--search-space {SPACE_PATH} --start 2016-01-01 --end 2017-09-30 --train-years 1 --val-months 3 "
    "--test-months 3 --seeds 1 --timesteps 256 --n-envs 2 --n-steps 64 --batch-size 64 --eval-freq 128 "
    "--episode-length 40 --net-arch 8,8"
)
TRIALS_SQL = (
    "SELECT t.state, count(*), count(DISTINCT t.number), min(t.number), max(t.number) FROM trials t "
    f"JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = '{STUDY}' GROUP BY t.state"
)
WORKERS_SQL = (
    "SELECT DISTINCT a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
    f"JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = '{STUDY}' AND a.key = 'worker'"
)


def _image_title(name: str) -> str | None:
    """The image's title label; None where there is no such image."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", '{{index .Config.Labels "org.opencontainers.image.title"}}', name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


class TuneStack(Stack):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, project="finrl-tune-e2e")
        self.password = secrets.token_hex(16)
        password_file = tmp / "tune_storage_password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o644)  # a bind mount: postgres (uid 999) and finrl (uid 1000) read the host file
        self.env.update(
            {
                "TUNE_STORAGE_PASSWORD_FILE": str(password_file),
                "TUNE_STUDY": STUDY,
                "TUNE_N_TRIALS": str(N_TRIALS),
                "TUNE_INIT_ARGS": INIT_ARGS,
                "TUNE_BEST_SEEDS": "1,2",
            }
        )
        self.built_standin = False
        self.started = time.monotonic()

    def tune(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return self.ok(*args, files=FILES, timeout=timeout)

    def psql(self, sql: str) -> list[list[str]]:
        result = self.tune("exec", "-T", "postgres", "psql", "-U", "finrl", "-d", "optuna", "-tA", "-F", ",",
                           "-c", sql)  # fmt: skip
        return [line.split(",") for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def tune_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuneStack]:
    engine_ready_for_builds()
    s = TuneStack(tmp_path_factory.mktemp("tune"))
    try:
        title = _image_title(POSTGRES_IMAGE)
        if title in (None, STANDIN_TITLE):  # never replace a postgres:16 this test did not build
            started = time.monotonic()
            s.built_standin = title is None
            _docker("build", "-t", POSTGRES_IMAGE, str(STANDIN_DIR), timeout=600)
            s.log.append(f"postgres stand-in build {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        s.tune("build", "tune-init", timeout=1500)  # finrl:e2e, cached after test_docker_e2e's build
        s.log.append(f"finrl image build (cached?) {time.monotonic() - started:.1f}s")
        yield s
    finally:
        down = s.compose("--profile", PROFILES[0], "--profile", PROFILES[1], "down", "-v", "--remove-orphans",
                         "--timeout", "10", files=FILES)  # fmt: skip
        left = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={s.project}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if s.built_standin:  # leave the engine's images as they were
            subprocess.run(["docker", "image", "rm", POSTGRES_IMAGE], capture_output=True, check=False)
        # earlier builds of finrl:e2e, untagged by this one (only finrl's, by its label)
        subprocess.run(
            ["docker", "image", "prune", "-f", "--filter", "label=org.opencontainers.image.title=finrl"],
            capture_output=True,
            check=False,
        )
        s.log.append(f"tune e2e total {time.monotonic() - s.started:.1f}s")
        print("\n".join(["tune e2e steps:", *s.log]))
        assert down.returncode == 0, down.stderr
        assert left.stdout.strip() == "", f"volumes left after down -v: {left.stdout}"


def test_two_workers_finish_exactly_n_trials_on_postgres_then_report_and_best(tune_stack: TuneStack) -> None:
    s = tune_stack
    # the search space into the datasets volume, where init and every worker read it at one path
    s.tune("run", "--rm", "--no-deps", "-T", "-e", f"E2E_SPACE={SPACE}", "tune-init",
           "sh", "-c", f'printf "%s" "$E2E_SPACE" > {SPACE_PATH}')  # fmt: skip

    # postgres (healthy) -> tune-init (completed) -> 2 workers, each until the study has N trials
    s.tune("up", "-d", "--scale", f"tune-worker={WORKERS}", "tune-worker", timeout=900)
    assert s.image_of("postgres", files=FILES) == POSTGRES_IMAGE
    init_logs = s.tune("logs", "--no-log-prefix", "tune-init").stdout
    assert f"study:        {STUDY} (created)" in init_logs, init_logs[-3000:]
    workers = s.tune("ps", "-a", "-q", "tune-worker").stdout.split()
    assert len(workers) == WORKERS, workers
    started = time.monotonic()
    waited = subprocess.run(["docker", "wait", *workers], capture_output=True, text=True, timeout=900, check=False)
    s.log.append(f"workers done {time.monotonic() - started:.1f}s after `up` returned")
    worker_logs = s.tune("logs", "--no-log-prefix", "tune-worker").stdout
    assert waited.stdout.split() == ["0"] * WORKERS, f"worker exit codes {waited.stdout.split()}\n{worker_logs[-6000:]}"
    restarts = _docker("inspect", "--format", "{{.RestartCount}}", *workers).stdout.split()
    assert restarts == ["0"] * WORKERS, f"workers restarted: {restarts}\n{worker_logs[-6000:]}"
    assert worker_logs.count(f"study:        {N_TRIALS} of {N_TRIALS} trials finished") == WORKERS, worker_logs[-6000:]

    # the storage itself: exactly N complete trials, numbers 0..N-1 once each, recorded by the workers
    rows = s.psql(TRIALS_SQL)
    assert rows == [["COMPLETE", str(N_TRIALS), str(N_TRIALS), "0", str(N_TRIALS - 1)]], rows
    seen = {json.loads(row[0]) for row in s.psql(WORKERS_SQL)}
    assert 1 <= len(seen) <= WORKERS, seen
    s.log.append(f"trials by worker: {sorted(seen)}")

    # report and best export into the shared volumes
    report = s.tune("run", "--rm", "tune-report").stdout
    assert f"report:       /app/results/tune-{STUDY}.html" in report, report[-3000:]
    assert f"trials:       {N_TRIALS} complete" in report, report[-3000:]
    best = s.tune("run", "--rm", "tune-best", timeout=900).stdout
    assert f"ensemble:     /app/trained_models/tune-{STUDY}-trial" in best, best[-3000:]
    tree = s.inspect_volumes("tune-best", TREE, files=FILES)
    assert f"/app/results/tune-{STUDY}.html" in tree, sorted(tree)
    models = Path("/app/trained_models")
    bundles = sorted(p for p in tree if p.endswith("/bundle.json") and Path(p).parent.parent == models
                     and Path(p).parent.name.startswith(f"tune-{STUDY}-trial"))  # fmt: skip
    assert [Path(p).parent.name.rsplit("-", 1)[1] for p in bundles] == ["ensemble", "seed1", "seed2"], bundles
    assert {tuple(owner) for owner in tree.values()} == {(FINRL_UID, FINRL_UID)}, "everything owned by finrl"
    manifest = s.inspect_volumes(
        "tune-best", f"import json; print(json.dumps(json.load(open('{bundles[1]}'))))", files=FILES
    )
    assert manifest["tune"]["study"] == STUDY and set(manifest["tune"]["params"]) == {"learning_rate", "reward"}

    everything = s.tune("logs", "--no-log-prefix").stdout + report + best + init_logs
    assert s.password not in everything, "the database password in the logs"
