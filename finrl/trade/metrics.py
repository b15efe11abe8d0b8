"""Prometheus metrics of the paper-trading service."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# signed slippage of a broker fill against the model fill, in basis points (positive: worse for the account)
SLIPPAGE_BUCKETS_BPS = (-50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


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
        self.halted = Gauge("finrl_halted", "1 while the risk halt holds (flat, no trading), else 0", registry=r)
        # drift (finrl.trade.drift): series appear only for a bundle with a training reference
        self.feature_psi = Gauge(
            "finrl_feature_psi", "PSI of the feature over the trailing window against training", ["feature"], registry=r
        )
        self.action_psi = Gauge(
            "finrl_action_psi", "PSI of the recent decisions' action mix against training", ["action_space"], registry=r
        )
        # fill reconciliation (finrl.trade.fill_reconciliation)
        self.fill_slippage = Histogram(
            "finrl_fill_slippage_bps", "Broker fill price against the model fill, bps (positive: worse)", ["side"],
            buckets=SLIPPAGE_BUCKETS_BPS, registry=r,
        )  # fmt: skip
        self.last_fill_slippage = Gauge(
            "finrl_last_fill_slippage_bps", "Slippage of the last reconciled fill, bps (positive: worse)", ["side"],
            registry=r,
        )  # fmt: skip

    # all interfaces: Prometheus scrapes the port from another container (Compose, Kubernetes)
    def serve(self, port: int, address: str = "0.0.0.0") -> Any:  # nosec B104
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
