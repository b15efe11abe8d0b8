"""``spy-rl data fetch`` and ``spy-rl data validate``."""

from __future__ import annotations

from dataclasses import replace

import typer

from finrl.applications.spy_rl_trading.cli_support import DATA_FLAGS, echo_lines, error_line, settings_command
from finrl.applications.spy_rl_trading.settings import Settings

data_app = typer.Typer(help="Fetch, cache and validate market data.", no_args_is_help=True)


@data_app.command(
    "fetch",
    epilog="""
spy-rl data fetch --source sample
spy-rl data fetch --source yahoo --start 2005-01-03 --end 2023-12-29
spy-rl data fetch --source csv --csv data/spy.csv --vix-csv data/vix.csv
""",
)
@settings_command(DATA_FLAGS)
def data_fetch(ctx: typer.Context, settings: Settings) -> None:
    """Download (or read from cache), validate and featurise daily bars into the datasets folder."""
    from finrl.fileio import filesystem_errors
    from finrl.meta.dataset import write_feature_dataset

    data = settings.feature_data()
    market, spec, features = data.market, data.spec, data.features
    with filesystem_errors(settings.datasets_dir, flag="--datasets-dir"):
        path = write_feature_dataset(market, features, spec)
    echo_lines(
        [
            f"dataset:  {path.parent}",
            f"source:   {market.label}",
            f"bars:     {len(market.bars)} days {market.bars.index[0]:%Y-%m-%d}..{market.bars.index[-1]:%Y-%m-%d}",
            f"features: {len(features)} days from {features.index[0]:%Y-%m-%d} "
            f"({len(spec.observation_columns)} observation columns: {', '.join(spec.observation_columns)})",
            f"fingerprint: {market.fingerprint[:16]}",
            *(f"warning:  {w}" for w in market.report.warnings),
        ]
    )


@data_app.command(
    "validate",
    epilog="""
spy-rl data validate --csv data/spy.csv --no-vix
spy-rl data validate --source yahoo --start 2005-01-03
""",
)
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
        echo_lines([error_line(e) for e in report.errors], err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
