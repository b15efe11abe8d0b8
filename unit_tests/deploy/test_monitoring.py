"""The Grafana provisioning the monitoring Compose file mounts: the Prometheus source and the dashboard."""

from __future__ import annotations

import json

import pytest
import yaml

from unit_tests.deploy.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_grafana_is_provisioned_with_the_prometheus_source_and_dashboard() -> None:
    grafana = REPO_ROOT / "monitoring" / "grafana"
    (source,) = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((grafana / "provisioning/dashboards/finrl.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = list((grafana / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            assert all('job="finrl-paper-trading"' in t["expr"] for t in panel["targets"])
