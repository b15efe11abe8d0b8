"""``spy-rl paper``: one decision per trading day after the close, one order for the next open."""

from __future__ import annotations

from typing import Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import DATA_FLAGS, PAPER_FLAGS, echo_lines, settings_command
from finrl.applications.spy_rl_trading.settings import Settings


def paper_command(
    ctx: typer.Context,
    settings: Settings,
    once: Annotated[bool, typer.Option("--once", help="Run one daily cycle and exit (cron, tests)")] = False,
) -> None:
    """Trade the model once per trading day: after the close, one order for the next open.

    --broker simulated (default) needs no keys; --broker alpaca uses ALPACA_API_KEY/ALPACA_API_SECRET
    against ALPACA_BASE_URL (Alpaca's paper endpoint by default). Without --once it runs until
    SIGTERM/Ctrl-C, which finish the step in progress and exit 0.
    """
    from finrl.applications.spy_rl_trading.paper_service import build_paper_service
    from finrl.trade.metrics import TradingMetrics
    from finrl.trade.service import stop_on_signals
    from finrl.trade.trader import describe

    metrics = TradingMetrics()
    service = build_paper_service(settings, metrics)
    if settings.metrics_port and not once:
        metrics.serve(settings.metrics_port)
    if once:
        result = service.run_once()
        if result is None:
            echo_lines(["no trading session has closed recently: nothing to decide"])
            return
        summary = describe(result)
        echo_lines([f"{key}: {value}" for key, value in summary.items() if value not in (None, "")])
        return
    with stop_on_signals(service.stop):
        service.run_forever()


def register(app: typer.Typer) -> None:
    app.command("paper")(settings_command(DATA_FLAGS, PAPER_FLAGS)(paper_command))
