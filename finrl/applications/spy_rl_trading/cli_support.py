"""What every ``spy-rl`` command shares: settings-backed flags, settings loading, one-line errors.

A command lists the settings it exposes as :class:`Flag` entries; each becomes a typer option
whose type and help come from the settings model, with the matching environment variable in
the help. A flag and its variable therefore always mean the same thing.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import textwrap
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from finrl.applications.spy_rl_trading.settings import (
    COST_FIELDS,
    Settings,
    env_name,
    field_metavar,
    load_settings,
)
from finrl.errors import FinRLError
from finrl.fileio import filesystem_error, is_filesystem_error
from finrl.masking import has_registered, mask_registered, register_secrets

MAX_ERROR_CHARS = 300  # an error line longer than this ends in "..."


@dataclass(frozen=True)
class Flag:
    """A command-line option backed by the settings field ``field``."""

    field: str
    names: tuple[str, ...] = ()  # default: --field-name (and --no-field-name for booleans)

    def option_names(self) -> tuple[str, ...]:
        if self.names:
            return self.names
        dashed = self.field.replace("_", "-")
        return (f"--{dashed}/--no-{dashed}",) if _cli_type(self.field) is bool else (f"--{dashed}",)


# the root command's settings flags (spy-rl --log-level ... COMMAND): errors name them as typed
ROOT_FLAG_NAMES = {"log_level": "--log-level", "log_json": "--log-json", "random_seed": "--seed"}
LOG_FLAGS: tuple[Flag, ...] = (Flag("log_level"), Flag("log_json", ("--log-json/--log-console",)))
DATA_FLAGS: tuple[Flag, ...] = (
    Flag("data_source", ("--source", "--data-source")),
    Flag("symbol"),
    Flag("csv_path", ("--csv",)),
    Flag("vix_csv_path", ("--vix-csv",)),
    Flag("use_vix", ("--vix/--no-vix",)),
    Flag("start_date", ("--start",)),
    Flag("end_date", ("--end",)),
    Flag("offline", ("--offline/--online",)),
    Flag("datasets_dir"),
)
# the paper trader's market data: its own flags; the symbol, VIX choice and first day are the model's
LIVE_DATA_FLAGS: tuple[Flag, ...] = (
    Flag("live_source"),
    Flag("live_csv_path", ("--live-csv",)),
    Flag("live_vix_source"),
    Flag("live_vix_csv_path", ("--live-vix-csv",)),
    Flag("offline", ("--offline/--online",)),
    Flag("datasets_dir"),
)
SPLIT_FLAGS: tuple[Flag, ...] = tuple(
    Flag(f) for f in ("train_start", "train_end", "val_start", "val_end", "test_start", "test_end")
)
EXECUTION_FLAGS: tuple[Flag, ...] = tuple(
    Flag(f)
    for f in (
        "initial_cash",
        *COST_FIELDS,
        "position_fraction",
        "allow_short",
        "fractional_shares",
        "fill_at",
    )
)
TRAINING_FLAGS: tuple[Flag, ...] = (
    Flag("total_timesteps", ("--timesteps",)),
    Flag("learning_rate"),
    Flag("random_seed", ("--seed",)),
    *(
        Flag(f)
        for f in (
            "n_envs",
            "n_steps",
            "batch_size",
            "n_epochs",
            "gamma",
            "gae_lambda",
            "clip_range",
            "ent_coef",
            "target_kl",
            "net_arch",
            "episode_length",
            "eval_freq",
            "checkpoint_freq",
            "torch_threads",
            "device",
            "action_space",
            "weight_levels",
            "rebalance_band",
            "reward",
            "dsr_eta",
            "drawdown_penalty",
            "regime_features",  # a model's features: backtests and the trader read it from the bundle
        )
    ),
    Flag("run_name", ("--name", "--run-name")),
    Flag("trained_models_dir", ("--models-dir",)),
    Flag("tensorboard_log_dir", ("--tensorboard-dir",)),
)


BACKTEST_FLAGS: tuple[Flag, ...] = (
    Flag("test_start"),
    Flag("test_end"),
    Flag("risk_free_rate"),
    Flag("results_dir"),
    *(Flag(f) for f in COST_FIELDS),  # re-run a bundle under other costs: only those given replace its own
    Flag("fill_at"),
    # the paper trader's risk limits, applied to the agent (not the baselines) unless --no-risk-limits
    Flag("backtest_risk_limits", ("--risk-limits/--no-risk-limits",)),
    Flag("max_drawdown"),
    Flag("max_daily_loss"),
    Flag("max_position_fraction"),
    Flag("max_order_notional"),
)


PAPER_FLAGS: tuple[Flag, ...] = (
    Flag("broker"),
    Flag("model"),
    Flag("dry_run", ("--dry-run/--send-orders",)),
    Flag("trading_mode"),
    Flag("live_trading_confirmed", ("--confirm-live-trading/--no-confirm-live-trading",)),
    Flag("strategy_name"),
    Flag("decision_delay_minutes"),
    Flag("late_policy"),
    Flag("max_drawdown"),
    Flag("max_daily_loss"),
    Flag("max_position_fraction"),
    Flag("max_order_notional"),
    Flag("metrics_port"),
    Flag("alpaca_base_url"),
    Flag("trained_models_dir", ("--models-dir",)),
    Flag("logs_dir"),
)


# the help's sections, in this order; a command's own options come first, under "Options"
PANELS: tuple[str, ...] = (
    "Options",
    "Data",
    "Windows",
    "Training",
    "Costs and execution",
    "Backtest",
    "Risk limits",
    "Paper trading",
    "Tuning",
    "Folders",
    "Logging",
)
_PANEL_FIELDS: dict[str, tuple[str, ...]] = {
    "Data": ("data_source", "symbol", "csv_path", "vix_csv_path", "use_vix", "start_date", "end_date", "offline",
             "live_source", "live_csv_path", "live_vix_source", "live_vix_csv_path"),
    "Windows": tuple(f.field for f in SPLIT_FLAGS),
    "Training": tuple(f.field for f in TRAINING_FLAGS if not f.field.endswith("_dir")),
    "Costs and execution": tuple(f.field for f in EXECUTION_FLAGS),
    "Backtest": ("risk_free_rate", "backtest_risk_limits"),
    "Risk limits": ("max_drawdown", "max_daily_loss", "max_position_fraction", "max_order_notional"),
    "Paper trading": tuple(f.field for f in PAPER_FLAGS if f.field not in ("trained_models_dir", "logs_dir")
                           and not f.field.startswith("max_")),
    "Tuning": ("tune_storage", "tune_heartbeat_interval", "tune_grace_period"),
    "Folders": ("datasets_dir", "trained_models_dir", "tensorboard_log_dir", "results_dir", "logs_dir"),
    "Logging": ("log_level", "log_json"),
}  # fmt: skip
FIELD_PANELS: dict[str, str] = {field: panel for panel, names in _PANEL_FIELDS.items() for field in names}

HELP_INDENT = 4  # an option's help sits under its names, this much further in


def _wrap(text: str, width: int, indent: str, *, keep_words: bool = False) -> list[str]:
    """``text`` in lines of at most ``width`` characters (a word longer than a line is split unless
    ``keep_words``: option names are never cut, they break only between names)."""
    return textwrap.wrap(
        text,
        width=max(width, len(indent) + 10),
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=not keep_words,
        break_on_hyphens=False,
    )


def format_options(command: Any, ctx: Any, formatter: Any) -> None:
    """Every option as its full names on a line and its help wrapped under them, in sections.

    A two-column table cuts long names or squeezes the help into a narrow column at 80 columns;
    this layout reads the same in a terminal of any width and in a pipe.
    """
    sections: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        kind = "Arguments" if param.param_type_name == "argument" else "Options"
        if kind == "Arguments":  # typer adds an argument's Python type ("RUN <list[str]>"): the metavar only
            record = (param.metavar or param.name.upper(), record[1])
        sections.setdefault(getattr(param, "rich_help_panel", None) or kind, []).append(record)
    order = ("Arguments", *PANELS)
    for name in sorted(sections, key=lambda s: order.index(s) if s in order else len(order)):
        formatter.write_paragraph()
        formatter.write_heading(name)
        width, indent = formatter.width, " " * (formatter.current_indent + 2)
        for names, help_text in sections[name]:
            formatter.write("\n".join(_wrap(names, width, indent, keep_words=True)) + "\n")
            # "[env: NAME]" stays on one line: what a reader greps for and copies
            kept = help_text.replace("[env: ", "[env:\0")
            lines = _wrap(kept, width, indent + " " * HELP_INDENT) if help_text else []
            formatter.write("".join(f"{line}\n".replace("\0", " ") for line in lines))
    if isinstance(command, TyperGroup):
        format_commands(command, ctx, formatter)


def format_commands(group: Any, ctx: Any, formatter: Any) -> None:
    """A group's commands as its options: each name on a line, its first sentence whole under it."""
    commands = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    shown = [(name, sub) for name, sub in commands if sub is not None and not sub.hidden]
    if not shown:
        return
    formatter.write_paragraph()
    formatter.write_heading("Commands")
    width, indent = formatter.width, " " * (formatter.current_indent + 2)
    for name, sub in shown:
        formatter.write(f"{indent}{name}\n")
        summary = sub.get_short_help_str(limit=10_000)
        formatter.write("".join(f"{line}\n" for line in _wrap(summary, width, indent + " " * HELP_INDENT)))


def format_examples(command: Any, ctx: Any, formatter: Any) -> None:
    """The epilog: one example command per line, a long one continued with a backslash."""
    if not command.epilog:
        return
    formatter.write_paragraph()
    formatter.write_heading("Examples")
    width, indent = formatter.width, " " * (formatter.current_indent + 2)
    for example in inspect.cleandoc(command.epilog).splitlines():
        if not example.strip():
            continue
        formatter.write(" \\\n".join(_command_lines(example.split(), width - 2, indent)) + "\n")


def _command_lines(words: list[str], width: int, indent: str) -> list[str]:
    """A command line in lines of at most ``width``, broken between options (a flag keeps its value)."""
    chunks: list[str] = []
    for word in words:
        if chunks and chunks[-1].startswith("-") and " " not in chunks[-1] and not word.startswith("-"):
            chunks[-1] += f" {word}"
        else:
            chunks.append(word)
    lines = [indent + chunks[0]]
    for chunk in chunks[1:]:
        if len(lines[-1]) + 1 + len(chunk) <= width:
            lines[-1] += f" {chunk}"
        else:
            lines.append(f"{indent}{' ' * HELP_INDENT}{chunk}")
    return lines


def format_help_text(command: Any, ctx: Any, formatter: Any) -> None:
    """The command's docstring, wrapped between words (never inside ``--models-dir``); a ``\\b`` block
    keeps its lines, and one too wide for the terminal wraps under its own text (a table of codes)."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    if not text:
        return
    indent = " " * (formatter.current_indent + 2)
    width = formatter.width - len(indent)
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("\b\n"):
            for line in paragraph.splitlines()[1:]:
                hanging = re.match(r"\s*\S+\s+", line)
                under = " " * (hanging.end() if hanging and hanging.end() < width // 2 else 0)
                lines += textwrap.wrap(line, width, subsequent_indent=under, break_on_hyphens=False) or [""]
        else:
            lines += textwrap.wrap(" ".join(paragraph.split()), width, break_on_hyphens=False)
        lines.append("")
    formatter.write_paragraph()
    formatter.write("".join(f"{indent}{line}\n" if line else "\n" for line in lines[:-1]))


class PlainHelpLayout:
    """Help that lists each option in full with its help under it (see :func:`format_options`)."""

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        format_help_text(self, ctx, formatter)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_options(self, ctx, formatter)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        format_examples(self, ctx, formatter)


class SpyRlCommand(PlainHelpLayout, TyperCommand):
    """A command laid out by :class:`PlainHelpLayout`."""


class SpyRlSubGroup(PlainHelpLayout, TyperGroup):
    """A command group (``data``, ``tune``, ``runs``) laid out by :class:`PlainHelpLayout`."""


def plain_help(app: typer.Typer) -> None:
    """Give every command and group under ``app`` the layout of :class:`SpyRlCommand`."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # typer's default: a command's own class stays
            command.cls = SpyRlCommand
    for group in app.registered_groups:
        group.cls = SpyRlSubGroup
        if group.typer_instance is not None:
            plain_help(group.typer_instance)


def _cli_type(field: str) -> type:
    """The plain type typer parses for ``field``; dates and choices stay strings for pydantic."""
    annotation = Settings.model_fields[field].annotation
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):  # X | None, Optional[X]
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation in (bool, int, float, Path):
        return annotation  # type: ignore[return-value]  # narrowed to one of these types just above
    return str


def _option_parameter(flag: Flag) -> inspect.Parameter:
    info = Settings.model_fields[flag.field]
    default = info.default if info.default is not None else ""
    shown = f" (default: {default})" if default not in ("", None) else ""
    option = typer.Option(
        *flag.option_names(),
        help=f"{info.description}{shown}  [env: {env_name(flag.field)}]",
        metavar=field_metavar(flag.field),
        rich_help_panel=FIELD_PANELS.get(flag.field),
    )
    annotation = Annotated[_cli_type(flag.field) | None, option]  # type: ignore[valid-type]  # built at run time
    return inspect.Parameter(flag.field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def settings_command(
    *flag_groups: tuple[Flag, ...], logs: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command ``func(ctx, settings, **own_options)`` the settings flags of ``flag_groups``.

    The wrapper loads settings (root flags, then these flags, over the environment), sets up
    logging (unless ``logs`` is false: a command that logs nothing skips structlog's import),
    and turns user errors into one line and an exit code.
    """
    groups = (*flag_groups, LOG_FLAGS)  # every command takes the logging flags (entry modules have no root)
    flags = list({flag.field: flag for group in reversed(groups) for flag in reversed(group)}.values())[::-1]
    names = {flag.field: flag.option_names()[0] for flag in flags}  # errors name the flag typed (--on/--off: both)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(func).parameters.values()
            if p.name not in ("ctx", "settings")
        ]
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        parameters = [context, *own, *(_option_parameter(f) for f in flags)]

        @functools.wraps(func)
        def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
            overrides = {f.field: kwargs.pop(f.field) for f in flags}
            with user_errors():
                settings = start_command(ctx, logs=logs, flag_names=names, **overrides)
                return func(ctx, settings, **kwargs)

        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # typer reads it
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


def start_command(
    ctx: typer.Context, *, logs: bool = True, flag_names: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Load settings (root flags + command flags), then set up logging and secrets masking.

    Nothing is seeded here: only training draws random numbers, and it seeds Python, NumPy and
    torch itself from ``--seed`` (so commands that never train never import NumPy or torch for it).
    """
    root = ctx.find_root().obj or {}
    given = {k: v for k, v in overrides.items() if v is not None}
    names = {**ROOT_FLAG_NAMES, **(flag_names or {})}
    settings = load_settings(flag_names=names, **{**root, **given})
    register_secrets(settings.secret_values())  # masked in error lines too, with or without logging
    if logs:
        from finrl.log import configure_logging

        configure_logging(settings.log_level, json=settings.log_json)
    return settings


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def error_line(message: object) -> str:
    """``error: <message>`` as one line: secrets masked, line breaks joined, at most
    :data:`MAX_ERROR_CHARS` characters (a 230 KB line of a bad CSV quoted in a message, say)."""
    # every control character (ESC sequences from an echoed HTTP body, line breaks) becomes a space
    text = _CONTROL.sub(" ", mask_registered(str(message)))
    line = f"error: {text}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`FinRLError` into one line on stderr and its exit code; Ctrl-C into 130.

    Anything else is a bug and keeps its traceback, but never with a secret in it: one that would
    show a secret (an HTTP error echoing the request's headers, deep in a chain) is printed masked.
    """
    try:
        yield
    except FinRLError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except OSError as exc:
        if not is_filesystem_error(exc):  # a network error is an OSError too: not a path problem
            _report_bug()
        error = filesystem_error(exc)  # a write outside the helpers that name their flag: still one line
        typer.echo(error_line(error), err=True)
        raise typer.Exit(error.exit_code) from None
    except Exception:
        _report_bug()


def _report_bug() -> NoReturn:
    """Re-raise the exception being handled (a bug keeps its traceback), printed masked if it shows a secret."""
    shown = traceback.format_exc()
    if not has_registered(shown):
        raise  # called from an except block: re-raises the exception being handled
    print(mask_registered(shown), file=sys.stderr, end="")
    raise typer.Exit(1) from None


def echo_lines(lines: list[str], *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    for line in lines:
        print(mask_registered(line), file=stream)
