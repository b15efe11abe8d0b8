"""``spy-rl runs``: list, show and compare the runs in the models folder; convert old bundles."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finrl.applications.spy_rl_trading.cli_support import Flag, echo_lines, settings_command
from finrl.applications.spy_rl_trading.settings import Settings

if TYPE_CHECKING:
    from finrl.runs.catalog import BacktestReport, Catalog, Run
    from finrl.runs.compare import Comparison

runs_app = typer.Typer(help="List, show and compare trained runs; convert old bundles.", no_args_is_help=True)

MODELS_FLAGS = (Flag("trained_models_dir", ("--models-dir",)),)
CATALOG_FLAGS = (*MODELS_FLAGS, Flag("results_dir"))
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]

LIST_EXAMPLES = "spy-rl runs list\nspy-rl runs list --models-dir trained_models --results-dir results --json"
SHOW_EXAMPLES = "spy-rl runs show latest\nspy-rl runs show ppo_20240101_120000 --json"
CONVERT_EXAMPLES = "spy-rl runs convert latest\nspy-rl runs convert old_run --models-dir /srv/models"
COMPARE_EXAMPLES = (
    "spy-rl backtest --model seed1 --model seed2\nspy-rl runs compare seed1 seed2\n"
    "spy-rl runs compare seed1 seed2 seed3 --output results/seeds.html"
)


@runs_app.command("list", epilog=LIST_EXAMPLES, short_help="The runs in the models folder, newest first")
@settings_command(CATALOG_FLAGS, logs=False)
def list_command(ctx: typer.Context, settings: Settings, as_json: JsonOption = False) -> None:
    """Every run in the models folder, newest first: its seed, data, windows, timesteps, the kept model's
    validation Sharpe and the Sharpe of its last backtest (from the results folder)."""
    from finrl.runs.catalog import list_runs

    catalog = list_runs(settings.trained_models_dir, settings.results_dir)
    if as_json:
        print(json.dumps([run.to_json() | {"latest": run.name == catalog.latest} for run in catalog.runs], indent=2))
        return
    print_catalog(catalog)


@runs_app.command("show", epilog=SHOW_EXAMPLES, short_help="Everything about one run and its backtests")
@settings_command(CATALOG_FLAGS, logs=False)
def show_command(
    ctx: typer.Context,
    settings: Settings,
    name: Annotated[
        str, typer.Argument(help="Run name in the models folder, bundle folder, or 'latest'", metavar="RUN")
    ],
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: its manifest (windows, seed, data, PPO settings, action space, reward,
    costs, features), its training (timesteps, kept model, validation Sharpe, TensorBoard run) and every
    backtest report of it."""
    from finrl.runs.catalog import find_run, run_details

    run = find_run(name, settings.trained_models_dir, settings.results_dir)
    details = run_details(run)
    if as_json:
        print(json.dumps(details, indent=2))
        return
    echo_lines(show_lines(run, details))


@runs_app.command("compare", epilog=COMPARE_EXAMPLES, short_help="Runs side by side: a table and an equity chart")
@settings_command(CATALOG_FLAGS, logs=False)
def compare_command(
    ctx: typer.Context,
    settings: Settings,
    names: Annotated[
        list[str], typer.Argument(help="Two runs or more: names, bundle folders or 'latest'", metavar="RUN")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="The HTML page to write (default: <results-dir>/compare__<digest of the names>/compare.html)",
            metavar="PATH",
        ),
    ] = None,
) -> None:
    """Two or more runs side by side: a table of their setup and latest backtest (total return, Sharpe, max
    drawdown, against buy-and-hold), and an HTML page overlaying their equity curves (offline, one file)."""
    from finrl.runs.catalog import find_run, scan_reports
    from finrl.runs.compare import compare_runs, default_output, write_comparison

    reports = scan_reports(settings.results_dir)  # once for every run named
    runs = [find_run(name, settings.trained_models_dir, settings.results_dir, reports) for name in names]
    comparison = compare_runs(runs)
    target = output or default_output(settings.results_dir, [run.name for run in runs])
    print_comparison(comparison)
    written = write_comparison(comparison, target, flag="--output" if output else "--results-dir")
    echo_lines([f"page: {written}"])


@runs_app.command("convert", epilog=CONVERT_EXAMPLES, short_help="Add policy.npz to a bundle from before it existed")
@settings_command(MODELS_FLAGS)
def convert_command(
    ctx: typer.Context,
    settings: Settings,
    model: Annotated[str, typer.Argument(help="Bundle folder, run name in the models folder, or 'latest'")],
) -> None:
    """Add torch-free policy arrays (policy.npz) to a bundle written before they existed (needs finrl[train])."""
    from finrl.agents.bundle import POLICY_FILE, convert_bundle, load_bundle

    bundle = load_bundle(model, settings.trained_models_dir)
    if POLICY_FILE in bundle.manifest.files:
        echo_lines([f"{bundle.path}: already has {POLICY_FILE}"])
        return
    convert_bundle(bundle)
    echo_lines([f"{bundle.path}: wrote {POLICY_FILE}; backtests and paper trading no longer need torch for it"])


# ---------------------------------------------------------------- printing


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, markup=False)


def _number(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _created(value: str | None) -> str:
    if not value:
        return "—"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d\n%H:%M")
    except ValueError:
        return value


def _window(span: Any) -> str:
    return f"{span.start}\n{span.end}" if span else "—"  # a date a line: a narrow cell keeps each whole


def print_catalog(catalog: Catalog) -> None:

    console = _console()
    if not catalog.runs:
        console.print(f"no runs in {catalog.models_dir}: train one with spy-rl train (or pass --models-dir)")
    else:
        table = _table(f"runs in {catalog.models_dir}, newest first")
        for header in ("run\ncreated UTC", "seed", "data", "train\nwindow", "val\nwindow"):
            table.add_column(header, overflow="fold")
        for header in ("steps", "val\nSharpe", "last test\nSharpe"):
            table.add_column(header, overflow="fold", justify="right")
        for run in catalog.runs:
            table.add_row(*_catalog_row(run, latest=run.name == catalog.latest))
        console.print(table)
    for run in catalog.runs:
        if run.problem:
            console.print(f"{run.name}: unreadable: {run.problem}", soft_wrap=True)
    if catalog.interrupted:
        console.print(
            f"interrupted, never published (not runs): {', '.join(catalog.interrupted)}; each keeps its "
            f"checkpoint in {catalog.models_dir}/<name>/checkpoints",
            soft_wrap=True,
        )


def _table(title: str) -> Any:
    """A borderless table, one space between columns (the box's divider): at 80 columns a date stays whole."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0, leading=1, title=title, title_justify="left")


def _catalog_row(run: Run, *, latest: bool = False) -> list[str]:
    name = run.name + (" (ensemble)" if run.kind == "ensemble" else "") + (" (latest)" if latest else "")
    if run.problem:
        return [f"{name}\nunreadable", *["—"] * 7]  # the reason follows the table, in full
    last = run.last_report
    test = f"{_number(last.metric('agent', 'sharpe'))}\n{last.test.start}\n{last.test.end}" if last else "—"
    return [
        f"{name}\n{_created(run.created_at)}",
        run.seeds or "—",
        run.data_source or "—",
        _window(run.train),
        _window(run.validation),
        f"{run.timesteps:,}" if run.timesteps is not None else "—",
        _number(run.validation_sharpe),
        test,
    ]


def show_lines(run: Run, details: dict[str, Any]) -> list[str]:
    kind = "ensemble of " + ", ".join(run.members) if run.kind == "ensemble" else "model bundle"
    created = _created(run.created_at).replace("\n", " ")
    lines = [f"{run.name} ({kind})", f"  path:         {run.path}", f"  created:      {created} UTC"]
    if run.kind == "ensemble":
        ensemble = details["ensemble"]
        lines.append(f"  rule:         {ensemble['rule']}, members' books from {ensemble['anchor']}")
        lines.append(
            "  seeds:        " + ", ".join(f"{n} {s}" for n, s in zip(run.members, run.member_seeds, strict=False))
        )
    else:
        lines.append(f"  seed:         {run.seed}")
    data = details["data"]
    label = f" ({data['label']})" if data.get("label") else ""
    lines.append(f"  data:         {run.data_source or '—'}{label}, {data.get('first_date')}..{data.get('last_date')}")
    lines.append(f"  fingerprint:  {data.get('fingerprint') or '—'}")
    test = details.get("test")
    windows = [f"train {run.train}" if run.train else None, f"validation {run.validation}" if run.validation else None,
               f"test (default) {test['start']}..{test['end']}" if test else None]  # fmt: skip
    lines.append("  windows:      " + ", ".join(w for w in windows if w))
    if details.get("ppo"):
        lines.append("  PPO:          " + ", ".join(f"{k}={v}" for k, v in details["ppo"].items()))
    space = details["action_space"]
    if space:
        extra = [f"{k}={v}" for k, v in space.items() if k != "action_space" and v is not None]
        lines.append(f"  action space: {space.get('action_space')}" + (f" ({', '.join(extra)})" if extra else ""))
    if details["reward"]:
        reward = details["reward"]
        extra = [f"{k}={v}" for k, v in reward.items() if k != "reward"]
        lines.append(f"  reward:       {reward.get('reward')}" + (f" ({', '.join(extra)})" if extra else ""))
    lines.extend(_execution_lines(details))
    features = details["features"]
    if features.get("observed"):
        vix = "with VIX" if features.get("use_vix") else "without VIX"
        lines.append(f"  features:     {len(features['observed'])} observed, {vix}: {', '.join(features['observed'])}")
    lines.extend(_training_lines(run, details["training"]))
    if details.get("tune"):
        lines.append(f"  tuned:        study {details['tune'].get('study')}, trial {details['tune'].get('trial')}")
    lines.append(f"backtests ({len(run.reports)}, newest first)" if run.reports else
                 f"backtests: none: run spy-rl backtest --model {run.name}")  # fmt: skip
    lines.extend(line for report in run.reports for line in _report_lines(report))
    return lines


def _execution_lines(details: dict[str, Any]) -> list[str]:
    execution = details.get("execution")
    if not execution:
        return []
    costs = execution.get("costs", {})
    cash = details.get("initial_cash")
    return [
        f"  costs:        commission {costs.get('commission_bps')} bp, spread {costs.get('spread_bps')} bp, "
        f"slippage {costs.get('slippage_bps')} bp, impact coefficient {costs.get('impact_coef')}, "
        f"SEC fee ${costs.get('sec_fee_per_million')}/million, FINRA TAF ${costs.get('finra_taf_per_share')}/share",
        f"  execution:    fills at the {str(execution.get('fill_at')).replace('_', ' ')}, position fraction "
        f"{execution.get('position_fraction')}, short {'allowed' if execution.get('allow_short') else 'off'}, "
        f"{'fractional' if execution.get('fractional_shares') else 'whole'} shares"
        + (f", initial cash {cash:,.0f}" if isinstance(cash, int | float) else ""),
    ]


def _training_lines(run: Run, training: dict[str, Any]) -> list[str]:
    if run.kind == "ensemble":
        return []
    timesteps, wall = training.get("timesteps"), training.get("wall_seconds")
    lines = [f"  training:     {timesteps:,} timesteps" + (f" in {wall:.1f} s" if wall else "")] if timesteps else []
    choice = training.get("model_choice")
    if choice == "best_validation_sharpe":
        kept = (
            f"the best on validation, at {training.get('best_validation_timesteps'):,} timesteps "
            f"(of {training['evaluations']} evaluations)"
        )
    elif choice == "final":
        kept = "the final model" + ("" if training["evaluations"] else " (no validation)")
    else:
        kept = str(choice or "—")
    lines.append(f"  kept model:   {kept}")
    kept_metrics = training.get("kept_validation") or {}
    shown = f"Sharpe {_number(run.validation_sharpe)}"
    if kept_metrics.get("total_return") is not None:
        shown += f", total return {kept_metrics['total_return']:.2%}"
    bench = training.get("validation_buy_and_hold")
    if bench:
        shown += f" (buy-and-hold: Sharpe {_number(bench.get('sharpe'))}, total return {bench['total_return']:.2%})"
    lines.append(f"  validation:   {shown if run.validation_sharpe is not None else 'none'}")
    lines.append(f"  tensorboard:  {training.get('tensorboard_run') or '—'}")
    return lines


def _report_lines(report: BacktestReport) -> list[str]:
    def pair(strategy: str) -> str:
        total = report.metric(strategy, "total_return")
        return f"Sharpe {_number(report.metric(strategy, 'sharpe'))}, return {_number(total, '.2%')}"

    lines = [f"  {report.test}: agent {pair('agent')}; buy-and-hold {pair('buy_and_hold')}",
             f"      report: {report.html}"]  # fmt: skip
    lines.extend(f"      warning: {warning}" for warning in report.warnings)
    return lines


SETUP_COLUMNS = ("run", "seed", "train", "validation", "timesteps", "val_sharpe")
TEST_COLUMNS = (
    "run",
    "test",
    "total_return",
    "sharpe",
    "max_drawdown",
    "bh_total_return",
    "bh_sharpe",
    "excess_return",
)


def print_comparison(comparison: Comparison) -> None:
    """The comparison's table in two parts (setup, then the latest backtest), each run a row: one table
    of 13 columns cannot be read at 80 columns. The page has it whole."""
    from finrl.runs.compare import COLUMNS

    titles = dict(COLUMNS) | {"val_sharpe": "val\nSharpe", "total_return": "total\nreturn", "max_drawdown":
                              "max\ndrawdown", "bh_total_return": "B&H\nreturn", "bh_sharpe": "B&H\nSharpe",
                              "excess_return": "vs B&H\nreturn", "test": "test\nwindow"}  # fmt: skip
    keys = [key for key, _ in COLUMNS]
    rows = comparison.formatted_rows()
    console = _console()
    for title, shown in (("runs", SETUP_COLUMNS), ("latest backtest of each run", TEST_COLUMNS)):
        table = _table(title)
        for key in shown:
            table.add_column(titles[key], overflow="fold", justify="left" if key in ("run", "train", "validation",
                             "test") else "right")  # fmt: skip
        for row in rows:
            cells = [row[keys.index(key)] for key in shown]
            table.add_row(*(cell.replace("..", "\n") if cell.count("..") == 1 else cell for cell in cells))
        console.print(table)
    for warning in comparison.warnings:
        console.print(f"warning: {warning}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
