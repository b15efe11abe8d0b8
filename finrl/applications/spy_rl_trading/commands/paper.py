"""``spy-rl paper``: one decision per trading day after the close, one order for the next open."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import (
    LIVE_DATA_FLAGS,
    PAPER_FLAGS,
    echo_lines,
    error_line,
    settings_command,
)
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.trade.exit_codes import CycleExit, exit_code_help, exit_for_outcome

if TYPE_CHECKING:
    from finrl.trade.service import PaperTradingService


def paper_command(
    ctx: typer.Context,
    settings: Settings,
    once: Annotated[bool, typer.Option("--once", help="Run one daily cycle and exit (cron, tests)")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Preflight: model, keys, account, clock, calendar, final data and VIX, a decision; "
            "sends nothing; one line per check, exit 1 on any problem",
        ),
    ] = False,
) -> None:
    """Trade the model once per trading day: after the close, one order for the next open.

    --broker simulated (default) needs no keys; --broker alpaca uses
    ALPACA_API_KEY/ALPACA_API_SECRET against ALPACA_BASE_URL (Alpaca's paper
    endpoint by default). Without --once it runs until SIGTERM/Ctrl-C, which
    finish the step in progress and exit 0. One instance per --logs-dir: a
    second one exits at once, naming the holder's pid.
    """
    from finrl.applications.spy_rl_trading.paper_service import build_paper_service
    from finrl.trade.instance_lock import instance_lock
    from finrl.trade.metrics import TradingMetrics
    from finrl.trade.service import stop_on_signals

    if check:  # reads only: a running instance may hold the lock
        _preflight(settings)
        return
    # the lock comes first: a second instance must not even load the account or the state file
    with instance_lock(settings.logs_dir):
        metrics = TradingMetrics()
        service = build_paper_service(settings, metrics)
        if once:
            code = _run_once(service)
            if code is not CycleExit.OK:
                raise typer.Exit(int(code))
            return
        if settings.metrics_port:
            metrics.serve(settings.metrics_port)
        with stop_on_signals(service.stop):
            service.run_forever()


def _preflight(settings: Settings) -> None:
    from finrl.applications.spy_rl_trading.paper_check import preflight

    lines = preflight(settings)
    for line in lines:
        echo_lines([line.render()], err=not line.ok)
    if not all(line.ok for line in lines):
        raise typer.Exit(1)


def _run_once(service: PaperTradingService) -> CycleExit:
    """One cycle, its summary on stdout and, when someone must look, one line on stderr."""
    from finrl.trade.trader import describe

    result = service.run_once()
    if result is None:
        echo_lines(["no trading session has closed recently: nothing to decide"])
        return CycleExit.OK
    summary = describe(result)
    echo_lines([f"{key}: {value}" for key, value in summary.items() if value not in (None, "")])
    code = exit_for_outcome(result.outcome, halted=service.trader.state.halted)
    if code is not CycleExit.OK:
        detail = f": {result.detail}" if result.detail else ""
        echo_lines([error_line(f"{result.session} outcome {result.outcome} (exit {int(code)}){detail}")], err=True)
    return code


PAPER_HELP = f"""{inspect.cleandoc(paper_command.__doc__ or "")}

\b
Exit codes of --once:
{exit_code_help()}
"""

PAPER_EXAMPLES = """
spy-rl paper --once --dry-run --live-source sample
spy-rl paper --check --broker alpaca
spy-rl paper --broker alpaca --model latest --logs-dir logs
"""


def register(app: typer.Typer) -> None:
    app.command("paper", help=PAPER_HELP, epilog=PAPER_EXAMPLES)(
        settings_command(LIVE_DATA_FLAGS, PAPER_FLAGS)(paper_command)
    )
