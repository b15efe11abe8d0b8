"""What every ``spy-rl`` command shares: option types, settings loading, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from finrl.applications.spy_rl_trading.settings import Settings, load_settings
from finrl.errors import FinRLError
from finrl.log import configure_logging, get_logger, register_secrets
from finrl.seeding import seed_everything

T = TypeVar("T")

SourceOption = Annotated[
    str | None,
    typer.Option("--source", "--data-source", help="yahoo | csv | alpaca | sample  [env: SPY_DATA_SOURCE]"),
]
SymbolOption = Annotated[str | None, typer.Option(help="Ticker to trade  [env: SPY_SYMBOL]")]
CsvOption = Annotated[Path | None, typer.Option("--csv", help="Daily bars CSV for --source csv  [env: SPY_CSV_PATH]")]
VixCsvOption = Annotated[Path | None, typer.Option("--vix-csv", help="VIX daily CSV  [env: SPY_VIX_CSV_PATH]")]
VixOption = Annotated[
    bool | None, typer.Option("--vix/--no-vix", help="Use VIX as a feature (default on)  [env: SPY_USE_VIX]")
]
StartOption = Annotated[str | None, typer.Option("--start", help="First date YYYY-MM-DD  [env: SPY_START_DATE]")]
EndOption = Annotated[str | None, typer.Option("--end", help="Last date YYYY-MM-DD  [env: SPY_END_DATE]")]
OfflineOption = Annotated[
    bool | None, typer.Option("--offline/--online", help="Use only cached data  [env: SPY_OFFLINE]")
]
DatasetsDirOption = Annotated[Path | None, typer.Option(help="Dataset cache folder  [env: SPY_DATASETS_DIR]")]


def data_overrides(
    source: str | None,
    symbol: str | None,
    csv: Path | None,
    vix_csv: Path | None,
    vix: bool | None,
    start: str | None,
    end: str | None,
    offline: bool | None,
    datasets_dir: Path | None,
) -> dict[str, Any]:
    """Map the shared data flags onto setting names."""
    return {
        "data_source": source,
        "symbol": symbol,
        "csv_path": csv,
        "vix_csv_path": vix_csv,
        "use_vix": vix,
        "start_date": start,
        "end_date": end,
        "offline": offline,
        "datasets_dir": datasets_dir,
    }


def start_command(ctx: typer.Context, **overrides: Any) -> Settings:
    """Load settings (root flags + command flags), then set up logging, secrets masking and seeds."""
    root = ctx.find_root().obj or {}
    settings = load_settings(**root, **overrides)
    register_secrets(settings.secret_values())
    configure_logging(settings.log_level, json=settings.log_json)
    seed_everything(settings.random_seed)
    return settings


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`FinRLError` into one line on stderr and its exit code; Ctrl-C into 130."""
    try:
        yield
    except FinRLError as exc:
        get_logger("finrl.cli").debug("command_failed", error=str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def guarded(func: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`user_errors` for typer commands."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with user_errors():
            return func(*args, **kwargs)

    return wrapper


def echo_lines(lines: list[str], *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    for line in lines:
        print(line, file=stream)
