"""``--help`` of every command reads well in a narrow terminal and in a pipe: every option's names
in full, no line wider than the terminal, every option described in words, examples to copy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.applications.spy_rl_trading.settings import Settings
from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit
runner = CliRunner()


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))
# a group below the root lists its commands (each gives its own examples); the root shows examples
LEAF_COMMANDS = [(path, command) for path, command in COMMANDS if not (path and getattr(command, "commands", None))]


def _names(command: object) -> list[str]:
    return [name for p in command.params for name in (*p.opts, *getattr(p, "secondary_opts", ())) if "-" in name[:1]]


@pytest.mark.parametrize("columns", [80, 60])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "spy-rl" for p, _ in COMMANDS])
def test_help_shows_every_option_in_full_within_the_width(path: tuple[str, ...], command: object, columns: int) -> None:
    # a terminal of N columns gives N - 2 (click); CliRunner would force 80 (the subprocess test reads COLUMNS)
    result = runner.invoke(app, [*path, "--help"], terminal_width=columns - 2)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= columns for line in lines), [line for line in lines if len(line) > columns]
    words = {word.strip(",") for line in lines for word in line.split()}
    missing = [name for name in _names(command) if name not in words]
    assert not missing, missing
    described = result.output.split("Examples:")[0].split("\n", 1)[1]  # not the usage line: its ARGS... is syntax
    assert "…" not in result.output and "..." not in described  # nothing cut short


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "spy-rl" for p, _ in COMMANDS])
def test_every_option_is_described_in_words(path: tuple[str, ...], command: object) -> None:
    for param in command.params:
        help_text = (getattr(param, "help", None) or "").split("(default:")[0].split("[env:")[0].strip()
        assert help_text, (path, param.name)
        assert help_text.lower() not in (param.name, param.name.replace("_", " ")), (path, param.name, help_text)
        assert len(help_text.split()) >= 2, (path, param.name, help_text)


def test_every_setting_is_described() -> None:
    bare = [name for name, field in Settings.model_fields.items() if not field.description or field.description == name]
    assert not bare


@pytest.mark.parametrize(("path", "command"), LEAF_COMMANDS, ids=[" ".join(p) or "spy-rl" for p, _ in LEAF_COMMANDS])
def test_every_command_has_examples(path: tuple[str, ...], command: object) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    examples = result.output.split("Examples:\n", 1)[-1]
    assert "Examples:" in result.output and examples.lstrip().startswith("spy-rl"), result.output[-400:]


def test_options_are_grouped_in_sections() -> None:
    output = runner.invoke(app, ["pipeline", "--help"], env={"COLUMNS": "80"}).output
    sections = [line[:-1] for line in output.splitlines() if line.endswith(":") and not line.startswith(" ")]
    for section in ("Data", "Windows", "Training", "Costs and execution", "Backtest", "Risk limits", "Folders"):
        assert section in sections, sections
    assert sections.index("Data") < sections.index("Training") < sections.index("Logging")


@pytest.mark.parametrize("module", ["example_training", "example_backtesting", "paper_trading"])
def test_entry_modules_help_fits_a_pipe_of_60_columns(module: str) -> None:
    env = {**os.environ, "COLUMNS": "60", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", f"finrl.applications.spy_rl_trading.{module}", "--help"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Usage: ") and "Examples:" in result.stdout
    assert all(len(line) <= 60 for line in lines), [line for line in lines if len(line) > 60]
