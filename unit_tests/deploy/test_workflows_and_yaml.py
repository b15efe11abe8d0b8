"""GitHub workflows' steps and the CI entry point's handling of the Docker sandbox (the workflow schema
and yamllint over every deployment YAML file: test_external_tools)."""

from __future__ import annotations

import re

import pytest
import yaml

from unit_tests.deploy.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(document: dict) -> list[dict]:
    return [step for job in document["jobs"].values() for step in job["steps"]]


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


def test_ci_starts_and_always_stops_the_docker_sandbox() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert "../shared/tools/docker-sandbox" in script
    trap = re.search(r"^\s*trap .*down.* EXIT", script, re.MULTILINE)
    start = script.find(" up")
    assert trap and start != -1 and trap.start() < script.find("base-image"), "down is trapped before the build"
