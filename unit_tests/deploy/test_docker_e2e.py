"""End to end with a real Docker engine: build both images (the full one with torch for training
and TensorBoard, the inference one without it for backtests and paper trading) and report their
sizes, `docker compose up train` on the offline sample with a tiny timestep count, `docker compose
up backtest` from the shared volumes in the inference image, TensorBoard answering and healthy, the
images' own healthchecks, a parallel learning-rate variant, Alpaca keys reaching the settings as
Docker secrets, the paper-trading service (inference image), `--once` orders against a fake Alpaca
API on the project's network (docker-compose.e2e.yml beside this file), files owned by the non-root
user, `down -v`.

Skips where no engine answers (`docker info`); .ci/run starts a private one with
../shared/tools/docker-sandbox and sets FINRL_DOCKER_REQUIRED=1, which turns the skip into a
failure. The first build of both images takes about 3 minutes (the torch wheel comes from
wheelhouse/, filled by `make wheelhouse`); later builds are cached. The image sizes are printed
(`pytest -rA` or `-s`) and written to image-sizes.txt in the test's temporary folder.

linux/arm64: the inference image (no torch: PyPI's aarch64 torch wheel needs CUDA libraries, the CPU one
comes from PyTorch's index, unreachable offline) is built for arm64 under QEMU user emulation and runs
`spy-rl version` there, where the machine can emulate arm64 (binfmt_misc's qemu-aarch64 entry, e.g. from
Debian's qemu-user-static, or an arm64 host) and an arm64 base image is at hand: the registry's
python:3.11-slim, or FINRL_ARM64_BASE_IMAGE (docker-sandbox's stand-in is amd64 only; an arm64 one is
`debootstrap --arch=arm64` of the same packages, imported with `FROM scratch` + `ADD rootfs.tar /`,
built with --platform linux/arm64). Elsewhere it skips with what is missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unit_tests.deploy.conftest import (
    COMPOSE_FILE,
    PAPER_TRADING_MODULE,
    PARALLEL_FILE,
    REPO_ROOT,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

IMAGE = "finrl:e2e"  # full: training, TensorBoard
INFERENCE_IMAGE = "finrl-inference:e2e"  # no torch: backtests, paper trading
ARM64_INFERENCE_IMAGE = "finrl-inference:e2e-arm64"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
FINRL_UID = 1000
# the shell's variables that the Compose files read: a developer's values must not change the tests
ENV_PREFIXES = ("SPY_", "ALPACA_", "COMPOSE_", "TUNE_", "OPTUNA_DASHBOARD_")


def _engine_problem() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on PATH"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        return "no Docker engine answers `docker info` (CI starts one with ../shared/tools/docker-sandbox)"
    compose = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False)
    if compose.returncode != 0:
        return "the docker compose plugin is missing"
    return None


def _docker(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)} -> {result.returncode}\n{result.stderr[-3000:]}"
    return result


def _image(name: str) -> dict[str, Any]:
    return json.loads(_docker("image", "inspect", name).stdout)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """One Compose project with its own name, volumes and network, run from the repo root."""

    def __init__(self, tmp: Path, project: str = "finrl-e2e") -> None:
        self.project = f"{project}-{os.getpid()}"
        empty_env = tmp / "empty.env"  # a developer's .env must not change the test
        empty_env.write_text("")
        self.tensorboard_port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
        self.env.update(
            {
                "FINRL_IMAGE": IMAGE,
                "FINRL_INFERENCE_IMAGE": INFERENCE_IMAGE,
                "SPY_DATA_SOURCE": "sample",
                "SPY_LIVE_SOURCE": "sample",  # the paper trader replays the sample too
                "SPY_TOTAL_TIMESTEPS": "1024",
                "SPY_LOG_JSON": "false",
                "TENSORBOARD_PORT": str(self.tensorboard_port),
            }
        )
        self.base = ["docker", "compose", "--project-name", self.project, "--env-file", str(empty_env)]
        self.log: list[str] = []
        self.tmp = tmp

    def compose(
        self, *args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), env: dict[str, str] | None = None, timeout=600
    ) -> subprocess.CompletedProcess[str]:
        command = [*self.base]
        for file in files:
            command += ["-f", str(file)]
        command += list(args)
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.log.append(f"{' '.join(args[:3])}: rc={result.returncode} {time.monotonic() - started:.1f}s")
        return result

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = self.compose(*args, **kwargs)
        assert result.returncode == 0, f"docker compose {' '.join(args)} -> {result.returncode}\n" + (
            result.stdout[-6000:] + "\n" + result.stderr[-6000:]
        )
        return result

    def image_of(self, service: str, **kwargs: Any) -> str:
        """The image the service's (last) container ran."""
        container = self.ok("ps", "-a", "-q", service, **kwargs).stdout.split()[0]
        return _docker("inspect", "--format", "{{.Config.Image}}", container).stdout.strip()

    def inspect_volumes(self, service: str, code: str, **kwargs: Any) -> Any:
        """Run Python in a fresh container of ``service`` (its volumes mounted) and parse its JSON output."""
        result = self.ok("run", "--rm", "--no-deps", "-T", service, "python", "-c", code, **kwargs)
        return json.loads(result.stdout.strip().splitlines()[-1])


# walks the artifact folders: every path with its owner, as the containers see them
TREE = """
import json, os
out = {}
for root in ("/app/trained_models", "/app/tensorboard_logs", "/app/datasets", "/app/results", "/app/logs"):
    if not os.path.isdir(root):
        continue
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + [""]:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            out[path] = [st.st_uid, st.st_gid]
print(json.dumps(out))
"""


def require_engine() -> None:
    """Skip without an engine; fail where FINRL_DOCKER_REQUIRED=1 (.ci/run started one)."""
    problem = _engine_problem()
    if problem:
        if os.environ.get("FINRL_DOCKER_REQUIRED") == "1":
            pytest.fail(f"FINRL_DOCKER_REQUIRED=1 but {problem}")
        pytest.skip(problem)


def engine_ready_for_builds() -> None:
    """An engine (see :func:`require_engine`) and the CPU torch wheel for builds."""
    require_engine()
    if not os.environ.get("TORCH_INDEX_URL"):  # a no-op when the wheel is there already
        subprocess.run(["make", "wheelhouse", f"PYTHON={sys.executable}"], cwd=REPO_ROOT, check=True, timeout=900)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    engine_ready_for_builds()
    s = Stack(tmp_path_factory.mktemp("compose"))
    try:
        # one `compose build` of both targets (the services that define them); the later stages of
        # the full image reuse the inference image's dependency layers
        started = time.monotonic()
        s.ok("build", "backtest", timeout=1500)
        s.log.append(f"inference image build {time.monotonic() - started:.0f}s")
        started = time.monotonic()
        s.ok("build", "train", timeout=1500)
        s.log.append(f"full image build {time.monotonic() - started:.0f}s")
        yield s
    finally:
        down = s.compose("--profile", "paper-trading", "down", "-v", "--remove-orphans", "--timeout", "10")
        left = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={s.project}"],
            capture_output=True,
            text=True,
            check=False,
        )
        # earlier builds of the e2e images, untagged by this one (only finrl's, by its label)
        subprocess.run(
            ["docker", "image", "prune", "-f", "--filter", "label=org.opencontainers.image.title=finrl"],
            capture_output=True,
            check=False,
        )
        print("\n".join(["e2e steps:", *s.log]))
        assert down.returncode == 0, down.stderr
        assert left.stdout.strip() == "", f"volumes left after down -v: {left.stdout}"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        (IMAGE, "finrl.applications.spy_rl_trading.example_training"),
        (INFERENCE_IMAGE, "finrl.applications.spy_rl_trading.example_backtesting"),
    ],
    ids=["full", "inference"],
)
def test_image_runs_as_finrl_with_healthcheck_and_default_command(stack: Stack, name: str, module: str) -> None:
    image = _image(name)["Config"]
    assert image["User"] == f"{FINRL_UID}:{FINRL_UID}"
    assert image["Healthcheck"]["Test"] == ["CMD", "python", "-c", "import finrl"]
    assert image["Healthcheck"]["Interval"] == 30 * 10**9
    assert image["Cmd"] == ["python", "-m", module]
    assert "PYTHONUNBUFFERED=1" in image["Env"]


def test_image_sizes_are_reported(stack: Stack) -> None:
    """Both sizes, printed and written to image-sizes.txt; the inference image must be the smaller."""
    sizes = {name: _image(name)["Size"] for name in (IMAGE, INFERENCE_IMAGE)}
    lines = [f"{name}: {size / 1e6:.0f} MB" for name, size in sizes.items()]
    (stack.tmp / "image-sizes.txt").write_text("\n".join(lines) + "\n")
    print("image sizes: " + "; ".join(lines) + f" (written to {stack.tmp / 'image-sizes.txt'})")
    stack.log.extend(f"image size {line}" for line in lines)
    assert sizes[INFERENCE_IMAGE] < sizes[IMAGE], "the inference image leaves torch out"
    assert sizes[INFERENCE_IMAGE] < 1.5e9, "sanity bound"


def test_inference_image_has_no_torch_and_its_cli_works(stack: Stack) -> None:
    for module in ("torch", "stable_baselines3", "tensorboard"):
        result = subprocess.run(
            ["docker", "run", "--rm", INFERENCE_IMAGE, "python", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (module, result.stderr[-2000:])
    assert _docker("run", "--rm", INFERENCE_IMAGE, "python", "-c", "import finrl").returncode == 0
    version = _docker("run", "--rm", INFERENCE_IMAGE, "spy-rl", "version")
    assert "finrl" in version.stdout, version.stdout


def test_compose_up_train_writes_a_model_bundle_owned_by_finrl(stack: Stack) -> None:
    result = stack.ok("up", "--exit-code-from", "train", "train")
    assert "model:      /app/trained_models/ppo-spy-sample" in result.stdout, result.stdout[-3000:]
    tree = stack.inspect_volumes("train", TREE)
    assert "/app/trained_models/latest" in tree
    bundles = [p for p in tree if p.endswith("/bundle.json") and p.startswith("/app/trained_models/ppo-")]
    assert bundles, sorted(tree)
    assert any(p.startswith("/app/tensorboard_logs/ppo-") for p in tree), "TensorBoard events"
    assert any(p.startswith("/app/datasets/sample-") for p in tree), "dataset cache"
    assert {tuple(owner) for owner in tree.values()} == {(FINRL_UID, FINRL_UID)}, "everything owned by finrl"


def test_compose_up_backtest_reports_from_the_shared_volumes(stack: Stack) -> None:
    # depends_on runs train to completion first (service_completed_successfully), then the backtest
    result = stack.ok("up", "--exit-code-from", "backtest", "backtest")
    assert "report: /app/results/" in result.stdout, result.stdout[-3000:]
    assert stack.image_of("backtest") == INFERENCE_IMAGE, "backtests run without torch"
    assert stack.image_of("train") == IMAGE
    tree = stack.inspect_volumes("backtest", TREE)
    reports = [p for p in tree if p.startswith("/app/results/ppo-") and p.endswith("/metrics.json")]
    assert reports, sorted(tree)
    assert any(p.endswith("/report.html") for p in tree)
    assert {tuple(owner) for owner in tree.values()} == {(FINRL_UID, FINRL_UID)}
    ro = stack.compose("run", "--rm", "--no-deps", "-T", "backtest", "touch", "/app/trained_models/x")
    assert ro.returncode != 0, "models are mounted read-only in the backtest"


def test_tensorboard_answers_and_is_healthy_and_stops_on_sigterm(stack: Stack) -> None:
    stack.ok("up", "-d", "--wait", "--wait-timeout", "120", "tensorboard")
    container = stack.ok("ps", "-q", "tensorboard").stdout.strip()
    health = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Health.Status}}", container], capture_output=True, text=True
    )
    assert health.stdout.strip() == "healthy"
    url = f"http://127.0.0.1:{stack.tensorboard_port}/data/runs"
    with urllib.request.urlopen(url, timeout=10) as response:
        runs = json.loads(response.read())
    assert any(run.startswith("ppo-spy-sample") for run in runs), runs
    started = time.monotonic()
    stack.ok("stop", "tensorboard")  # stop_grace_period is 30 s: a quick stop means SIGTERM was handled
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("image", [IMAGE, INFERENCE_IMAGE], ids=["full", "inference"])
def test_image_healthcheck_turns_healthy(stack: Stack, image: str) -> None:
    name = f"{stack.project}-health"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "--init", "--health-interval", "2s", image, "sleep", "60"],
        check=True,
        capture_output=True,
    )
    try:
        status = ""
        for _ in range(60):
            status = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", name], capture_output=True, text=True
            ).stdout.strip()
            if status != "starting":
                break
            time.sleep(1)
        assert status == "healthy"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_parallel_variant_trains_into_its_own_folder(stack: Stack) -> None:
    files = (COMPOSE_FILE, PARALLEL_FILE)
    stack.ok("up", "--exit-code-from", "train-lr-1e-3", "train-lr-1e-3", files=files)
    tree = stack.inspect_volumes("train", TREE)
    assert "/app/trained_models/lr-1e-3/latest" in tree
    assert any(p.startswith("/app/tensorboard_logs/lr-1e-3/") for p in tree)
    bundle = stack.inspect_volumes(
        "train",
        "import json; print(json.dumps(json.load(open('/app/trained_models/lr-1e-3/latest/bundle.json'))))",
    )
    assert bundle["settings"]["learning_rate"] == 0.001


SEEN_KEYS = (
    "import json, os\n"
    "from finrl.applications.spy_rl_trading.settings import load_settings\n"
    "s = load_settings()\n"
    "value = lambda x: x.get_secret_value() if x else None\n"
    "print(json.dumps({'key': value(s.alpaca_api_key), 'secret': value(s.alpaca_api_secret),"
    " 'in_env': sorted(k for k in os.environ if k.startswith('ALPACA_API')),"
    " 'files': {n: open('/run/secrets/' + n).read() for n in sorted(os.listdir('/run/secrets'))},"
    " 'base_url': s.alpaca_base_url, 'broker': s.broker}))"
)


def test_paper_trading_alpaca_keys_from_docker_secrets_environment_or_none(stack: Stack, tmp_path: Path) -> None:
    profile = {"COMPOSE_PROFILES": "paper-trading"}
    (tmp_path / "key").write_text("file-key\n")
    (tmp_path / "secret").write_text("file-secret\n")
    for path in tmp_path.iterdir():
        path.chmod(0o644)  # a bind mount: the container's user reads the host file
    files = {"ALPACA_API_KEY_FILE": str(tmp_path / "key"), "ALPACA_API_SECRET_FILE": str(tmp_path / "secret")}
    seen = stack.inspect_volumes("paper-trading", SEEN_KEYS, env={**profile, **files})
    assert (seen["key"], seen["secret"], seen["in_env"]) == ("file-key", "file-secret", [])
    assert seen["base_url"].startswith("https://paper-api.") and seen["broker"] == "alpaca"

    keys = {"ALPACA_API_KEY": "env-key", "ALPACA_API_SECRET": "env-secret"}
    seen = stack.inspect_volumes("paper-trading", SEEN_KEYS, env={**profile, **keys})
    assert (seen["key"], seen["secret"]) == ("env-key", "env-secret")
    assert seen["files"] == {"alpaca_api_key": "", "alpaca_api_secret": ""}

    seen = stack.inspect_volumes("paper-trading", SEEN_KEYS, env=profile)
    assert (seen["key"], seen["secret"], seen["in_env"]) == (None, None, [])


def test_paper_trading_service_is_healthy_serves_metrics_and_stops_on_sigterm(stack: Stack) -> None:
    """The paper-trading service as Compose runs it (read-only root, models read-only), with the
    simulated broker: `spy-rl health` turns the container healthy, /metrics answers on
    SPY_METRICS_PORT, and SIGTERM stops it at once. (Alpaca: the `--once` test below.)"""
    port = _free_port()
    env = {"COMPOSE_PROFILES": "paper-trading", "SPY_BROKER": "simulated", "SPY_METRICS_PORT": str(port)}
    stack.ok("up", "-d", "--wait", "--wait-timeout", "240", "paper-trading", env=env)
    assert stack.image_of("paper-trading", env=env) == INFERENCE_IMAGE, "paper trading runs without torch"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "finrl_cycles_total" in metrics, metrics[:2000]
    started = time.monotonic()
    stack.ok("stop", "paper-trading", env=env)
    assert time.monotonic() - started < 15
    logs = stack.ok("logs", "paper-trading", env=env).stdout
    assert "signal_received" in logs and "SIGTERM" in logs, logs[-3000:]
    tree = stack.inspect_volumes("paper-trading", TREE, env=env)
    assert "/app/logs/journal.jsonl" in tree and "/app/logs/health.json" in tree, sorted(tree)
    assert {tuple(owner) for owner in tree.values()} == {(FINRL_UID, FINRL_UID)}


def test_unit_tests_pass_inside_the_test_image(stack: Stack) -> None:
    """The Dockerfile's test stage: the runtime image plus the locked dev tools runs `pytest -m unit`."""
    started = time.monotonic()
    build = subprocess.run(
        ["docker", "build", "--target", "test", "-t", f"{IMAGE}-test", "."],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-6000:]
    tests = subprocess.run(["docker", "run", "--rm", f"{IMAGE}-test"], capture_output=True, text=True, timeout=900)
    stack.log.append(f"test image build + unit tests {time.monotonic() - started:.0f}s")
    assert tests.returncode == 0, tests.stdout[-6000:]
    assert " passed" in tests.stdout.splitlines()[-1]


# unit_tests/fakes/alpaca_server.py in a container on the project's network (no published port)
E2E_FILE = Path(__file__).with_name("docker-compose.e2e.yml")
FAKE_ORDERS = (
    "import urllib.request\n"
    "print(urllib.request.urlopen('http://127.0.0.1:8080/__fake/orders', timeout=10).read().decode())"
)
# The e2e model (1024 timesteps) may hold while flat (it did when this was written): no order. This
# bundle, derived from it (same features and normalisation), has an action head that always buys.
# Derived in the full image (torch); its policy.npz is what the inference image acts with.
ALWAYS_BUY = "e2e-always-buy"
DERIVE_ALWAYS_BUY = f"""
import json
from pathlib import Path
import torch
from finrl.agents.bundle import MANIFEST_FILE, MODEL_FILE, export_policy, hash_files, load_bundle
from finrl.meta.env.execution import Action
models = Path('/app/trained_models')
bundle = load_bundle('latest', models)
model = bundle.load_model()
head = model.policy.action_net
with torch.no_grad():
    head.weight.zero_()
    head.bias.fill_(0.0)
    head.bias[int(Action.BUY)] = 10.0
target = models / '{ALWAYS_BUY}'
target.mkdir()
model.save(target / MODEL_FILE)
export_policy(target)
manifest = json.loads((bundle.path / MANIFEST_FILE).read_text())
manifest.update(run_name=target.name, files=hash_files(target))
(target / MANIFEST_FILE).write_text(json.dumps(manifest))
print(json.dumps({{'from': bundle.run_name, 'to': target.name}}))
"""
ALPACA_LOGS = "/app/logs/alpaca"  # in the logs volume, apart from the simulated broker's journal and state
JOURNAL = f"import json; print(json.dumps([json.loads(line) for line in open('{ALPACA_LOGS}/journal.jsonl')]))"


def test_paper_trading_once_against_fake_alpaca(stack: Stack) -> None:
    """The paper-trading container (inference image), `--once --broker alpaca`, against the fake
    Alpaca API running in a container beside it (its clock at 19:30 ET after the sample's last session, 2018-12-31, when
    Alpaca takes market-on-open orders): one opg market order for 2019-01-02; a second `--once`
    finds it by its client order id and sends nothing. The keys reach the trader, not its logs."""
    key, secret = f"e2e-key-{uuid.uuid4().hex}", f"e2e-secret-{uuid.uuid4().hex}"
    files = (COMPOSE_FILE, E2E_FILE)
    env = {
        "COMPOSE_PROFILES": "paper-trading",
        "FAKE_ALPACA_API_KEY": key,
        "FAKE_ALPACA_API_SECRET": secret,
        "ALPACA_API_KEY": key,
        "ALPACA_API_SECRET": secret,
        "ALPACA_BASE_URL": "http://fake-alpaca:8080",
    }
    once = (
        "run", "--rm", "--no-deps", "-T", "-e", "SPY_METRICS_PORT=0", "-e", f"SPY_LOGS_DIR={ALPACA_LOGS}",
        "-e", f"SPY_MODEL={ALWAYS_BUY}",
        "paper-trading", "python", "-m", PAPER_TRADING_MODULE, "--once", "--broker", "alpaca",
    )  # fmt: skip

    def fake_orders() -> dict[str, Any]:
        result = stack.ok("exec", "-T", "fake-alpaca", "python", "-c", FAKE_ORDERS, files=files, env=env)
        return json.loads(result.stdout)

    derived = stack.inspect_volumes("train", DERIVE_ALWAYS_BUY)
    assert derived["from"].startswith("ppo-spy-sample"), derived
    stack.ok("up", "-d", "--wait", "--wait-timeout", "60", "fake-alpaca", files=files, env=env)
    try:
        first = stack.ok(*once, files=files, env=env)
        assert "session: 2018-12-31" in first.stdout, first.stdout + first.stderr[-3000:]
        assert "outcome: submitted" in first.stdout, first.stdout + first.stderr[-3000:]
        assert f"model={ALWAYS_BUY}" in first.stdout + first.stderr and "action: 2" in first.stdout
        assert "client_order_id: finrl-SPY-20190102" in first.stdout
        seen = fake_orders()
        assert seen["order_posts"] == 1, seen
        (order,) = seen["orders"]
        assert order["client_order_id"] == "finrl-SPY-20190102"
        assert (order["symbol"], order["type"], order["time_in_force"]) == ("SPY", "market", "opg")
        assert (order["side"], order["status"]) == ("buy", "accepted") and float(order["qty"]) > 0

        second = stack.ok(*once, files=files, env=env)
        assert "outcome: exists" in second.stdout, second.stdout + second.stderr[-3000:]
        assert "client_order_id: finrl-SPY-20190102" in second.stdout
        seen = fake_orders()
        assert seen["order_posts"] == 1 and len(seen["orders"]) == 1, seen

        fake_logs = stack.ok("logs", "fake-alpaca", files=files, env=env)
        for output in (first.stdout, first.stderr, second.stdout, second.stderr, fake_logs.stdout, fake_logs.stderr):
            assert key not in output and secret not in output, "an Alpaca key in the container output"
    finally:
        stack.compose("rm", "--stop", "--force", "fake-alpaca", files=files, env=env)

    journal = stack.inspect_volumes("paper-trading", JOURNAL, env={"COMPOSE_PROFILES": "paper-trading"})
    orders = [entry for entry in journal if entry["event"].startswith("order_")]
    assert [entry["event"] for entry in orders] == ["order_submitted", "order_exists"], journal
    assert {entry["client_order_id"] for entry in orders} == {"finrl-SPY-20190102"}
    assert orders[0]["time_in_force"] == "opg" and orders[0]["order_id"] == order["id"]
    assert [entry["event"] for entry in journal].count("decision") == 2


def _arm64_problem() -> tuple[str | None, str]:
    """What keeps this machine from building and running a linux/arm64 image (None: nothing), and the
    arm64 base image to build on."""
    base = os.environ.get("FINRL_ARM64_BASE_IMAGE", "python:3.11-slim")
    if platform.machine() not in {"aarch64", "arm64"}:
        if not (BINFMT_DIR / "status").exists():
            return f"no binfmt_misc at {BINFMT_DIR} (mount -t binfmt_misc binfmt_misc {BINFMT_DIR}, as root)", base
        entry = BINFMT_DIR / "qemu-aarch64"
        if not entry.exists():
            return (
                f"no QEMU user emulation of arm64: {entry} is not registered (apt-get install qemu-user-static, "
                "or docker run --privileged --rm tonistiigi/binfmt --install arm64)"
            ), base
        lines = entry.read_text().splitlines()
        if lines[0] != "enabled" or not any(line.startswith("flags:") and "F" in line for line in lines):
            return f"{entry} is disabled or lacks the F flag (containers cannot reach the interpreter)", base
    seen = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            base,
            "--format",
            '{{.Architecture}} {{index .Config.Labels "docker-sandbox.base"}}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    architecture, _, sandbox = seen.stdout.strip().partition(" ")
    if seen.returncode == 0 and architecture != "arm64" and sandbox:
        return (
            f"{base} is docker-sandbox's {architecture} stand-in and no registry is reachable: "
            "set FINRL_ARM64_BASE_IMAGE to an arm64 base image"
        ), base
    return None, base


def test_arm64_inference_image_builds_and_runs_under_emulation() -> None:
    require_engine()
    problem, base = _arm64_problem()
    if problem:
        pytest.skip(f"linux/arm64 not checked here: {problem}")
    started = time.monotonic()
    build = subprocess.run(
        ["docker", "build", "--platform", "linux/arm64", "--target", "inference", "--build-arg", f"BASE_IMAGE={base}",
         "-t", ARM64_INFERENCE_IMAGE, "."],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1400, check=False,
    )  # fmt: skip
    try:
        assert build.returncode == 0, build.stderr[-6000:]
        print(f"arm64 inference image build (QEMU): {time.monotonic() - started:.0f}s")
        image = _image(ARM64_INFERENCE_IMAGE)
        assert (image["Os"], image["Architecture"]) == ("linux", "arm64")
        assert image["Config"]["User"] == f"{FINRL_UID}:{FINRL_UID}"
        run = ["docker", "run", "--rm", "--platform", "linux/arm64", ARM64_INFERENCE_IMAGE]
        version = subprocess.run([*run, "spy-rl", "version"], capture_output=True, text=True, timeout=300, check=False)
        assert version.returncode == 0 and "finrl" in version.stdout, version.stdout + version.stderr[-3000:]
        machine = subprocess.run(
            [*run, "python", "-c", "import platform; print(platform.machine())"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert machine.stdout.strip() == "aarch64", machine.stdout + machine.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", ARM64_INFERENCE_IMAGE], capture_output=True, check=False)
