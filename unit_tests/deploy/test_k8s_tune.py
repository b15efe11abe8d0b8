"""k8s/tune: PostgreSQL (StatefulSet + Service, or an external database through the external-db
component), the tune-init Job, the Indexed Job of workers and the best-export Job. Appliable with
`kubectl apply -k k8s/tune/` (and `-f`), secure like k8s/, consistent with the CLI and the settings
(kubernetes-validate --strict and kubectl kustomize: test_external_tools; the init containers' wait
script against a real study: test_k8s_tune_wait)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.deploy.conftest import ARTIFACT_DIRS, K8S_DIR, load_yaml_documents
from unit_tests.deploy.test_k8s import of_kind as main_of_kind

pytestmark = pytest.mark.unit

TUNE_DIR = K8S_DIR / "tune"
SECRET_TEMPLATE = TUNE_DIR / "templates" / "tune-storage-secret.yaml"
EXTERNAL_DB = TUNE_DIR / "external-db"
NAMESPACE = "finrl"
SECRET = "tune_storage_password"  # the settings' secret file name
WAIT_SCRIPT = "/app/tune-wait/wait_for_study.py"
FINRL_IMAGE = "finrl:latest"
POSTGRES_IMAGE = "postgres:16"


def tune_files() -> list[Path]:
    """What `kubectl apply -f k8s/tune/` reads: the folder's own .yaml files."""
    return sorted(p for p in TUNE_DIR.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml", ".json"})


def tune_resources() -> list[dict[str, Any]]:
    return [doc for path in tune_files() for doc in load_yaml_documents(path)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in tune_resources() if doc["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    specs = {name: job["spec"]["template"]["spec"] for name, job in of_kind("Job").items()}
    specs.update({name: s["spec"]["template"]["spec"] for name, s in of_kind("StatefulSet").items()})
    return specs


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


def config() -> dict[str, str]:
    return of_kind("ConfigMap")["finrl-tune-config"]["data"]


def test_kustomization_lists_every_manifest_and_no_secret() -> None:
    kustomization = yaml.safe_load((TUNE_DIR / "Kustomization").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == [p.name for p in tune_files()]
    assert {entry["name"] for entry in kustomization["images"]} == {"finrl", "postgres"}, "both retaggable"
    docs = tune_resources()
    assert all(doc["metadata"]["namespace"] == NAMESPACE for doc in docs), "the namespace of k8s/"
    assert not any(doc["kind"] in {"Secret", "Namespace", "PersistentVolumeClaim"} for doc in docs), (
        "no password in the repository; the namespace and the artifact claims are k8s/'s"
    )
    assert {doc["kind"] for doc in docs} == {"ConfigMap", "StatefulSet", "Service", "Job"}


def test_pods_run_non_root_read_only_with_requests_and_limits() -> None:
    for name, spec in pod_specs().items():
        pod = spec["securityContext"]
        uid = 999 if name == "finrl-tune-postgres" else 1000  # the official image's postgres user, finrl's
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid and pod["fsGroup"] == uid, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in all_containers(spec):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert security["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert security["capabilities"]["drop"] == ["ALL"], (name, container["name"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), (name, container["name"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), (name, container["name"])
            expected = POSTGRES_IMAGE if name == "finrl-tune-postgres" else FINRL_IMAGE
            assert container["image"] == expected, (name, container["name"])
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), (name, container["name"])


def test_workers_are_an_indexed_job_that_survives_evictions() -> None:
    job = of_kind("Job")["finrl-tune-worker"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["parallelism"] == job["completions"] >= 2, "every index runs until the study is done"
    assert job["backoffLimit"] >= job["completions"]
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "Ignore" and rule["onPodConditions"] == [{"type": "DisruptionTarget"}]
    spec = job["template"]["spec"]
    assert spec["restartPolicy"] == "Never", "a pod failure policy needs it"
    assert spec["terminationGracePeriodSeconds"] >= 60, "SIGTERM ends the trial after its current fold"
    worker = spec["containers"][0]
    assert worker["command"] == ["spy-rl", "tune", "run", "--study", "$(TUNE_STUDY)", "--n-trials", "$(TUNE_N_TRIALS)"]
    names = {e["name"] for c in all_containers(spec) for e in c.get("env", [])}
    assert "JOB_COMPLETION_INDEX" not in names, "Kubernetes sets the index itself"


def test_worker_index_names_the_worker(monkeypatch) -> None:
    """What the Indexed Job's JOB_COMPLETION_INDEX becomes in the logs and the trials' user attributes."""
    from finrl.research.tune.worker import worker_id

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    assert worker_id() == "index-3"


def test_jobs_wait_for_each_other_through_the_study() -> None:
    """No Job ordering in Kubernetes: init waits for the database, workers for the study, the export
    for the finished study and then writes the report before training the best bundles."""
    specs = pod_specs()
    expected = {"finrl-tune-init": "database", "finrl-tune-worker": "defined", "finrl-tune-best": "done"}
    for name, stage in expected.items():
        wait = specs[name]["initContainers"][0]
        assert wait["command"] == ["python", WAIT_SCRIPT, stage], name
        mount = next(m for m in wait["volumeMounts"] if m["mountPath"] == str(Path(WAIT_SCRIPT).parent))
        volume = next(v for v in specs[name]["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == "finrl-tune-wait"
    best = specs["finrl-tune-best"]
    assert [c["name"] for c in best["initContainers"]] == ["wait-for-study", "tune-report"]
    assert best["initContainers"][1]["command"][:3] == ["spy-rl", "tune", "report"]
    assert best["containers"][0]["command"][:3] == ["spy-rl", "tune", "best"]
    assert "wait_for_study.py" in of_kind("ConfigMap")["finrl-tune-wait"]["data"]


def test_claims_are_the_main_stacks_at_the_image_folders() -> None:
    claims = set(main_of_kind("PersistentVolumeClaim"))
    for name, spec in pod_specs().items():
        if name == "finrl-tune-postgres":
            continue  # its own claim (volumeClaimTemplates)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in all_containers(spec):
            for mount in container["volumeMounts"]:
                claim = volumes[mount["name"]].get("persistentVolumeClaim")
                if claim:
                    assert claim["claimName"] in claims, (name, claim)
                    folder = claim["claimName"].removeprefix("finrl-").replace("-", "_")
                    assert folder in ARTIFACT_DIRS and mount["mountPath"] == f"/app/{folder}", (name, mount)
                else:
                    assert mount["mountPath"].startswith(("/app/", "/tmp", "/run/secrets")), (name, mount)
    (template,) = of_kind("StatefulSet")["finrl-tune-postgres"]["spec"]["volumeClaimTemplates"]
    assert template["spec"]["resources"]["requests"]["storage"]
    worker = {m["mountPath"] for m in pod_specs()["finrl-tune-worker"]["containers"][0]["volumeMounts"]}
    assert {"/app/datasets", "/app/results"} <= worker, "data and the walk-forward cache shared by the workers"
    best = {m["mountPath"] for m in pod_specs()["finrl-tune-best"]["containers"][0]["volumeMounts"]}
    assert "/app/trained_models" in best, "the bundles go where the backtest and the paper trader read them"
    assert not any("hostPath" in str(doc) for doc in tune_resources())


def test_password_comes_from_the_secret_template_as_the_settings_file() -> None:
    (template,) = load_yaml_documents(SECRET_TEMPLATE)
    assert template["kind"] == "Secret" and template["metadata"]["namespace"] == NAMESPACE
    assert set(template["stringData"]) == {SECRET}
    assert all(value.startswith("REPLACE_") for value in template["stringData"].values()), "no real password"
    for name, spec in pod_specs().items():
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        assert volume["secret"]["secretName"] == template["metadata"]["name"], name
        assert volume["secret"]["items"] == [{"key": SECRET, "path": SECRET}], name
        for container in all_containers(spec):
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
            assert mount["mountPath"] == "/run/secrets" and mount["readOnly"] is True, (name, container["name"])
    postgres = {e["name"]: e["value"] for e in pod_specs()["finrl-tune-postgres"]["containers"][0]["env"]}
    assert postgres["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{SECRET}"
    assert "POSTGRES_PASSWORD" not in postgres
    assert "SPY_TUNE_STORAGE_PASSWORD" not in config()


def test_storage_url_names_the_postgres_service_user_and_database() -> None:
    url = make_url(config()["SPY_TUNE_STORAGE"])
    statefulset = of_kind("StatefulSet")["finrl-tune-postgres"]
    service = of_kind("Service")["finrl-tune-postgres"]
    postgres = {e["name"]: e["value"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert url.drivername == "postgresql+psycopg" and url.password is None
    assert (url.username, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert (url.host, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert postgres["PGDATA"].startswith("/var/lib/postgresql/data/"), "below the mount point: lost+found stays out"


def test_config_holds_settings_and_the_study_parameters() -> None:
    from finrl.applications.spy_rl_trading.settings import Settings

    fields = {f"SPY_{name.upper()}" for name in Settings.model_fields}
    names = set(config())
    assert {n for n in names if n.startswith("SPY_")} <= fields, "unknown settings"
    assert {n for n in names if not n.startswith("SPY_")} == {"TUNE_STUDY", "TUNE_N_TRIALS", "TUNE_BEST_SEEDS"}
    assert int(config()["TUNE_N_TRIALS"]) >= 1


def expand(arguments: list[str]) -> list[str]:
    """Kubernetes' $(VAR) expansion from the ConfigMap (every tune container takes it with envFrom)."""
    for name, value in config().items():
        arguments = [a.replace(f"$({name})", value) for a in arguments]
    return arguments


def test_every_command_is_one_the_cli_accepts() -> None:
    seen = {}
    for name, spec in pod_specs().items():
        for container in all_containers(spec):
            command = container.get("command", [])
            if command[:1] != ["spy-rl"]:
                continue
            assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["finrl-tune-config"]
            arguments = expand(command[1:] + container.get("args", []))
            assert "$(" not in " ".join(arguments), (name, arguments)
            outcome = CliRunner().invoke(app, [*arguments, "--help"])  # the flags parse; nothing runs
            assert outcome.exit_code == 0, f"{name}: spy-rl {' '.join(arguments)}\n{outcome.output}"
            seen[container["name"]] = arguments[1]
    assert seen == {"tune-init": "init", "tune-worker": "run", "tune-report": "report", "tune-best": "best"}


def test_external_db_component_drops_the_statefulset_and_points_the_url_elsewhere() -> None:
    component = yaml.safe_load((EXTERNAL_DB / "Kustomization").read_text())
    assert component["kind"] == "Component"
    deleted = [yaml.safe_load(p["patch"]) for p in component["patches"] if "patch" in p]
    assert {(d["kind"], d["metadata"]["name"], d["$patch"]) for d in deleted} == {
        ("StatefulSet", "finrl-tune-postgres", "delete"),
        ("Service", "finrl-tune-postgres", "delete"),
    }
    (path,) = [p["path"] for p in component["patches"] if "path" in p]
    (patch,) = load_yaml_documents(EXTERNAL_DB / path)
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "finrl-tune-config")
    assert set(patch["data"]) == {"SPY_TUNE_STORAGE"}
    url = make_url(patch["data"]["SPY_TUNE_STORAGE"])
    assert url.drivername == "postgresql+psycopg" and url.password is None, "the password stays in the Secret"
    kustomization = (TUNE_DIR / "Kustomization").read_text()
    assert "#   - external-db" in kustomization, "the documented switch"
