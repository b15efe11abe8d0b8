"""Prometheus metrics of the paper-trading service and its health file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from finrl.fileio import atomic_write_json


class TradingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.orders = Counter("finrl_orders", "Orders by side and status", ["side", "status"], registry=r)
        self.nav = Gauge("finrl_portfolio_nav", "Account equity at the last decision", registry=r)
        self.position = Gauge("finrl_position_shares", "Signed position in shares", registry=r)
        self.last_decision = Gauge(
            "finrl_last_decision_timestamp_seconds", "Unix time of the last decision", registry=r
        )
        self.errors = Counter("finrl_errors", "Errors by kind", ["kind"], registry=r)
        self.risk_blocks = Counter("finrl_risk_blocks", "Orders blocked by a risk rule", ["rule"], registry=r)
        self.cycles = Counter("finrl_cycles", "Trading cycles by outcome", ["outcome"], registry=r)

    def serve(self, port: int, address: str = "0.0.0.0") -> Any:
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server


def write_health(path: Path, status: str, **detail: Any) -> None:
    atomic_write_json(Path(path), {"status": status, "heartbeat": datetime.now(UTC).isoformat(), **detail})


def health_ok(path: Path, max_age_seconds: float) -> tuple[bool, str]:
    """For the container health check: a fresh heartbeat and no fatal status."""
    try:
        health = json.loads(Path(path).read_text())
        age = (datetime.now(UTC) - datetime.fromisoformat(health["heartbeat"])).total_seconds()
    except (OSError, ValueError, KeyError) as exc:
        return False, f"no readable health file {path}: {exc}"
    if health.get("status") == "fatal":
        return False, f"fatal: {health.get('error', '?')}"
    if age > max_age_seconds:
        return False, f"stale heartbeat ({age:.0f} s old)"
    return True, f"{health.get('status')} ({age:.0f} s ago)"
