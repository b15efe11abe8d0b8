"""``spy-rl health`` (the container liveness probe, run every 30 s: it must start fast) and ``spy-rl version``."""

from __future__ import annotations

from typing import Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import Flag, echo_lines, settings_command
from finrl.applications.spy_rl_trading.settings import Settings


def health_command(
    ctx: typer.Context,
    settings: Settings,
    max_age: Annotated[float, typer.Option(help="Largest heartbeat age in seconds")] = 300.0,
) -> None:
    """Exit 0 when the paper-trading service's heartbeat is fresh (the container health check)."""
    from finrl.trade.health import health_ok

    ok, detail = health_ok(settings.logs_dir / "health.json", max_age)
    echo_lines([f"{'healthy' if ok else 'unhealthy'}: {detail}"], err=not ok)
    if not ok:
        raise typer.Exit(1)


def version_command() -> None:
    """Print the installed finrl version."""
    from finrl import __version__

    typer.echo(f"finrl {__version__}")


def register(app: typer.Typer) -> None:
    # the liveness probe logs nothing: no structlog import, a faster start
    app.command("health", epilog="spy-rl health --logs-dir logs --max-age 600")(
        settings_command((Flag("logs_dir"),), logs=False)(health_command)
    )
    app.command("version", epilog="spy-rl version")(version_command)
