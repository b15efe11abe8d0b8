"""The supply-chain checks are wired where the docs say: .ci/run runs bandit and the tests with the coverage
floor (the README's Development section names the same commands and the same floor), the GitHub workflows
also run pip-audit (never .ci/run: this index has no vulnerability data) and upload the SBOM, and every
allowlisted vulnerability carries a reason."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from unit_tests.deploy.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

CI_RUN = REPO_ROOT / ".ci" / "run"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def commands(text: str) -> list[str]:
    """The script's command lines (comments and echo lines left out)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("echo")]


def make_targets(lines: list[str]) -> set[str]:
    return {match for line in lines for match in re.findall(r"\bmake ([a-z][a-z-]*)", line)}


def development_section() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Development\n", 1)[1].split("\n## ", 1)[0]


def workflow_runs(name: str) -> list[dict]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    return [step for job in document["jobs"].values() for step in job["steps"]]


def test_ci_runs_bandit_and_the_tests_with_the_coverage_floor_but_not_pip_audit() -> None:
    targets = make_targets(commands(CI_RUN.read_text()))
    assert {"venv", "lint", "audit", "test"} <= targets
    assert any("make test COVERAGE=1" in line for line in commands(CI_RUN.read_text()))  # README's, with the floor
    assert "pip-audit" not in targets and "pip-audit" not in " ".join(commands(CI_RUN.read_text()))


def test_the_readme_names_the_commands_and_the_floor_of_ci() -> None:
    section = development_section()
    documented = make_targets(section.splitlines())
    ci = make_targets(commands(CI_RUN.read_text())) - {"venv"}  # make venv is the README's first section
    assert ci <= documented, f"README's Development section lacks {sorted(ci - documented)}"
    floor = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["report"]["fail_under"]
    assert floor >= 85, "issue 13: the coverage floor is 85% of finrl/ lines"
    assert re.search(rf"fails under {floor:g}%", section), f"README's Development section must state the {floor}% floor"


def test_github_ci_runs_bandit_coverage_and_pip_audit() -> None:
    runs = [step.get("run", "") for step in workflow_runs("ci.yml")]
    targets = make_targets(runs)
    assert {"audit", "test", "pip-audit"} <= targets
    assert any("make test COVERAGE=1" in run for run in runs)


def test_docker_workflow_uploads_the_sbom() -> None:
    steps = workflow_runs("docker.yml")
    assert "sbom" in make_targets([step.get("run", "") for step in steps])
    uploads = [step for step in steps if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    assert any(step["with"]["path"] == "build/sbom.cdx.json" for step in uploads)


def test_every_allowlisted_vulnerability_has_a_reason() -> None:
    wrong = []
    for number, line in enumerate((REPO_ROOT / ".pip-audit-allowlist").read_text().splitlines(), start=1):
        entry, _, reason = line.partition("#")
        if entry.strip() and (len(entry.split()) != 1 or len(reason.strip()) < 10):
            wrong.append(f"line {number}: one vulnerability ID, then '# <reason>': {line!r}")
    assert wrong == []


def test_coverage_and_sbom_outputs_stay_out_of_git() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "build/" in ignored and ".coverage" in ignored
