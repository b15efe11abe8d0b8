"""``spy-rl walkforward``: walk-forward research with honest statistics against buy-and-hold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import (
    DATA_FLAGS,
    EXECUTION_FLAGS,
    TRAINING_FLAGS,
    Flag,
    echo_lines,
    settings_command,
)
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from finrl.research.folds import FoldPlan

WALKFORWARD_FLAGS = (*TRAINING_FLAGS, Flag("risk_free_rate"), Flag("results_dir"))

# the fold plan's options, shared by spy-rl walkforward and spy-rl tune init
SchemeOption = Annotated[str, typer.Option(help="rolling (fixed-length training) or anchored (growing)")]
TrainYearsOption = Annotated[int, typer.Option(help="Training window per fold, in years")]
ValMonthsOption = Annotated[int, typer.Option(help="Validation window (it chooses; tests never do), in months")]
TestMonthsOption = Annotated[int, typer.Option(help="Test window (never chooses anything), in months")]
StepMonthsOption = Annotated[int | None, typer.Option(help="Step between folds (default: the test length)")]


def walkforward_command(
    ctx: typer.Context,
    settings: Settings,
    scheme: SchemeOption = "rolling",
    train_years: TrainYearsOption = 5,
    val_months: ValMonthsOption = 12,
    test_months: TestMonthsOption = 12,
    step_months: StepMonthsOption = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds trained per fold")] = "1,2,3,4,5",
    workers: Annotated[int, typer.Option(help="Training processes in parallel (results do not depend on it)")] = 1,
    name: Annotated[str | None, typer.Option(help="Run folder name (default: derived from the arguments)")] = None,
) -> None:
    """Walk-forward: per fold, train every seed, keep each by validation, test once; stitch and judge.

    Writes <results-dir>/<run>/summary.json, nav.csv, folds.csv and report.html. Fold x seed
    trainings are cached in <results-dir>/walkforward-cache: a rerun trains nothing.
    """
    from finrl.research.outputs import record_trials, summarize, write_outputs
    from finrl.research.walkforward import run_walkforward

    parsed_seeds = parse_seeds(seeds)
    data = settings.feature_data()
    plan = fold_plan(settings, data.features.index, scheme, train_years, val_months, test_months, step_months)
    result = run_walkforward(settings.walkforward_config(plan, parsed_seeds, workers), data)
    root = Path(settings.results_dir)
    n_trials, variance = record_trials(root, result)
    summary = summarize(result, n_trials, variance)
    directory = write_outputs(result, summary, root / (name or f"walkforward-{scheme}-{result.run_key}"))
    oos, stats = summary["oos"], summary["stats"]
    agent, bench = oos["agent"], oos["buy_and_hold"]
    echo_lines(
        [
            f"folds:        {len(summary['folds'])} x {len(parsed_seeds)} seed(s); trained now: {result.trained}",
            f"out of sample {oos['first_day']} .. {oos['last_day']} ({oos['days']} days)",
            f"agent:        Sharpe {agent['sharpe']:.3f}, return {agent['total_return']:.2%}",
            f"buy and hold: Sharpe {bench['sharpe']:.3f}, return {bench['total_return']:.2%}",
            f"verdict:      {stats['verdict']}",
            f"report:       {directory}",
        ]
    )


def fold_plan(
    settings: Settings,
    days: pd.Index,
    scheme: str,
    train_years: int,
    val_months: int,
    test_months: int,
    step_months: int | None,
) -> FoldPlan:
    """The folds' plan from the options, over --start/--end or else the feature days' span."""
    from finrl.research.folds import FoldPlan

    return FoldPlan(
        scheme=scheme,  # type: ignore[arg-type]  # FoldPlan validates it: one line naming the flag
        train_years=train_years,
        val_months=val_months,
        test_months=test_months,
        step_months=step_months or test_months,
        start=settings.start_date or days[0].date(),
        end=settings.end_date or days[-1].date(),
    )


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated whole numbers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds: expected distinct non-negative seeds, got {text!r}")
    return seeds


WALKFORWARD_EXAMPLES = """
spy-rl walkforward --source sample --seeds 1,2,3 --train-years 2 --val-months 6 --test-months 6
spy-rl walkforward --source yahoo --scheme anchored --train-years 8 --workers 2
"""


def register(app: typer.Typer) -> None:
    app.command("walkforward", epilog=WALKFORWARD_EXAMPLES)(
        settings_command(DATA_FLAGS, WALKFORWARD_FLAGS, EXECUTION_FLAGS)(walkforward_command)
    )
