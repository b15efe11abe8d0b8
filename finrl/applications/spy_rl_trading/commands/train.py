"""``spy-rl train`` and ``spy-rl pipeline`` (train, then backtest the new model): the commands that import torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from finrl.applications.spy_rl_trading.cli_support import (
    BACKTEST_FLAGS,
    DATA_FLAGS,
    EXECUTION_FLAGS,
    SPLIT_FLAGS,
    TRAINING_FLAGS,
    echo_lines,
    settings_command,
)
from finrl.applications.spy_rl_trading.commands.backtest import print_backtest
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.errors import ConfigError

if TYPE_CHECKING:
    from finrl.agents.training import TrainingResult

TRAIN_EXTRA_HINT = "training needs the train extra (torch, stable-baselines3, tensorboard): pip install 'finrl[train]'"


TRAIN_EXAMPLES = """
spy-rl train --source sample --timesteps 50000
spy-rl train --source csv --csv data/spy.csv --vix-csv data/vix.csv --train-end 2020-12-31
spy-rl train --source yahoo --start 2005-01-03 --seed 7 --name yahoo-seed7
"""
PIPELINE_EXAMPLES = """
spy-rl pipeline --source sample --timesteps 50000
spy-rl pipeline --source yahoo --start 2005-01-03 --test-start 2021-01-04 --results-dir results
"""


def train_command(ctx: typer.Context, settings: Settings) -> None:
    """Train a PPO agent on the training window; save its model bundle in --models-dir (latest points at it)."""
    result = _run_training(settings)
    echo_lines(training_summary(result))


def pipeline_command(ctx: typer.Context, settings: Settings) -> None:
    """Train on the training window, then backtest the new model on the test window."""
    from finrl.applications.spy_rl_trading.backtest_runs import run_backtests

    trained = _run_training(settings)
    echo_lines(training_summary(trained))
    (run,) = run_backtests(settings, [str(trained.bundle.path)])
    print_backtest(run)


def _run_training(settings: Settings) -> TrainingResult:
    try:
        from finrl.applications.spy_rl_trading.training_run import run_training
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "stable_baselines3", "tensorboard"):
            raise ConfigError(TRAIN_EXTRA_HINT) from None
        raise
    settings.torch_device()  # --device cuda without CUDA: one line now, not after the data is loaded
    return run_training(settings)


def training_summary(result: TrainingResult) -> list[str]:
    metrics, bundle = result.metrics, result.bundle
    split = bundle.split
    best = metrics.get("best_validation_sharpe")
    lines = [
        f"model:      {bundle.path}",
        f"train:      {split.train.start}..{split.train.end}",
        f"validation: {split.validation.start}..{split.validation.end}" if split.validation else "validation: none",
        f"timesteps:  {metrics['timesteps']}{_rounding(bundle.manifest.settings, metrics['timesteps'])} "
        f"in {metrics['wall_seconds']:.1f}s ({metrics['steps_per_second']:.0f}/s)",
        f"chosen:     {metrics['model_choice']}" + (f" (validation Sharpe {best:.2f})" if best is not None else ""),
    ]
    if metrics.get("tensorboard_run"):
        lines.append(f"tensorboard: {metrics['tensorboard_run']}")
    return lines


def _rounding(settings: dict[str, Any], trained: int) -> str:
    """`` (asked N: whole rollouts of n_envs x n_steps)`` when PPO trained more steps than --timesteps asked."""
    asked = settings.get("total_timesteps")
    if asked is None or asked == trained:
        return ""
    n_envs, n_steps = settings.get("n_envs"), settings.get("n_steps")
    return f" (asked {asked}; PPO trains whole rollouts of --n-envs {n_envs} x --n-steps {n_steps})"


def register(app: typer.Typer) -> None:
    app.command("train", epilog=TRAIN_EXAMPLES)(
        settings_command(DATA_FLAGS, SPLIT_FLAGS, TRAINING_FLAGS, EXECUTION_FLAGS)(train_command)
    )
    app.command("pipeline", epilog=PIPELINE_EXAMPLES)(
        settings_command(DATA_FLAGS, SPLIT_FLAGS, TRAINING_FLAGS, EXECUTION_FLAGS, BACKTEST_FLAGS)(pipeline_command)
    )
