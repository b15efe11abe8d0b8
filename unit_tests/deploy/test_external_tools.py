"""The deployment files through the tools that own their formats, each run as a process: hadolint
(Dockerfile), kubernetes-validate and kubectl kustomize (k8s/), check-jsonschema (GitHub workflows)
and yamllint (every deployment YAML file). Integration tests: the static checks of the same files
(test_dockerfile, test_k8s, test_workflows_and_yaml) are the unit ones; Compose's own checks are
in test_compose."""

from __future__ import annotations

import shutil

import pytest
import yaml

from unit_tests.deploy.conftest import K8S_DIR, REPO_ROOT, check, tool
from unit_tests.deploy.test_dockerfile import DOCKERFILE
from unit_tests.deploy.test_k8s import SECRET_TEMPLATE, applied_files, containers, resources
from unit_tests.deploy.test_workflows_and_yaml import WORKFLOWS

pytestmark = pytest.mark.integration


def test_hadolint_passes() -> None:
    check([tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)])


def test_kubernetes_validate_strict() -> None:
    files = [str(p) for p in applied_files()] + [str(SECRET_TEMPLATE)]
    check([tool("kubernetes-validate"), "--strict", "--quiet", *files])


def test_kubectl_kustomize_builds_valid_resources(tmp_path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the kustomize build is checked where it is)")
    built = check([kubectl, "kustomize", str(K8S_DIR)]).stdout
    out = tmp_path / "built.yaml"
    out.write_text(built)
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == len(resources())
    images = {c["image"] for d in docs for c in containers(d)}
    assert images == {"finrl:latest", "finrl-inference:latest"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kustomize" for d in docs)
    check([tool("kubernetes-validate"), "--strict", "--quiet", str(out)])


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
        *(REPO_ROOT / "monitoring").rglob("*.yml"),
        *WORKFLOWS.glob("*.yml"),
    ]
    check([tool("yamllint"), "--strict", "-c", str(REPO_ROOT / ".yamllint.yaml"), *map(str, files)])
