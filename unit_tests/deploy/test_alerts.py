"""The Prometheus alerting rules (monitoring/alerts.yml): their shape, their wiring into prometheus.yml and
the monitoring Compose file, and promtool's checks and unit tests (monitoring/alerts_test.yml).

promtool comes from Debian's ``prometheus`` package (.ci/run installs it); where it is missing the promtool
tests skip, unless FINRL_PROMTOOL_REQUIRED=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import pytest
import yaml

from unit_tests.deploy.conftest import MONITORING_FILE, REPO_ROOT, check

pytestmark = pytest.mark.unit

ALERTS = REPO_ROOT / "monitoring" / "alerts.yml"
ALERTS_TEST = REPO_ROOT / "monitoring" / "alerts_test.yml"
PROMETHEUS_YML = REPO_ROOT / "prometheus.yml"
CONFIG_IN_CONTAINER = PurePosixPath("/etc/prometheus/prometheus.yml")  # --config.file of the Compose service
# what the issue asks to be alerted on, by alert name
REQUIRED_ALERTS = {
    "FinrlDrawdownHigh",
    "FinrlOrderFailureRateHigh",
    "FinrlHeartbeatStale",
    "FinrlTradingHalted",
    "FinrlFeatureDrift",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing (Debian: apt-get install --no-install-recommends prometheus)"
        if os.environ.get("FINRL_PROMTOOL_REQUIRED") == "1":
            pytest.fail(message + "; FINRL_PROMTOOL_REQUIRED=1")
        pytest.skip(message)
    return found


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def prometheus_mounts() -> dict[PurePosixPath, Path]:
    """The files the monitoring Compose file bind-mounts into the Prometheus container: target -> source."""
    service = yaml.safe_load(MONITORING_FILE.read_text(encoding="utf-8"))["services"]["prometheus"]
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[PurePosixPath(target)] = REPO_ROOT / source
    return mounts


def test_each_alert_has_a_duration_a_severity_and_tells_the_operator_what_to_do() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert names >= REQUIRED_ALERTS
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_each_alert_has_promtool_cases_where_it_fires_and_where_it_does_not() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [ALERTS.name]
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no case where it stays quiet"


def test_prometheus_loads_the_rules_the_compose_file_mounts() -> None:
    mounts = prometheus_mounts()
    assert mounts[CONFIG_IN_CONTAINER] == PROMETHEUS_YML
    rule_files = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        assert mounts[CONFIG_IN_CONTAINER.parent / rule_file] == ALERTS


def test_promtool_checks_the_rules(promtool: str) -> None:
    check([promtool, "check", "rules", str(ALERTS)])


def test_promtool_checks_the_config_as_compose_mounts_it(promtool: str, tmp_path: Path) -> None:
    for target, source in prometheus_mounts().items():
        if target.parent == CONFIG_IN_CONTAINER.parent:
            shutil.copyfile(source, tmp_path / target.name)
    result = check([promtool, "check", "config", str(tmp_path / CONFIG_IN_CONTAINER.name)])
    assert "SUCCESS: 1 rule files found" in result.stdout, result.stdout


def test_promtool_unit_tests_of_the_alerts(promtool: str) -> None:
    check([promtool, "test", "rules", str(ALERTS_TEST)])
