"""GitHub workflows' steps (the images, the multi-platform build, push and Trivy scan), `make
docker-buildx` (its commands, by `make -n`), .trivyignore's policy and the CI entry point's handling of
the Docker sandbox (the workflow schema and yamllint over every deployment YAML file: test_external_tools)."""

from __future__ import annotations

import re
import shlex
import subprocess

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
    names = [step.get("uses", step.get("name", "")) for step in workflow("docker.yml")["jobs"]["image"]["steps"]]
    qemu = next(i for i, name in enumerate(names) if name.startswith("docker/setup-qemu-action@"))
    assert qemu < names.index("Compose end-to-end test"), "the e2e test's arm64 build runs under QEMU"


def test_ci_starts_and_always_stops_the_docker_sandbox() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert "../shared/tools/docker-sandbox" in script
    trap = re.search(r"^\s*trap .*down.* EXIT", script, re.MULTILINE)
    start = script.find(" up")
    assert trap and start != -1 and trap.start() < script.find("base-image"), "down is trapped before the build"


def multiarch() -> dict:
    return workflow("docker.yml")["jobs"]["multiarch"]


def uses(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if str(step.get("uses", "")).startswith(f"{action}@")]


def test_docker_workflow_builds_both_platforms_with_a_layer_cache() -> None:
    job = multiarch()
    assert {entry["target"] for entry in job["strategy"]["matrix"]["include"]} == {"app", "inference"}
    assert uses(job, "docker/setup-qemu-action") and uses(job, "docker/setup-buildx-action")
    build, scan_image, _publish = uses(job, "docker/build-push-action")
    assert build["with"]["push"] is False, "the build only fills the cache: the push comes after the scan"
    assert job["env"]["PLATFORMS"] == "linux/amd64,linux/arm64" and build["with"]["platforms"] == "${{ env.PLATFORMS }}"
    assert build["with"]["cache-from"].startswith("type=gha") and build["with"]["cache-to"].startswith("type=gha")
    assert "mode=max" in build["with"]["cache-to"]
    assert scan_image["with"]["platforms"] == "linux/amd64" and scan_image["with"]["load"] is True
    assert scan_image["with"]["cache-from"] == build["with"]["cache-from"], "the scanned image comes from the cache"
    wheels = next(step for step in job["steps"] if "wheelhouse" in step.get("name", ""))
    assert "manylinux_2_28_aarch64" in wheels["run"] and "make wheelhouse" in wheels["run"], "torch for both"


def test_docker_workflow_pushes_to_ghcr_only_on_version_tags_with_an_sbom() -> None:
    document = workflow("docker.yml")
    on = document.get("on", document.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["tags"] == ["v*"] and on["push"]["branches"] == ["main"]
    job = multiarch()
    assert job["env"]["PUSH"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    (login,) = uses(job, "docker/login-action")
    assert login["if"] == "env.PUSH == 'true'" and login["with"]["registry"] == "ghcr.io"
    publish = uses(job, "docker/build-push-action")[-1]
    assert publish["if"] == "env.PUSH == 'true'" and publish["with"]["push"] is True
    assert (
        publish["with"]["platforms"] == "${{ env.PLATFORMS }}"
        and publish["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    )
    assert publish["with"]["sbom"] is True and publish["with"]["provenance"] == "mode=max"
    # nothing is published that failed a test or the scan: the job waits for the tested image job, and the
    # push is its last step, after Trivy (a failed step skips the steps after it)
    assert job["needs"] == "image"
    steps = job["steps"]
    (scan,) = (step for step in uses(job, "aquasecurity/trivy-action") if step["with"].get("exit-code") == "1")
    assert steps.index(scan) < steps.index(login) < steps.index(publish) and steps[-1] is publish
    assert "always()" not in login["if"] + publish["if"]
    (meta,) = uses(job, "docker/metadata-action")
    assert meta["with"]["images"].startswith("ghcr.io/")
    assert job["permissions"]["packages"] == "write" and workflow("docker.yml")["permissions"] == {"contents": "read"}


def test_docker_workflow_scans_with_trivy_and_uploads_the_image_sboms() -> None:
    job = multiarch()
    scan, sbom = uses(job, "aquasecurity/trivy-action")
    assert scan["with"]["severity"] == "HIGH,CRITICAL" and scan["with"]["exit-code"] == "1", "they fail the job"
    assert scan["with"]["trivyignores"] == ".trivyignore" and scan["with"]["image-ref"] == "${{ matrix.image }}:scan"
    assert sbom["with"]["format"] == "cyclonedx"
    uploads = uses(job, "actions/upload-artifact")
    assert [step["with"]["path"] for step in uploads] == [sbom["with"]["output"]]
    image_job = workflow("docker.yml")["jobs"]["image"]
    assert any(step["with"]["path"] == "build/sbom.cdx.json" for step in uses(image_job, "actions/upload-artifact"))


def test_trivyignore_states_the_policy_and_a_reason_per_entry() -> None:
    lines = (REPO_ROOT / ".trivyignore").read_text().splitlines()
    header = " ".join(lines[:10])
    assert "HIGH or CRITICAL" in header and "reason" in header, "the policy, at the top"
    for number, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            entry = line.split()
            assert re.fullmatch(r"(CVE|GHSA|DLA|DSA)-[\w-]+", entry[0]), f"line {number + 1}: one ID: {line!r}"
            assert lines[number - 1].startswith("# ") and len(lines[number - 1]) > 12, (
                f"line {number + 1}: a reason above"
            )
            assert any(field.startswith("exp:") for field in entry[1:]), f"line {number + 1}: an expiry date"


def test_ci_claims_no_vulnerability_scan() -> None:
    """Trivy needs its database from the network: .ci/run neither runs nor mentions it."""
    assert "trivy" not in (REPO_ROOT / ".ci" / "run").read_text().lower()


def make_commands(*variables: str) -> list[list[str]]:
    """The `docker buildx` commands `make -n docker-buildx` prints (joined lines, split like a shell)."""
    result = subprocess.run(
        ["make", "-n", "docker-buildx", *variables],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = result.stdout.replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip().startswith("docker buildx build")]


def test_make_docker_buildx_builds_both_platforms_and_pushes_only_to_a_registry() -> None:
    local = make_commands()
    assert [command[command.index("--target") + 1] for command in local] == ["inference", "app"]
    for command in local:
        assert command[command.index("--platform") + 1] == "linux/amd64,linux/arm64"
        assert "--push" not in command and "type=cacheonly" in command, "no registry: built, not pushed"
        assert command[-1] == "." and command[command.index("--builder") + 1] == "finrl-multiarch"
    assert {command[command.index("-t") + 1] for command in local} == {"finrl:latest", "finrl-inference:latest"}
    pushed = make_commands("REGISTRY=ghcr.io/acme", "IMAGE_TAG=1.2.3")
    for command in pushed:
        assert "--push" in command and "--sbom=true" in command and "--output" not in command
    assert {command[command.index("-t") + 1] for command in pushed} == {
        "ghcr.io/acme/finrl:1.2.3",
        "ghcr.io/acme/finrl-inference:1.2.3",
    }
    (one,) = make_commands("BUILDX_IMAGES=inference", "BUILDX_PLATFORMS=linux/arm64")
    assert one[one.index("--platform") + 1] == "linux/arm64" and one[one.index("--target") + 1] == "inference"
