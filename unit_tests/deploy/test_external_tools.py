"""The deployment files through the tools that own their formats, each run as a process: hadolint
(the Dockerfile and the test's postgres stand-in), kubernetes-validate and kubectl kustomize (k8s/,
k8s/tune/ with and without its external-db component), check-jsonschema (GitHub workflows) and
yamllint (every deployment YAML file). Integration tests: the static checks of the same files
(test_dockerfile, test_k8s, test_workflows_and_yaml) are the unit ones; Compose's own checks are
in test_compose."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from unit_tests.deploy.conftest import K8S_DIR, REPO_ROOT, check, tool
from unit_tests.deploy.test_dockerfile import DOCKERFILE
from unit_tests.deploy.test_k8s import (
    COMPONENTS_DIR,
    SECRET_TEMPLATE,
    applied_files,
    components,
    containers,
    rendered,
    resources,
)
from unit_tests.deploy.test_k8s_tune import EXTERNAL_DB, TUNE_DIR, tune_files, tune_resources
from unit_tests.deploy.test_k8s_tune import SECRET_TEMPLATE as TUNE_SECRET_TEMPLATE
from unit_tests.deploy.test_workflows_and_yaml import WORKFLOWS

pytestmark = pytest.mark.integration


POSTGRES_STANDIN = REPO_ROOT / "unit_tests" / "deploy" / "postgres-standin" / "Dockerfile"


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, POSTGRES_STANDIN], ids=["finrl", "postgres-standin"])
def test_hadolint_passes(dockerfile: Path) -> None:
    check([tool("hadolint"), "--failure-threshold", "info", str(dockerfile)])


def test_kubernetes_validate_strict() -> None:
    files = [*applied_files(), SECRET_TEMPLATE, *tune_files(), TUNE_SECRET_TEMPLATE, EXTERNAL_DB / "storage.yaml"]
    files += sorted(COMPONENTS_DIR.glob("*/*.yaml"))  # the components' patches
    check([tool("kubernetes-validate"), "--strict", "--quiet", *map(str, files)])


@pytest.fixture
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (the kustomize build is checked where it is)")
    return path


def user_overlay(tmp_path: Path, base_dir: Path, component: str) -> Path:
    """An overlay of the user's own: ``base_dir`` and one of its components (kustomize takes relative paths only)."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(base_dir, overlay)
    (overlay / "kustomization.yaml").write_text(f"resources: [{base}]\ncomponents: [{base}/{component}]\n")
    return overlay


def test_kubectl_kustomize_builds_valid_resources(tmp_path, kubectl: str) -> None:
    built = check([kubectl, "kustomize", str(K8S_DIR)]).stdout
    out = tmp_path / "built.yaml"
    out.write_text(built)
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == len(resources())
    images = {c["image"] for d in docs for c in containers(d)}
    assert images == {"finrl:latest", "finrl-inference:latest"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kustomize" for d in docs)
    check([tool("kubernetes-validate"), "--strict", "--quiet", str(out)])


def test_kubectl_kustomize_builds_the_tune_stack(tmp_path, kubectl: str) -> None:
    built = check([kubectl, "kustomize", str(TUNE_DIR)]).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == len(tune_resources())
    assert {c["image"] for d in docs for c in containers(d)} == {"finrl:latest", "postgres:16"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kustomize" for d in docs)
    (tmp_path / "tune.yaml").write_text(built)
    check([tool("kubernetes-validate"), "--strict", "--quiet", str(tmp_path / "tune.yaml")])


def test_kubectl_kustomize_external_db_component(tmp_path, kubectl: str) -> None:
    """An overlay of the user's own, as the component's comment shows: no StatefulSet, the URL changed."""
    overlay = user_overlay(tmp_path, TUNE_DIR, "external-db")
    built = check([kubectl, "kustomize", str(overlay)]).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(d["kind"] for d in tune_resources() if d["kind"] not in {"StatefulSet", "Service"})
    (tune_config,) = [d for d in docs if d["metadata"]["name"] == "finrl-tune-config"]
    assert tune_config["data"]["SPY_TUNE_STORAGE"].startswith("postgresql+psycopg://finrl@db.example.com:")
    assert tune_config["data"]["TUNE_STUDY"], "the rest of the ConfigMap stays"
    (tmp_path / "external.yaml").write_text(built)
    check([tool("kubernetes-validate"), "--strict", "--quiet", str(tmp_path / "external.yaml")])


@pytest.mark.parametrize("name", sorted(components()))
def test_kubectl_kustomize_every_component(tmp_path, kubectl: str, name: str) -> None:
    """Each component in an overlay of the user's own (as its comment shows), and enabled in a copy of
    k8s/Kustomization (the commented switch): the same objects as the unit test's strategic merge,
    the images retagged as the base's `images:` says, valid for the API server."""
    overlay = user_overlay(tmp_path, K8S_DIR, f"components/{name}")
    switched = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, switched)
    text = (switched / "Kustomization").read_text()
    (switched / "Kustomization").write_text(
        text.replace("# components:\n", "components:\n").replace(
            f"#   - components/{name}\n", f"  - components/{name}\n"
        )
    )
    expected = rendered(name)
    for directory in (overlay, switched):
        built = check([kubectl, "kustomize", str(directory)]).stdout
        docs = [d for d in yaml.safe_load_all(built) if d]
        for doc in docs:
            doc["metadata"]["labels"].pop("app.kubernetes.io/managed-by")
            for template in (doc.get("spec", {}).get("template", {}).get("metadata", {}),):
                template.get("labels", {}).pop("app.kubernetes.io/managed-by", None)
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(docs, key=key) == sorted(expected, key=key), f"{name} in {directory.name}"
        (tmp_path / "built.yaml").write_text(built)
        check([tool("kubernetes-validate"), "--strict", "--quiet", str(tmp_path / "built.yaml")])


def test_workflows_match_the_github_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2
    check([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files])


def test_yamllint() -> None:
    files = [
        *REPO_ROOT.glob("docker-compose*.yml"),
        *(REPO_ROOT / "unit_tests" / "deploy").glob("docker-compose*.yml"),  # the e2e test's override
        REPO_ROOT / "prometheus.yml",
        REPO_ROOT / ".yamllint.yaml",
        *K8S_DIR.rglob("*.yaml"),
        K8S_DIR / "Kustomization",
        TUNE_DIR / "Kustomization",
        EXTERNAL_DB / "Kustomization",
        *COMPONENTS_DIR.glob("*/Kustomization"),
        *(REPO_ROOT / "monitoring").rglob("*.yml"),
        *WORKFLOWS.glob("*.yml"),
    ]
    check([tool("yamllint"), "--strict", "-c", str(REPO_ROOT / ".yamllint.yaml"), *map(str, files)])
