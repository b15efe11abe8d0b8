"""``spy-rl``: the command line of the SPY RL trading system.

The app only assembles the command modules (``commands/``); each imports its heavy libraries
inside the command, so start-up costs what the chosen command needs and no more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from finrl.applications.spy_rl_trading.cli_support import PlainHelpLayout, error_line, plain_help
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


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A usage error (``--timesteps abc``, an unknown flag) as the project's ``error:`` line, exit 2.

    Typer's own exceptions (its bundled click's ``UsageError``, ``BadParameter``...) share one public base.
    """
    try:
        yield
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise  # no arguments: the help, as asked for
        ctx = getattr(exc, "ctx", None)
        path = getattr(ctx, "command_path", "")
        where, hint = (f"{path}: ", f" (see {path} --help)") if path else ("", "")
        typer.echo(error_line(f"{where}{exc.format_message()}{hint}"), err=True)
        raise typer.Exit(exc.exit_code) from None


class SpyRlGroup(PlainHelpLayout, TyperGroup):
    """The root command: usage errors of it and of every subcommand end in one ``error:`` line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    name="spy-rl",
    cls=SpyRlGroup,
    help="Reinforcement-learning trading for SPY: data, training, backtests, paper trading.",
    epilog="spy-rl pipeline --source sample --timesteps 50000\nspy-rl data fetch --source yahoo\n"
    "spy-rl --log-level DEBUG backtest --model latest",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: every option's names in full, its help under them (cli_support)
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL; DEBUG also shows third-party libraries' logs  "
            "[env: SPY_LOG_LEVEL]",
            metavar="LEVEL",
        ),
    ] = None,
    log_json: Annotated[
        bool | None,
        typer.Option(
            "--log-json/--log-console", help="JSON log lines (else readable console lines)  [env: SPY_LOG_JSON]"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed of training (Python, NumPy, torch, envs)  [env: SPY_RANDOM_SEED]", metavar="INTEGER"
        ),
    ] = None,
) -> None:
    ctx.obj = {"log_level": log_level, "log_json": log_json, "random_seed": seed}


for command_module in (health, data, train, backtest, ensemble, research, tune, paper, runs):
    command_module.register(app)
plain_help(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
