"""``spy-rl backtest``: model bundles out of sample against buy-and-hold, flat and an SMA crossover."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finrl.applications.spy_rl_trading.cli_support import BACKTEST_FLAGS, DATA_FLAGS, Flag, settings_command
from finrl.applications.spy_rl_trading.settings import Settings

if TYPE_CHECKING:
    from finrl.applications.spy_rl_trading.backtest_runs import BacktestRun

ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Model bundle: a folder, a run name in the models folder, 'latest' (default), or a folder of "
        "bundles (a seed sweep). Repeat for several models.",
    ),
]
BACKTEST_EXAMPLES = """
spy-rl backtest
spy-rl backtest --model ppo-spy-sample-seed42-20240101T000000.000Z --test-start 2021-01-04
spy-rl backtest --model trained_models/sweep --commission-bps 5 --no-risk-limits
"""
MODEL_ONLY_FLAGS = (Flag("trained_models_dir", ("--models-dir",)),)


def backtest_command(ctx: typer.Context, settings: Settings, model: ModelOption = None) -> None:
    """Evaluate model bundles out of sample against buy-and-hold, flat and an SMA crossover."""
    from finrl.applications.spy_rl_trading.backtest_runs import run_backtests, write_multi_seed_summary

    runs = run_backtests(settings, model or ["latest"])
    for run in runs:
        print_backtest(run)
    if len(runs) > 1:
        directory = write_multi_seed_summary(settings, runs)
        print_multi_seed(directory)


def print_backtest(run: BacktestRun) -> None:
    from rich.console import Console
    from rich.table import Table

    from finrl.backtest.report import summary_rows

    result = run.result
    header, *rows = summary_rows(result.metrics)
    table = Table(title=f"{result.bundle.run_name}: {result.window.start} .. {result.window.end}")
    for name in header:
        table.add_column(name, justify="right" if name != "metric" else "left")
    for row in rows:
        table.add_row(*row)
    console = Console(width=120)
    console.print(table)
    for warning in result.warnings:
        console.print(f"[bold red]warning:[/] {warning}", highlight=False)
    console.print(risk_line(result.risk_meta()), highlight=False, soft_wrap=True)
    console.print(f"report: {run.directory}", highlight=False, soft_wrap=True)


def risk_line(risk: dict[str, Any]) -> str:
    """One line on the agent's risk limits: off, or what they did (the first halt's date)."""
    if risk["limits"] is None:
        return "risk limits: off (--no-risk-limits): the unconstrained policy"
    from finrl.trade.risk import RiskOutcome

    return f"risk limits (agent only): {RiskOutcome.of(risk['events']).summary()}"


def print_multi_seed(directory: Path) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    document = json.loads((directory / "summary.json").read_text())
    table = Table(title=f"{len(document['models'])} models: agent mean and spread")
    for column in ("metric", "mean", "std", "min", "max", "buy and hold"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in ("total_return", "sharpe", "max_drawdown", "exposure"):
        stats = document["agent"][name]
        bench = document["buy_and_hold"][name]["mean"]
        table.add_row(name, *(f"{stats[k]:.3f}" for k in ("mean", "std", "min", "max")), f"{bench:.3f}")
    console = Console(width=120)
    console.print(table)
    console.print(f"summary: {directory / 'summary.json'}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("backtest", epilog=BACKTEST_EXAMPLES)(
        settings_command(DATA_FLAGS, BACKTEST_FLAGS, MODEL_ONLY_FLAGS)(backtest_command)
    )
