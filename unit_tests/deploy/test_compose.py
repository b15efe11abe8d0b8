"""Compose files, checked by Compose itself (`docker compose config`, no engine needed) and against
the package: every service, volume, profile and command the deployment doc promises. Integration
tests: each one runs the Compose binary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from unit_tests.deploy.conftest import (
    ARTIFACT_DIRS,
    COMPOSE_FILE,
    GPU_FILE,
    K8S_DIR,
    METRICS_PORT,
    MONITORING_FILE,
    PAPER_TRADING_MODULE,
    PARALLEL_FILE,
    REPO_ROOT,
    assert_entry_module,
    check,
    load_yaml_documents,
    module_of,
    tool,
)

pytestmark = pytest.mark.integration

APP_SERVICES = {"train", "backtest", "tensorboard"}
LR_SERVICES = {"train-lr-1e-4", "train-lr-3e-4", "train-lr-1e-3"}
# which image each service runs: the full one (torch, for training) or the inference one (no torch)
FULL = ("finrl:latest", "app")
INFERENCE = ("finrl-inference:latest", "inference")
IMAGE_OF = {"train": FULL, "tensorboard": FULL, "backtest": INFERENCE, "paper-trading": INFERENCE}
E2E_FILE = REPO_ROOT / "unit_tests" / "deploy" / "docker-compose.e2e.yml"


def compose_config(
    tmp_path: Path, files: list[Path], profiles: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`docker compose config` as JSON: interpolated, merged, validated by Compose."""
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    environment.update(env or {})
    args = [tool("docker-compose"), "--project-directory", str(REPO_ROOT), "--env-file", str(empty_env)]
    for file in files:
        args += ["-f", str(file)]
    for profile in profiles:
        args += ["--profile", profile]
    result = check([*args, "config", "--format", "json"], env=environment)
    return json.loads(result.stdout)


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    return compose_config(tmp_path, [COMPOSE_FILE])


@pytest.fixture
def with_paper(tmp_path: Path) -> dict[str, Any]:
    return compose_config(tmp_path, [COMPOSE_FILE], ("paper-trading",))


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in service.get("volumes", [])}


@pytest.mark.parametrize(
    ("files", "profiles", "expected"),
    [
        ([COMPOSE_FILE], (), APP_SERVICES),
        ([COMPOSE_FILE], ("paper-trading",), APP_SERVICES | {"paper-trading"}),
        ([PARALLEL_FILE], (), LR_SERVICES),
        ([COMPOSE_FILE, PARALLEL_FILE], (), APP_SERVICES | LR_SERVICES),
        ([COMPOSE_FILE, MONITORING_FILE], (), APP_SERVICES),
        ([COMPOSE_FILE, MONITORING_FILE], ("paper-trading",), APP_SERVICES | {"paper-trading", "prometheus"}),
        ([COMPOSE_FILE, MONITORING_FILE], ("grafana",), APP_SERVICES | {"prometheus", "grafana"}),
        (
            [COMPOSE_FILE, MONITORING_FILE],
            ("paper-trading", "grafana"),
            APP_SERVICES | {"paper-trading", "prometheus", "grafana"},
        ),
        ([COMPOSE_FILE, GPU_FILE], (), APP_SERVICES),
        ([COMPOSE_FILE, GPU_FILE, MONITORING_FILE], ("paper-trading",), APP_SERVICES | {"paper-trading", "prometheus"}),
    ],
    ids=[
        "base",
        "paper",
        "parallel-alone",
        "parallel",
        "monitoring",
        "monitoring-paper",
        "grafana",
        "all",
        "gpu",
        "gpu-monitoring-paper",
    ],
)
def test_every_file_and_profile_is_valid_compose(tmp_path, files, profiles, expected) -> None:
    config = compose_config(tmp_path, files, profiles)
    assert set(config["services"]) == expected


def test_every_python_command_runs_an_existing_module(tmp_path) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, PARALLEL_FILE], ("paper-trading",))
    modules = {name: module_of(service.get("command") or []) for name, service in config["services"].items()}
    assert modules["train"] == "finrl.applications.spy_rl_trading.example_training"
    assert modules["backtest"] == "finrl.applications.spy_rl_trading.example_backtesting"
    assert modules["paper-trading"] == PAPER_TRADING_MODULE
    for name in LR_SERVICES:
        assert modules[name] == modules["train"]
    for module in sorted({m for m in modules.values() if m and m != PAPER_TRADING_MODULE}):
        assert_entry_module(module)


def test_paper_trading_entry_module_exists(with_paper) -> None:
    """Skipped only while finrl/applications/spy_rl_trading/paper_trading.py is not written."""
    assert_entry_module(module_of(with_paper["services"]["paper-trading"]["command"]))


def test_training_runs_the_full_image_backtests_and_paper_trading_the_inference_image(with_paper) -> None:
    services = with_paper["services"]
    assert set(services) == set(IMAGE_OF)
    for name, service in services.items():
        assert (service["image"], service["build"]["target"]) == IMAGE_OF[name], name
        args = service["build"].get("args", {})
        assert args["BASE_IMAGE"] == "python:3.11-slim", "both images on the same base"
        if IMAGE_OF[name] == INFERENCE:
            assert not any(arg.startswith("TORCH_") for arg in args), f"{name}: the inference image has no torch"
        else:
            assert args["TORCH_FLAVOUR"] == "cpu"


def test_image_names_can_be_overridden(tmp_path) -> None:
    env = {"FINRL_IMAGE": "registry.example/finrl:1.2", "FINRL_INFERENCE_IMAGE": "registry.example/finrl-inference:1.2"}
    services = compose_config(tmp_path, [COMPOSE_FILE], ("paper-trading",), env=env)["services"]
    assert services["train"]["image"] == services["tensorboard"]["image"] == env["FINRL_IMAGE"]
    assert services["backtest"]["image"] == services["paper-trading"]["image"] == env["FINRL_INFERENCE_IMAGE"]


def test_e2e_fake_alpaca_runs_in_the_inference_image(tmp_path) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, E2E_FILE], ("paper-trading",))
    assert config["services"]["fake-alpaca"]["image"] == INFERENCE[0]
    assert "build" not in config["services"]["fake-alpaca"], "built once, as the backtest's image"


def test_services_share_network_init_and_limits(with_paper) -> None:
    services = with_paper["services"]
    for name, service in services.items():
        assert service.get("init") is True, f"{name}: init: true so SIGTERM reaches the app"
        assert service.get("read_only") is True and "/tmp" in service["tmpfs"], f"{name}: read-only root"
        assert "finrl-network" in service["networks"], name
        limits = service["deploy"]["resources"]["limits"]
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no resource limits"
        assert service["build"]["context"] == str(REPO_ROOT)
    assert "finrl-network" in with_paper["networks"]


def test_named_volumes_mount_on_the_image_folders(with_paper) -> None:
    assert set(ARTIFACT_DIRS) <= set(with_paper["volumes"])
    for name, service in with_paper["services"].items():
        for target, mount in mounts(service).items():
            assert mount["type"] == "volume", f"{name} bind-mounts {target}"
            assert target == f"/app/{mount['source']}", f"{name}: volume {mount['source']} on {target}"
    assert {m["source"] for m in mounts(with_paper["services"]["train"]).values()} >= {
        "trained_models",
        "tensorboard_logs",
        "datasets",
    }


def test_backtest_waits_for_training_and_only_reads_models_and_data(base) -> None:
    backtest = base["services"]["backtest"]
    assert backtest["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert backtest["read_only"] is True
    assert "/tmp" in backtest["tmpfs"]
    volumes = mounts(backtest)
    assert volumes["/app/trained_models"]["read_only"] is True
    assert volumes["/app/datasets"]["read_only"] is True
    assert not volumes["/app/results"].get("read_only")


def test_tensorboard_serves_the_training_logs_with_a_curl_free_healthcheck(base) -> None:
    tensorboard = base["services"]["tensorboard"]
    assert tensorboard["command"][0] == "tensorboard"
    assert "/app/tensorboard_logs" in tensorboard["command"]
    assert mounts(tensorboard)["/app/tensorboard_logs"]["read_only"] is True
    test = tensorboard["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and "urllib" in test[-1]
    assert [p["target"] for p in tensorboard["ports"]] == [6006]
    assert tensorboard["ports"][0]["host_ip"] == "127.0.0.1", "unauthenticated: loopback unless asked"


def test_data_source_defaults_to_yahoo_and_can_be_overridden(tmp_path, base) -> None:
    for service in base["services"].values():
        assert service["environment"]["SPY_DATA_SOURCE"] == "yahoo"
        assert service["environment"]["SPY_TRAINED_MODELS_DIR"] == "/app/trained_models"
    sample = compose_config(tmp_path, [COMPOSE_FILE], env={"SPY_DATA_SOURCE": "sample", "SPY_TOTAL_TIMESTEPS": "1024"})
    train = sample["services"]["train"]["environment"]
    assert (train["SPY_DATA_SOURCE"], train["SPY_TOTAL_TIMESTEPS"]) == ("sample", "1024")


def test_optional_settings_are_not_set_to_empty_strings(base) -> None:
    """An empty SPY_START_DATE would be an invalid date: unset variables must stay unset."""
    environment = base["services"]["train"]["environment"]
    for name in ("SPY_CSV_PATH", "SPY_VIX_CSV_PATH", "SPY_START_DATE", "SPY_END_DATE"):
        assert environment.get(name) is None, name


def test_paper_trading_profile_secrets_and_restart(with_paper) -> None:
    paper = with_paper["services"]["paper-trading"]
    assert paper["profiles"] == ["paper-trading"]
    assert paper["restart"] == "unless-stopped"
    assert {s["source"] for s in paper["secrets"]} == {"alpaca_api_key", "alpaca_api_secret"}
    for secret in ("alpaca_api_key", "alpaca_api_secret"):
        default = Path(with_paper["secrets"][secret]["file"])
        assert default == REPO_ROOT / "secrets" / "none" and default.read_text() == "", "no key by default"
    environment = paper["environment"]
    assert environment["ALPACA_API_KEY"] is None and environment["ALPACA_API_SECRET"] is None, "passed on if set"
    assert environment["ALPACA_BASE_URL"].startswith("https://paper-api.")
    assert environment["SPY_TRADING_MODE"] == "paper"
    assert environment["SPY_BROKER"] == "alpaca"
    assert paper["healthcheck"]["test"] == ["CMD", "spy-rl", "health"]
    assert environment["SPY_METRICS_PORT"] == str(METRICS_PORT)
    assert [p["target"] for p in paper["ports"]] == [METRICS_PORT]
    assert mounts(paper)["/app/trained_models"]["read_only"] is True


def test_alpaca_keys_come_from_the_environment_or_from_secret_files(tmp_path) -> None:
    key_file = tmp_path / "key"
    config = compose_config(
        tmp_path,
        [COMPOSE_FILE],
        ("paper-trading",),
        env={"ALPACA_API_KEY": "from-env", "ALPACA_API_SECRET_FILE": str(key_file)},
    )
    assert config["services"]["paper-trading"]["environment"]["ALPACA_API_KEY"] == "from-env"
    assert config["secrets"]["alpaca_api_secret"]["file"] == str(key_file)


def test_parallel_variants_differ_in_learning_rate_and_folders(tmp_path) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, PARALLEL_FILE])
    train = config["services"]["train"]
    seen_rates, seen_models, seen_logs = set(), set(), set()
    for name in LR_SERVICES:
        service = config["services"][name]
        environment = service["environment"]
        rate = float(environment["SPY_LEARNING_RATE"])
        assert 0 < rate < 1
        assert environment["SPY_TRAINED_MODELS_DIR"].startswith("/app/trained_models/lr-")
        assert environment["SPY_TENSORBOARD_LOG_DIR"].startswith("/app/tensorboard_logs/lr-")
        seen_rates.add(rate)
        seen_models.add(environment["SPY_TRAINED_MODELS_DIR"])
        seen_logs.add(environment["SPY_TENSORBOARD_LOG_DIR"])
        assert mounts(service) == mounts(train), f"{name} shares the training volumes"
        assert service["image"] == train["image"] == FULL[0]
        assert service["build"]["target"] == FULL[1]
    assert len(seen_rates) == len(seen_models) == len(seen_logs) == len(LR_SERVICES)


def test_prometheus_scrapes_the_paper_trading_metrics_port(tmp_path) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, MONITORING_FILE], ("paper-trading", "grafana"))
    prometheus_yml = yaml.safe_load((REPO_ROOT / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus_yml["scrape_configs"] if j["job_name"] == "finrl-paper-trading"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"paper-trading:{METRICS_PORT}"]
    assert "paper-trading" in config["services"]
    prometheus = config["services"]["prometheus"]
    sources = {Path(v["source"]).name for v in prometheus["volumes"] if v["type"] == "bind"}
    assert "prometheus.yml" in sources
    assert "finrl-network" in prometheus["networks"]


def test_gpu_override_trains_the_cuda_image_on_a_reserved_gpu(tmp_path, base) -> None:
    """docker-compose.gpu.yml: only `train` changes: the CUDA build of the full image, SPY_DEVICE=cuda
    (one line instead of a silent CPU run where no GPU is seen), one NVIDIA GPU reserved (TRAIN_GPUS)."""
    config = compose_config(tmp_path, [COMPOSE_FILE, GPU_FILE])
    train, cpu_train = config["services"]["train"], base["services"]["train"]
    assert train["image"] == "finrl-cuda:latest" and train["build"]["target"] == FULL[1]
    assert train["build"]["args"]["TORCH_FLAVOUR"] == "cuda"
    assert train["environment"]["SPY_DEVICE"] == "cuda"
    (device,) = train["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert int(train["deploy"]["resources"]["limits"]["memory"]) > int(
        cpu_train["deploy"]["resources"]["limits"]["memory"]
    )
    assert {k: v for k, v in train.items() if k not in {"image", "build", "environment", "deploy"}} == {
        k: v for k, v in cpu_train.items() if k not in {"image", "build", "environment", "deploy"}
    }, "volumes, command, read-only root: as the CPU training"
    assert {k: v for k, v in train["environment"].items() if k != "SPY_DEVICE"} == cpu_train["environment"]
    for name in set(base["services"]) - {"train"}:
        assert config["services"][name] == base["services"][name], f"{name} needs no GPU"
    every = compose_config(tmp_path, [COMPOSE_FILE, GPU_FILE], env={"TRAIN_GPUS": "all", "SPY_DEVICE": "auto"})
    train = every["services"]["train"]
    assert train["deploy"]["resources"]["reservations"]["devices"][0]["count"] == -1, "all GPUs"
    assert train["environment"]["SPY_DEVICE"] == "auto"


def k8s_quantity(text: str) -> int:
    """A Kubernetes memory quantity (Mi, Gi) in bytes."""
    units = {"Mi": 2**20, "Gi": 2**30}
    return int(text[:-2]) * units[text[-2:]]


def test_train_resources_match_kubernetes_and_the_measured_peak(base) -> None:
    """The memory limit and reservation of `train` are the k8s Job's limit and request, and leave room
    over the measured peak RSS of a training run (0.57 GB, noted beside the values)."""
    resources = base["services"]["train"]["deploy"]["resources"]
    (job,) = [d for d in load_yaml_documents(K8S_DIR / "30-train-job.yaml") if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    k8s = container["resources"]
    assert int(resources["limits"]["memory"]) == k8s_quantity(k8s["limits"]["memory"])
    assert int(resources["reservations"]["memory"]) == k8s_quantity(k8s["requests"]["memory"])
    assert float(resources["limits"]["cpus"]) == float(k8s["limits"]["cpu"])
    assert float(resources["reservations"]["cpus"]) == float(k8s["requests"]["cpu"])
    measured_peak = 0.57e9
    assert int(resources["reservations"]["memory"]) >= 1.5 * measured_peak
    assert int(resources["limits"]["memory"]) >= 3 * measured_peak
    for text in (COMPOSE_FILE.read_text(), (K8S_DIR / "30-train-job.yaml").read_text()):
        assert "0.57 GB" in text, "the measurement stands beside the values"
