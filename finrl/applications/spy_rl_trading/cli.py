"""``spy-rl``: the command line of the SPY RL trading system."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from finrl import __version__
from finrl.applications.spy_rl_trading.cli_support import (
    DATA_FLAGS,
    EXECUTION_FLAGS,
    SPLIT_FLAGS,
    TRAINING_FLAGS,
    echo_lines,
    settings_command,
)
from finrl.applications.spy_rl_trading.settings import Settings

app = typer.Typer(
    name="spy-rl",
    help="Reinforcement-learning trading for SPY: data, training, backtests, paper trading.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Fetch, cache and validate market data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


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


@app.command()
def version() -> None:
    """Print the installed finrl version."""
    typer.echo(f"finrl {__version__}")


@data_app.command("fetch")
@settings_command(DATA_FLAGS)
def data_fetch(ctx: typer.Context, settings: Settings) -> None:
    """Download (or read from cache), validate and featurise daily bars into the datasets folder."""
    from finrl.meta.data.market_data import load_market_data
    from finrl.meta.dataset import write_feature_dataset
    from finrl.meta.features import FeatureSpec, build_features

    data = load_market_data(settings.data_request(), settings.datasets_dir)
    spec = FeatureSpec(use_vix=settings.use_vix)
    features = build_features(data.bars, spec)
    path = write_feature_dataset(data, features, spec)
    echo_lines(
        [
            f"dataset:  {path.parent}",
            f"source:   {data.label}",
            f"bars:     {len(data.bars)} days {data.bars.index[0]:%Y-%m-%d}..{data.bars.index[-1]:%Y-%m-%d}",
            f"features: {len(features)} days from {features.index[0]:%Y-%m-%d} "
            f"({len(spec.observation_columns)} observation columns: {', '.join(spec.observation_columns)})",
            f"fingerprint: {data.fingerprint[:16]}",
            *(f"warning:  {w}" for w in data.report.warnings),
        ]
    )


@data_app.command("validate")
@settings_command(DATA_FLAGS)
def data_validate(ctx: typer.Context, settings: Settings) -> None:
    """Check daily bars: NYSE calendar, duplicates, OHLC consistency, prices, volume, NaN, jumps.

    With --csv, checks that file (and --vix-csv) as it is; otherwise the configured source's data.
    Exits 0 on good data; otherwise prints one line per problem and exits 1.
    """
    from finrl.meta.data.market_data import resolve_sources
    from finrl.meta.data.validation import validate_bars

    request = settings.data_request()
    if settings.csv_path is not None:
        request = replace(request, source="csv")
    if request.source == "csv" and request.vix_csv_path is None:
        request = replace(request, use_vix=False)  # a bare CSV is checked as it is
    bar_source, vix_source = resolve_sources(request)
    bars = bar_source.fetch(request.symbol, request.start, request.end)
    if vix_source is not None:
        bars = bars.join(vix_source.fetch_vix(request.start, request.end).rename("vix"), how="left")
    report = validate_bars(bars)
    echo_lines([f"{bar_source.label}: {report.summary()}", *(f"warning: {w}" for w in report.warnings)])
    if not report.ok:
        echo_lines([f"error: {e}" for e in report.errors], err=True)
        raise typer.Exit(1)


@app.command("train")
@settings_command(DATA_FLAGS, SPLIT_FLAGS, TRAINING_FLAGS, EXECUTION_FLAGS)
def train_command(ctx: typer.Context, settings: Settings) -> None:
    """Train a PPO agent on the training window and save a model bundle (also: models_dir/latest)."""
    from finrl.applications.spy_rl_trading.jobs import run_training

    result = run_training(settings)
    echo_lines(training_summary(result))


def training_summary(result: object) -> list[str]:
    from finrl.agents.training import TrainingResult

    assert isinstance(result, TrainingResult)
    metrics, bundle = result.metrics, result.bundle
    split = bundle.split
    best = metrics.get("best_validation_sharpe")
    lines = [
        f"model:      {bundle.path}",
        f"train:      {split.train.start}..{split.train.end}",
        f"validation: {split.validation.start}..{split.validation.end}" if split.validation else "validation: none",
        f"timesteps:  {metrics['timesteps']} in {metrics['wall_seconds']:.1f}s ({metrics['steps_per_second']:.0f}/s)",
        f"chosen:     {metrics['model_choice']}" + (f" (validation Sharpe {best:.2f})" if best is not None else ""),
    ]
    if metrics.get("tensorboard_run"):
        lines.append(f"tensorboard: {metrics['tensorboard_run']}")
    return lines


def main() -> None:
    app()


if __name__ == "__main__":
    main()
