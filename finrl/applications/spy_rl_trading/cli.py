"""``spy-rl``: the command line of the SPY RL trading system.

The app only assembles the command modules (``commands/``); each imports its heavy libraries
inside the command, so start-up costs what the chosen command needs and no more.
"""

from __future__ import annotations

from typing import Annotated

import typer

from finrl.applications.spy_rl_trading.commands import (
    backtest,
    data,
    ensemble,
    health,
    paper,
    research,
    runs,
    train,
    tune,
)

app = typer.Typer(
    name="spy-rl",
    help="Reinforcement-learning trading for SPY: data, training, backtests, paper trading.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    log_level: Annotated[str | None, typer.Option(help="DEBUG | INFO | WARNING | ERROR  [env: SPY_LOG_LEVEL]")] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-console", help="JSON log lines  [env: SPY_LOG_JSON]")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed  [env: SPY_RANDOM_SEED]")] = None,
) -> None:
    ctx.obj = {"log_level": log_level, "log_json": log_json, "random_seed": seed}


for command_module in (health, data, train, backtest, ensemble, research, tune, paper, runs):
    command_module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
