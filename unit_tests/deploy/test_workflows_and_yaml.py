"""GitHub workflows against the vendored workflow schema, yamllint over every deployment YAML file,
and the CI entry point's handling of the Docker sandbox."""

from __future__ import annotations

import re

import pytest
import yaml

from unit_tests.deploy.conftest import K8S_DIR, REPO_ROOT, check, tool

pytestmark = pytest.mark.unit

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(document: dict) -> list[dict]:
    return [step for job in document["jobs"].values() for step in job["steps"]]


def test_workflows_match_the_github_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2
    check([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files])


def test_ci_workflow_lints_and_runs_make_test() -> None:
    runs = " ".join(step.get("run", "") for step in steps(workflow("ci.yml")))
    assert "make lint" in runs and "make test" in runs and "make venv" in runs


def test_docker_workflow_builds_tests_and_smoke_trains() -> None:
    runs = "\n".join(step.get("run", "") for step in steps(workflow("docker.yml")))
    assert "make wheelhouse" in runs
    assert "docker build --target app" in runs and "docker build --target test" in runs
    assert "docker build --target inference -t finrl-inference:latest" in runs, "the slim image is built too"
    assert re.search(r"docker run --rm finrl:test\b", runs), "unit tests in the container"
    assert "example_training --timesteps 1024" in runs and "SPY_DATA_SOURCE=sample" in runs
    assert "pytest -m docker unit_tests/deploy" in runs


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


def test_ci_starts_and_always_stops_the_docker_sandbox() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert "../shared/tools/docker-sandbox" in script
    trap = re.search(r"^\s*trap .*down.* EXIT", script, re.MULTILINE)
    start = script.find(" up")
    assert trap and start != -1 and trap.start() < script.find("base-image"), "down is trapped before the build"
