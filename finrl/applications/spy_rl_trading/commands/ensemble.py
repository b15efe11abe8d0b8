"""``spy-rl ensemble``: several model bundles as one bundle, for backtests and paper trading."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import Flag, echo_lines, settings_command
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.errors import ConfigError

ENSEMBLE_FLAGS = (
    Flag("run_name", ("--name",)),  # a folder name, checked as training checks its --name
    Flag("trained_models_dir", ("--models-dir",)),
    Flag("rebalance_band"),
)
ENSEMBLE_EXAMPLES = """
spy-rl ensemble --model seed1 --model seed2 --model seed3 --rule mean_weight --name trio
spy-rl ensemble --model seed1 --model seed2 --rule majority --anchor 2021-01-04
"""


def ensemble_command(
    ctx: typer.Context,
    settings: Settings,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A member bundle (folder or run name); repeat, 2 or more")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="mean_weight or majority (a tie is flat)")] = None,
    anchor: Annotated[str | None, typer.Option(help="Paper trading replays members from here (YYYY-MM-DD)")] = None,
) -> None:
    """Combine model bundles into one ensemble bundle (latest stays).

    Each member trades its own shadow book; the ensemble holds
    the mean of their target weights (mean_weight) or the weight
    most of them decided (majority). Use it with --model NAME.
    """
    from finrl.agents.ensemble_bundle import create_ensemble

    if rule is None:
        raise ConfigError("choose a rule: --rule mean_weight or --rule majority")
    ensemble = create_ensemble(
        model or [],
        settings.trained_models_dir,
        rule=rule,
        rebalance_band=settings.rebalance_band,
        name=settings.run_name,
        anchor=_date(anchor) if anchor else None,
    )
    echo_lines(
        [
            f"ensemble: {ensemble.path}",
            f"rule:     {ensemble.rule}",
            f"members:  {', '.join(m.run_name for m in ensemble.members)}",
            f"anchor:   {ensemble.anchor}",
            f"use it:   spy-rl backtest --model {ensemble.run_name}",
        ]
    )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--anchor {text!r} is not a date (YYYY-MM-DD)") from None


def register(app: typer.Typer) -> None:
    app.command("ensemble", epilog=ENSEMBLE_EXAMPLES)(settings_command(ENSEMBLE_FLAGS)(ensemble_command))
