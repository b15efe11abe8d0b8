"""``.env.example`` lists every setting once, with a comment and its default, as ``Settings`` declares them:
a field added, renamed or given a new default fails here until the file follows; loaded as the ``.env``
file it changes no setting."""

from __future__ import annotations

import re

import pytest

from finrl.applications.spy_rl_trading.settings import Settings
from unit_tests.conftest import default_settings
from unit_tests.deploy.conftest import REPO_ROOT
from unit_tests.deploy.test_defaults_agree import DEFAULTS, LOADER_DEFAULTS, agrees

pytestmark = pytest.mark.unit

ENV_EXAMPLE = REPO_ROOT / ".env.example"
# `NAME=value`, or `# NAME=value` for a variable that is unset by default (or read before .env itself)
ASSIGNMENT = re.compile(r"^(?P<commented># )?(?P<name>(?:SPY|ALPACA)_[A-Z0-9_]+)=(?P<value>.*)$")


def entries() -> list[tuple[int, bool, str, str]]:
    """(line number, commented out, variable, value) of each variable line."""
    found = []
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        if match := ASSIGNMENT.match(line):
            found.append((number, bool(match["commented"]), match["name"], match["value"]))
    return found


def test_every_setting_is_listed_once() -> None:
    names = [name for _, _, name, _ in entries()]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert duplicates == [], f".env.example lists these more than once: {duplicates}"
    expected = set(DEFAULTS) | set(LOADER_DEFAULTS)
    assert sorted(expected - set(names)) == [], ".env.example misses these settings"
    assert sorted(set(names) - expected) == [], ".env.example lists variables that are no settings"


def test_each_value_is_the_default_and_each_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    wrong = []
    for number, commented, name, value in entries():
        default = LOADER_DEFAULTS.get(name, DEFAULTS.get(name))
        comment = lines[number - 2] if number >= 2 else ""
        if not (comment.startswith("# ") and not ASSIGNMENT.match(comment)):
            wrong.append(f"line {number}: {name} has no comment line above it")
        if name in LOADER_DEFAULTS:
            if not commented or value != str(default):
                wrong.append(f"line {number}: {name} is read before .env: '# {name}={default}'")
        elif commented != (default is None):
            wrong.append(f"line {number}: {name} must be {'commented out (unset)' if default is None else 'set'}")
        elif not agrees(value, default):
            wrong.append(f"line {number}: {name}={value}, but the default is {default!r}")
    assert wrong == []


def test_loaded_as_the_env_file_it_changes_no_setting() -> None:
    loaded = Settings(_env_file=ENV_EXAMPLE, _secrets_dir=None)
    assert loaded.model_dump() == default_settings().model_dump()
