"""``spy-rl``: the command line of the SPY RL trading system."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finrl import __version__
from finrl.applications.spy_rl_trading.cli_support import (
    BACKTEST_FLAGS,
    DATA_FLAGS,
    EXECUTION_FLAGS,
    PAPER_FLAGS,
    SPLIT_FLAGS,
    TRAINING_FLAGS,
    Flag,
    echo_lines,
    settings_command,
)
from finrl.applications.spy_rl_trading.settings import Settings

if TYPE_CHECKING:  # heavy modules (torch, SB3) load only inside the commands that need them
    from finrl.agents.training import TrainingResult
    from finrl.applications.spy_rl_trading.jobs import BacktestRun

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


def training_summary(result: TrainingResult) -> list[str]:
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


ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Model bundle: a folder, a run name in the models folder, 'latest' (default), or a folder of "
        "bundles (a seed sweep). Repeat for several models.",
    ),
]
MODEL_ONLY_FLAGS = (Flag("trained_models_dir", ("--models-dir",)),)


@app.command("backtest")
@settings_command(DATA_FLAGS, BACKTEST_FLAGS, MODEL_ONLY_FLAGS)
def backtest_command(ctx: typer.Context, settings: Settings, model: ModelOption = None) -> None:
    """Evaluate model bundles out of sample against buy-and-hold, flat and an SMA crossover."""
    from finrl.applications.spy_rl_trading.jobs import run_backtests, write_multi_seed_summary

    runs = run_backtests(settings, model or ["latest"])
    for run in runs:
        print_backtest(run)
    if len(runs) > 1:
        directory = write_multi_seed_summary(settings, runs)
        print_multi_seed(directory)


@app.command("pipeline")
@settings_command(DATA_FLAGS, SPLIT_FLAGS, TRAINING_FLAGS, EXECUTION_FLAGS, BACKTEST_FLAGS)
def pipeline_command(ctx: typer.Context, settings: Settings) -> None:
    """Train on the training window, then backtest the new model on the test window."""
    from finrl.applications.spy_rl_trading.jobs import run_backtests, run_training

    trained = run_training(settings)
    echo_lines(training_summary(trained))
    (run,) = run_backtests(settings, [str(trained.bundle.path)])
    print_backtest(run)


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
    console.print(f"report: {run.directory}", highlight=False, soft_wrap=True)


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


@app.command("paper")
@settings_command(DATA_FLAGS, PAPER_FLAGS)
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
    from finrl.applications.spy_rl_trading.jobs import build_paper_service
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


@app.command("health")
@settings_command((Flag("logs_dir"),))
def health_command(
    ctx: typer.Context,
    settings: Settings,
    max_age: Annotated[float, typer.Option(help="Largest heartbeat age in seconds")] = 300.0,
) -> None:
    """Exit 0 when the paper-trading service's heartbeat is fresh (the container health check)."""
    from finrl.trade.metrics import health_ok

    ok, detail = health_ok(settings.logs_dir / "health.json", max_age)
    echo_lines([f"{'healthy' if ok else 'unhealthy'}: {detail}"], err=not ok)
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
