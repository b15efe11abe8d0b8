"""Kubernetes manifests: appliable with `kubectl apply -f k8s/` and `kubectl apply -k k8s/`, secure
and consistent with the image (kubernetes-validate --strict and kubectl kustomize: test_external_tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from unit_tests.deploy.conftest import (
    ARTIFACT_DIRS,
    K8S_DIR,
    METRICS_PORT,
    assert_entry_module,
    load_yaml_documents,
    module_of,
)

pytestmark = pytest.mark.unit

NAMESPACE = "finrl"
SECRET_TEMPLATE = K8S_DIR / "templates" / "alpaca-secret.yaml"
COMPONENTS_DIR = K8S_DIR / "components"
CUDA_IMAGE = "finrl-cuda"  # the full image built with TORCH_FLAVOUR=cuda (components/gpu-train)
# the full image (torch) trains and serves TensorBoard; the inference image (no torch) does the rest
IMAGE_OF = {
    "finrl-train": "finrl",
    "finrl-tensorboard": "finrl",
    "finrl-backtest": "finrl-inference",
    "finrl-paper-trading": "finrl-inference",
}


def applied_files() -> list[Path]:
    """What `kubectl apply -f k8s/` reads: the folder's own .yaml/.yml/.json files (no recursion)."""
    return sorted(p for p in K8S_DIR.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml", ".json"})


def resources() -> list[dict[str, Any]]:
    return [doc for path in applied_files() for doc in load_yaml_documents(path)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources() if doc["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    specs = {name: job["spec"]["template"]["spec"] for name, job in of_kind("Job").items()}
    specs.update({name: d["spec"]["template"]["spec"] for name, d in of_kind("Deployment").items()})
    return specs


def test_apply_f_sees_only_kubernetes_objects_in_dependency_order() -> None:
    """kubectl apply -f fails on a kustomization file with a .yaml name: ours is `Kustomization`."""
    docs = resources()
    assert all(doc.get("apiVersion") and doc.get("kind") for doc in docs)
    assert not any(doc["kind"] == "Kustomization" for doc in docs)
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == NAMESPACE
    assert all(doc["metadata"].get("namespace") == NAMESPACE for doc in docs[1:])
    assert not any(doc["kind"] == "Secret" for doc in docs), "real keys never live in the repository"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "Kustomization").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == [p.name for p in applied_files()]


def test_storage_claims_cover_the_artifact_folders() -> None:
    claims = of_kind("PersistentVolumeClaim")
    assert set(claims) == {f"finrl-{name.replace('_', '-')}" for name in ARTIFACT_DIRS}
    for name, spec in pod_specs().items():
        for volume in spec["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
        for container in spec["containers"] + spec.get("initContainers", []):
            for mount in container["volumeMounts"]:
                claim = next(v for v in spec["volumes"] if v["name"] == mount["name"])
                if "persistentVolumeClaim" in claim:
                    folder = claim["persistentVolumeClaim"]["claimName"].removeprefix("finrl-").replace("-", "_")
                    assert mount["mountPath"] == f"/app/{folder}", (name, mount)


def test_pods_run_non_root_with_requests_and_limits() -> None:
    for name, spec in pod_specs().items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000 and pod["fsGroup"] == 1000, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), (name, container["name"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), (name, container["name"])
            assert container["image"].split(":")[0] in {"finrl", "finrl-inference"}
            if security["readOnlyRootFilesystem"] and container["name"] != "wait-for-model":
                assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), (name, "/tmp")


def test_training_uses_the_full_image_backtest_and_paper_trading_the_inference_image() -> None:
    specs = pod_specs()
    assert set(specs) == set(IMAGE_OF)
    for name, spec in specs.items():
        for container in spec["containers"] + spec.get("initContainers", []):
            image, _, tag = container["image"].partition(":")
            assert (image, tag) == (IMAGE_OF[name], "latest"), (name, container["name"])
    kustomization = yaml.safe_load((K8S_DIR / "Kustomization").read_text())
    retaggable = {entry["name"] for entry in kustomization["images"]}
    assert retaggable == {*IMAGE_OF.values(), CUDA_IMAGE}, "every image retaggable, the GPU component's too"


def test_workloads_run_existing_entry_modules() -> None:
    commands = {name: module_of(spec["containers"][0].get("command", [])) for name, spec in pod_specs().items()}
    assert commands["finrl-train"] == "finrl.applications.spy_rl_trading.example_training"
    assert commands["finrl-backtest"] == "finrl.applications.spy_rl_trading.example_backtesting"
    assert commands["finrl-tensorboard"] is None
    assert pod_specs()["finrl-tensorboard"]["containers"][0]["command"][0] == "tensorboard"
    for module in (commands["finrl-train"], commands["finrl-backtest"], commands["finrl-paper-trading"]):
        assert_entry_module(module)


def test_jobs_and_deployments_shapes() -> None:
    jobs, deployments = of_kind("Job"), of_kind("Deployment")
    assert set(jobs) == {"finrl-train", "finrl-backtest"}
    assert set(deployments) == {"finrl-tensorboard", "finrl-paper-trading"}
    waiter = jobs["finrl-backtest"]["spec"]["template"]["spec"]["initContainers"][0]
    assert "/app/trained_models/latest/bundle.json" in waiter["command"][-1], "backtest waits for a model"
    paper = deployments["finrl-paper-trading"]["spec"]
    assert paper["replicas"] == 1 and paper["strategy"]["type"] == "Recreate", "never two traders at once"
    trader = paper["template"]["spec"]["containers"][0]
    assert trader["livenessProbe"]["exec"]["command"] == ["spy-rl", "health"]
    assert {e["name"]: e["value"] for e in trader["env"]}["SPY_BROKER"] == "alpaca"
    services = of_kind("Service")
    assert services["finrl-tensorboard"]["spec"]["ports"][0]["port"] == 6006
    assert services["finrl-paper-trading-metrics"]["spec"]["ports"][0]["port"] == METRICS_PORT


def test_config_and_secret_template_match_the_settings() -> None:
    from finrl.applications.spy_rl_trading.settings import Settings

    config = of_kind("ConfigMap")["finrl-config"]["data"]
    fields = {f"SPY_{name.upper()}" for name in Settings.model_fields}
    assert set(config) <= fields, f"unknown settings: {set(config) - fields}"
    assert config["SPY_DATA_SOURCE"] == "yahoo"
    assert config["SPY_METRICS_PORT"] == str(METRICS_PORT)
    paper = pod_specs()["finrl-paper-trading"]
    assert paper["containers"][0]["ports"][0]["containerPort"] == METRICS_PORT
    (template,) = load_yaml_documents(SECRET_TEMPLATE)
    secret_volume = next(v for v in paper["volumes"] if "secret" in v)["secret"]
    assert secret_volume["secretName"] == template["metadata"]["name"]
    assert {item["path"] for item in secret_volume["items"]} == set(template["stringData"])
    assert set(template["stringData"]) == {"alpaca_api_key", "alpaca_api_secret"}, "settings' secret file names"
    assert all(value.startswith("REPLACE_") for value in template["stringData"].values()), "no real keys"
    mount = next(m for m in paper["containers"][0]["volumeMounts"] if m["name"] == "alpaca")
    assert mount["mountPath"] == "/run/secrets" and mount["readOnly"] is True


def test_secret_files_are_read_by_the_settings(tmp_path, monkeypatch) -> None:
    """The file names in the Secret (and Compose's secrets) are what the settings read."""
    from finrl.applications.spy_rl_trading.settings import load_settings

    (tmp_path / "alpaca_api_key").write_text("key-from-file\n")
    (tmp_path / "alpaca_api_secret").write_text("secret-from-file\n")
    monkeypatch.setenv("SPY_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.alpaca_api_key.get_secret_value() == "key-from-file"
    assert settings.alpaca_api_secret.get_secret_value() == "secret-from-file"


def test_manifests_name_no_host_paths() -> None:
    for path in [*applied_files(), SECRET_TEMPLATE, K8S_DIR / "Kustomization"]:
        for doc in load_yaml_documents(path):
            for container in containers(doc):
                for volume in container.get("volumeMounts", []):
                    assert volume["mountPath"].startswith(("/app/", "/tmp", "/run/secrets")), volume
    assert not any("hostPath" in str(doc) for doc in resources())


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


# ---------------------------------------------------------------------------- components (k8s/components/)
# Optional parts as kustomize Components, like k8s/tune/external-db: kustomize refuses an overlay inside
# the folder of its base (k8s/), so the user's overlay (or k8s/Kustomization's `components:`) names them.
# Rendered here by a small strategic merge of each patch onto the base, enough for these patches: maps
# merge, lists of named items (containers, env, ports) merge by name, other values are replaced.
# kubectl kustomize renders them for real in test_external_tools.


def components() -> dict[str, dict[str, Any]]:
    return {
        path.parent.name: yaml.safe_load(path.read_text()) for path in sorted(COMPONENTS_DIR.glob("*/Kustomization"))
    }


def component_patches(name: str) -> list[dict[str, Any]]:
    (patches,) = [c["patches"] for n, c in components().items() if n == name]
    assert all(set(entry) == {"path"} for entry in patches), "patches are files (validated on their own)"
    return [doc for entry in patches for doc in load_yaml_documents(COMPONENTS_DIR / name / entry["path"])]


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        merged_list = [strategic_merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        patched = {i["name"] for i in patch}
        return [item for item in base if item["name"] not in patched] + merged_list
    return patch


def rendered(name: str) -> list[dict[str, Any]]:
    """k8s/ with the component's patches applied (each patch names one base object)."""
    docs = resources()
    for patch in component_patches(name):
        key = (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"])
        (index,) = [
            i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) == key
        ]
        docs[index] = strategic_merge(docs[index], patch)
    return docs


def test_components_are_documented_and_patch_existing_objects() -> None:
    found = components()
    assert set(found) == {"public-tensorboard", "gpu-train"}
    kustomization_text = (K8S_DIR / "Kustomization").read_text()
    base = {(d["kind"], d["metadata"]["name"]) for d in resources()}
    for name, component in found.items():
        assert component["kind"] == "Component", name
        assert f"#   - components/{name}" in kustomization_text, f"{name}: the documented switch in k8s/Kustomization"
        for patch in component_patches(name):
            assert (patch["kind"], patch["metadata"]["name"]) in base, (name, patch["metadata"]["name"])
            assert patch["metadata"]["namespace"] == NAMESPACE
    assert "components" not in yaml.safe_load(kustomization_text), "off by default"


def test_tensorboard_is_private_by_default_and_public_only_to_source_ranges() -> None:
    import ipaddress

    service = of_kind("Service")["finrl-tensorboard"]["spec"]
    assert service["type"] == "ClusterIP", "no login: reached with kubectl port-forward by default"
    assert "kubectl port-forward -n finrl svc/finrl-tensorboard 6006" in (K8S_DIR / "50-tensorboard.yaml").read_text()
    (public,) = [
        d
        for d in rendered("public-tensorboard")
        if d["kind"] == "Service" and d["metadata"]["name"] == "finrl-tensorboard"
    ]
    spec = public["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["ports"] == service["ports"] and spec["selector"] == service["selector"], (
        "only the type and ranges change"
    )
    ranges = [ipaddress.ip_network(cidr) for cidr in spec["loadBalancerSourceRanges"]]
    assert ranges and all(r.prefixlen > 0 for r in ranges), "never open to the whole internet"
    others = [d for d in rendered("public-tensorboard") if d["metadata"]["name"] != "finrl-tensorboard"]
    assert others == [d for d in resources() if d["metadata"]["name"] != "finrl-tensorboard"]


def test_gpu_component_trains_the_cuda_image_on_one_gpu() -> None:
    (job,) = [d for d in rendered("gpu-train") if d["kind"] == "Job" and d["metadata"]["name"] == "finrl-train"]
    (train,) = job["spec"]["template"]["spec"]["containers"]
    (base_train,) = pod_specs()["finrl-train"]["containers"]
    assert train["image"] == f"{CUDA_IMAGE}:latest"
    assert {e["name"]: e["value"] for e in train["env"]}["SPY_DEVICE"] == "cuda", "no silent CPU run"
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert train["resources"]["limits"]["cpu"] == base_train["resources"]["limits"]["cpu"], "the rest stays"
    assert train["command"] == base_train["command"] and train["volumeMounts"] == base_train["volumeMounts"]
    assert train["envFrom"] == base_train["envFrom"] and train["securityContext"] == base_train["securityContext"]
    for kind_name, spec in pod_specs().items():
        if kind_name != "finrl-train":
            assert "nvidia.com/gpu" not in str(spec), f"{kind_name} needs no GPU"
