"""Bad command lines and impossible inputs end in one ``error:`` line with the documented exit code, never
a traceback or a usage panel (issue 13): usage errors and settings errors exit 2, data errors 1; error
lines are capped; dates outside the NYSE calendar, zero-width layers and a missing CUDA are refused."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from finrl.applications.spy_rl_trading.cli_support import MAX_ERROR_CHARS, error_line
from finrl.applications.spy_rl_trading.settings import load_settings
from finrl.calendar import trading_sessions
from finrl.errors import ConfigError, DataError
from finrl.masking import MASK, _secrets, register_secrets
from unit_tests.conftest import TINY_TRAINING, make_bars, write_csv

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def assert_one_error_line(result: Any, code: int, *fragments: str) -> str:
    output = result.stdout + result.stderr
    assert result.exit_code == code, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in output and "╭" not in output and "Usage:" not in output, output
    assert len(errors[0]) <= MAX_ERROR_CHARS
    assert all(f in errors[0] for f in fragments), errors[0]
    return errors[0]


# ---------------------------------------------------------------- usage errors: exit 2, one line


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--timesteps", "abc"], ["spy-rl train: Invalid value for '--timesteps'", "spy-rl train --help"]),
        (["train", "--no-such-flag"], ["No such option: --no-such-flag"]),
        (["backtest", "--fill-at"], ["Option '--fill-at' requires an argument"]),
        (["no-such-command"], ["No such command 'no-such-command'"]),
        (["data", "fetch", "--offline", "extra"], ["unexpected extra argument", "(extra)"]),
        (["tune", "run", "--workers", "x"], ["spy-rl tune run: "]),
        (["--seed", "abc", "version"], ["Invalid value for '--seed'"]),
    ],
)
def test_a_usage_error_is_one_error_line_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_error_line(invoke(*args), 2, *fragments)


@pytest.mark.unit
def test_help_and_bare_groups_still_show_the_help() -> None:
    assert invoke("train", "--help").exit_code == 0
    bare = invoke("data")
    assert "Usage" in bare.output and "error:" not in bare.output


# ---------------------------------------------------------------- settings errors: exit 2, one line


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "env", "fragments"),
    [
        (["--net-arch", "0"], {}, ["error: --net-arch: ", "between 1 and", "got 0"]),
        (["--net-arch", "64,0"], {}, ["--net-arch: ", "64,0"]),
        (["--net-arch", "64,-8"], {}, ["--net-arch: ", "64,-8"]),
        ([], {"SPY_NET_ARCH": "0"}, ["error: SPY_NET_ARCH: ", "got 0"]),
        (["--net-arch", "10000000"], {}, ["--net-arch: "]),
        (["--train-start", "2017-01-01", "--train-end", "2016-01-01"], {}, ["--train-start 2017-01-01 is after"]),
        (["--test-start", "2018-06-01", "--test-end", "2018-01-01"], {}, ["--test-start 2018-06-01 is after"]),
        (["--val-start", "2018-06-01", "--val-end", "2018-01-01"], {}, ["--val-start 2018-06-01 is after"]),
        ([], {"SPY_TRAIN_START": "2017-01-02", "SPY_TRAIN_END": "2017-01-01"},
         ["SPY_TRAIN_START=2017-01-02 (--train-start)"]),
        (["--initial-cash", "nan"], {}, ["--initial-cash: expected a finite number greater than 0, got nan"]),
        (["--commission-bps", "inf"], {}, ["--commission-bps: expected a finite number", "got inf"]),
        ([], {"SPY_MAX_ORDER_NOTIONAL": "inf"}, ["SPY_MAX_ORDER_NOTIONAL: expected a finite number", "got 'inf'"]),
    ],
)  # fmt: skip
def test_an_impossible_setting_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], fragments: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    line = assert_one_error_line(invoke("train", "--source", "sample", *args, env=env), 2, *fragments)
    assert line.startswith(("error: --", "error: SPY_"))  # the flag, or the variable, the user set
    assert not (tmp_path / "trained_models").exists() and not (tmp_path / "datasets").exists()


@pytest.mark.unit
def test_layer_widths_are_written_plainly() -> None:
    assert load_settings(net_arch="128,064").net_arch == "128,64"


# ---------------------------------------------------------------- the torch device


@pytest.mark.unit
def test_cuda_without_cuda_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert_one_error_line(invoke("train", "--source", "sample", "--device", "cuda"), 2,
                          "SPY_DEVICE=cuda", "finds no CUDA device", "--device cpu")  # fmt: skip
    assert not (tmp_path / "trained_models").exists() and not (tmp_path / "datasets").exists()  # refused first


@pytest.mark.unit
@pytest.mark.parametrize(("available", "device"), [(False, "cpu"), (True, "cuda")])
def test_auto_resolves_to_the_device_torch_finds(monkeypatch: pytest.MonkeyPatch, available: bool, device: str) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert load_settings(device="auto").torch_device() == device
    assert load_settings(device="cpu").torch_device() == "cpu"


@pytest.mark.integration
def test_auto_says_which_device_it_took(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    result = invoke("--log-json", "train", "--source", "sample", *TINY_TRAINING, "--device", "auto", "--run-name", "a")
    assert result.exit_code == 0, result.output + result.stderr
    (picked,) = [json.loads(line) for line in result.stderr.splitlines() if '"torch_device"' in line]
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert picked["device"] == expected and picked["level"] == ("info" if expected == "cuda" else "warning")
    manifest = json.loads((tmp_path / "trained_models" / "a" / "bundle.json").read_text())
    assert manifest["ppo_config"]["device"] == expected  # the bundle records the device it trained on


# ---------------------------------------------------------------- dates the calendar does not know


def dated_2099(path: Path) -> Path:
    bars = make_bars(60, vix=False)
    bars.index = bars.index + pd.DateOffset(years=83)
    return write_csv(bars, path)


@pytest.mark.unit
def test_validating_a_csv_dated_2099_is_one_line_per_problem(tmp_path: Path) -> None:
    result = invoke("data", "validate", "--csv", str(dated_2099(tmp_path / "future.csv")))
    assert_one_error_line(result, 1, "60 date(s) outside the NYSE calendar", "2099-01-05")


@pytest.mark.unit
def test_training_on_a_csv_dated_2099_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--source", "csv", "--csv", str(dated_2099(tmp_path / "future.csv")), "--no-vix")
    assert_one_error_line(result, 1)
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.unit
def test_the_calendar_refuses_dates_it_does_not_cover_in_one_line() -> None:
    with pytest.raises(DataError, match=r"^dates 2099-01-01\.\.2099-02-01 reach outside the NYSE calendar"):
        trading_sessions(pd.Timestamp("2099-01-01"), pd.Timestamp("2099-02-01"))


# ---------------------------------------------------------------- capped lines


@pytest.mark.unit
def test_a_one_line_230_kb_csv_gives_a_capped_error_line(tmp_path: Path) -> None:
    noise = random.Random(0).choices(string.ascii_letters + string.digits + "+/", k=230_000)
    path = tmp_path / "noise.csv"
    path.write_text("".join(noise))
    for args in (["data", "validate", "--csv", str(path)], ["train", "--source", "csv", "--csv", str(path)]):
        line = assert_one_error_line(invoke(*args, "--no-vix"), 1)
        assert len(line) == MAX_ERROR_CHARS and line.endswith("...")


@pytest.mark.unit
def test_error_line_joins_lines_masks_secrets_and_caps() -> None:
    try:
        register_secrets(["s3cr3t-value"])
        assert error_line("first\nsecond\r\nthird") == "error: first second  third"
        assert error_line("key s3cr3t-value") == f"error: key {MASK}"
        assert error_line("x" * 1000) == "error: " + "x" * (MAX_ERROR_CHARS - 10) + "..."
        assert error_line("short") == "error: short"
    finally:
        _secrets.clear()


@pytest.mark.unit
def test_settings_errors_raise_config_errors_with_exit_code_2() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(train_start="2020-01-02", train_end="2020-01-01")
    assert caught.value.exit_code == 2


def test_an_error_line_holds_no_control_characters() -> None:
    """An echoed HTTP body may carry ESC sequences or line separators: none reaches the terminal."""
    line = error_line("bad\x1b[31mred\nnext\r\x07bell\u2028sep\x7f")
    assert line == "error: bad [31mred next  bell sep "
