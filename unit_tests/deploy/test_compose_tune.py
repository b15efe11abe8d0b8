"""docker-compose.tune.yml, checked by Compose itself (`docker compose config`, no engine needed) as the
README uses it, over docker-compose.yml: PostgreSQL with its healthcheck, volume and secret, the
one-shot init, the scalable workers, the results services and the dashboard profile, every command
accepted by the CLI. Integration tests: each one runs the Compose binary."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.deploy.conftest import ARTIFACT_DIRS, COMPOSE_FILE, REPO_ROOT
from unit_tests.deploy.test_compose import FULL, compose_config, mounts

pytestmark = pytest.mark.integration

TUNE_FILE = REPO_ROOT / "docker-compose.tune.yml"
BASE_SERVICES = {"train", "backtest", "tensorboard"}
TUNE_SERVICES = {"postgres", "tune-init", "tune-worker"}
RESULTS_SERVICES = {"tune-report", "tune-best"}
FINRL_TUNE_SERVICES = {"tune-init", "tune-worker", *RESULTS_SERVICES}
SECRET = "tune_storage_password"  # the Docker secret's name: the settings' secret file name


@pytest.fixture
def tune(tmp_path: Path) -> dict[str, Any]:
    return compose_config(tmp_path, [COMPOSE_FILE, TUNE_FILE], ("tune-results", "dashboard"))


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        ((), BASE_SERVICES | TUNE_SERVICES),
        (("tune-results",), BASE_SERVICES | TUNE_SERVICES | RESULTS_SERVICES),
        (("dashboard",), BASE_SERVICES | TUNE_SERVICES | {"optuna-dashboard"}),
    ],
    ids=["tune", "results", "dashboard"],
)
def test_the_tune_file_is_valid_compose_over_the_main_file(tmp_path, profiles, expected) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, TUNE_FILE], profiles)
    assert set(config["services"]) == expected


def test_postgres_keeps_the_official_image_with_healthcheck_volume_and_secret(tune) -> None:
    postgres = tune["services"]["postgres"]
    assert postgres["image"] == "postgres:16" and "build" not in postgres, "the real image name, never built here"
    test = postgres["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and "-h" in test, "pg_isready over TCP"
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{SECRET}"
    assert "POSTGRES_PASSWORD" not in postgres["environment"], "the password only as a secret file"
    assert [s["source"] for s in postgres["secrets"]] == [SECRET]
    volume = mounts(postgres)["/var/lib/postgresql/data"]
    assert (volume["type"], volume["source"]) == ("volume", "tune_postgres")
    assert "tune_postgres" in tune["volumes"]
    assert postgres["deploy"]["resources"]["limits"]["memory"]


def test_storage_url_names_the_postgres_service_user_and_database(tune) -> None:
    postgres = tune["services"]["postgres"]["environment"]
    expected = f"postgresql+psycopg://{postgres['POSTGRES_USER']}@postgres:5432/{postgres['POSTGRES_DB']}"
    for name in FINRL_TUNE_SERVICES:
        environment = tune["services"][name]["environment"]
        assert environment["SPY_TUNE_STORAGE"] == expected, name
        assert "SPY_TUNE_STORAGE_PASSWORD" not in environment, f"{name}: the password is a secret file"
        assert [s["source"] for s in tune["services"][name]["secrets"]] == [SECRET], name
    dashboard = tune["services"]["optuna-dashboard"]
    assert dashboard["environment"]["OPTUNA_DASHBOARD_STORAGE"].endswith("://finrl@postgres:5432/optuna")
    assert [s["source"] for s in dashboard["secrets"]] == [SECRET]
    assert "PGPASSWORD=" in " ".join(dashboard["entrypoint"]), "libpq reads the password from the secret"


def test_password_file_defaults_to_the_ignored_secrets_folder_and_can_be_moved(tmp_path, tune) -> None:
    default = Path(tune["secrets"][SECRET]["file"])
    assert default == REPO_ROOT / "secrets" / SECRET
    ignored = REPO_ROOT / ".gitignore"
    assert "/secrets/*" in ignored.read_text().splitlines(), "real secret files stay out of git"
    assert "secrets" in (REPO_ROOT / ".dockerignore").read_text().splitlines(), "and out of the build context"
    moved = tmp_path / "password"
    config = compose_config(tmp_path, [COMPOSE_FILE, TUNE_FILE], env={"TUNE_STORAGE_PASSWORD_FILE": str(moved)})
    assert config["secrets"][SECRET]["file"] == str(moved)


def test_tune_services_run_the_full_image_read_only_with_init_and_limits(tune) -> None:
    for name in FINRL_TUNE_SERVICES:
        service = tune["services"][name]
        assert (service["image"], service["build"]["target"]) == FULL, f"{name}: the image with the tune extra"
        assert service["build"]["context"] == str(REPO_ROOT)
        assert service.get("init") is True, f"{name}: init: true so SIGTERM reaches the worker"
        assert service.get("read_only") is True and "/tmp" in service["tmpfs"], name
        assert "finrl-network" in service["networks"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name


def test_workers_wait_for_init_which_waits_for_a_healthy_database(tune) -> None:
    services = tune["services"]
    assert services["tune-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    worker = services["tune-worker"]
    assert worker["depends_on"]["tune-init"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "container_name" not in worker and "ports" not in worker, "--scale tune-worker=N needs neither"
    assert worker["restart"].startswith("on-failure")
    for name in RESULTS_SERVICES:
        assert services[name]["profiles"] == ["tune-results"], f"{name} runs after the workers, on demand"
        assert set(services[name]["depends_on"]) == {"postgres"}, f"{name} must not restart the workers"
    assert services["optuna-dashboard"]["profiles"] == ["dashboard"]


def test_volumes_are_the_main_stacks_at_the_image_folders(tmp_path, tune) -> None:
    base = compose_config(tmp_path, [COMPOSE_FILE])
    assert set(ARTIFACT_DIRS) <= set(base["volumes"]) & set(tune["volumes"])
    for name in FINRL_TUNE_SERVICES:
        for target, mount in mounts(tune["services"][name]).items():
            assert mount["type"] == "volume", f"{name} bind-mounts {target}"
            assert target == f"/app/{mount['source']}", f"{name}: volume {mount['source']} on {target}"
            assert mount["source"] in ARTIFACT_DIRS
    shared = {m["source"] for m in mounts(tune["services"]["tune-worker"]).values()}
    assert {"datasets", "results"} <= shared, "data and the walk-forward cache at the same paths for every worker"
    assert "trained_models" in {m["source"] for m in mounts(tune["services"]["tune-best"]).values()}
    assert "results" in {m["source"] for m in mounts(tune["services"]["tune-report"]).values()}


def spy_rl_arguments(service: dict[str, Any]) -> list[str]:
    """The ``spy-rl`` arguments of a service's command, also inside ``sh -c 'exec spy-rl ...'`` (where
    `config` keeps the file's ``$$``, which the container receives as ``$``)."""
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        command = shlex.split(command[2].replace("$$", "$").removeprefix("exec "))
    assert command[0] == "spy-rl", command
    return command[1:]


@pytest.mark.parametrize(
    ("env", "init_flags"),
    [({}, []), ({"TUNE_INIT_ARGS": "--source csv --csv /app/datasets/spy.csv --seeds 1,2"}, ["--source", "csv"])],
    ids=["defaults", "init-args"],
)
def test_every_command_is_one_the_cli_accepts(tmp_path, env, init_flags) -> None:
    config = compose_config(tmp_path, [COMPOSE_FILE, TUNE_FILE], ("tune-results",), env={"TUNE_STUDY": "s", **env})
    subcommands = {}
    for name in FINRL_TUNE_SERVICES:
        service = config["services"][name]
        arguments = spy_rl_arguments(service)
        if "$TUNE_STUDY" in arguments:  # sh -c: the shell expands the service's environment
            environment = service["environment"]
            arguments = [environment["TUNE_STUDY"] if a == "$TUNE_STUDY" else a for a in arguments]
            arguments = [part for a in arguments for part in (shlex.split(environment["TUNE_INIT_ARGS"])
                                                               if a == "$TUNE_INIT_ARGS" else [a])]  # fmt: skip
        assert arguments[:1] == ["tune"] and arguments[2:4] == ["--study", "s"], (name, arguments)
        subcommands[name] = arguments[1]
        outcome = CliRunner().invoke(app, [*arguments, "--help"])  # --help: the flags are parsed, nothing runs
        assert outcome.exit_code == 0, f"{name}: spy-rl {' '.join(arguments)}\n{outcome.output}"
        if name == "tune-init":
            assert arguments[4:6] == init_flags
    assert subcommands == {"tune-init": "init", "tune-worker": "run", "tune-report": "report", "tune-best": "best"}
