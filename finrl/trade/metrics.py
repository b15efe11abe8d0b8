"""Prometheus metrics of the paper-trading service."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


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
        self.late_skips = Counter(
            "finrl_late_skips", "Decisions not sent because their fill session's auction had passed", registry=r
        )
        self.cycles = Counter("finrl_cycles", "Trading cycles by outcome", ["outcome"], registry=r)

    def serve(self, port: int, address: str = "0.0.0.0") -> Any:
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
