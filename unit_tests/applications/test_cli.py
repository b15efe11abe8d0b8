"""The spy-rl command line: help, version, data fetch/validate, and one-line failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finrl import __version__
from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import make_bars, write_csv

pytestmark = pytest.mark.unit
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def assert_one_line_failure(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) >= 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize("args", [[], ["data"], ["data", "fetch"], ["data", "validate"], ["version"]])
def test_help_everywhere(args: list[str]) -> None:
    result = invoke(*args, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_version() -> None:
    result = invoke("version")
    assert result.exit_code == 0 and result.output.strip() == f"finrl {__version__}"


def test_fetch_sample_writes_a_feature_complete_dataset(tmp_path: Path) -> None:
    result = invoke("data", "fetch", "--source", "sample", "--datasets-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    (directory,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in ("bars.csv", "metadata.json", "features.csv", "features.json"):
        assert (directory / name).is_file(), name
    meta = json.loads((directory / "features.json").read_text())
    assert "stand-in for SPY" in meta["data"]["label"]
    assert meta["first_date"] == "2014-04-03" and meta["data"]["last_date"] == "2018-12-31"
    assert "vix" in meta["feature_spec"]["observation_columns"]
    assert "stand-in for SPY" in result.output


def test_environment_variables_configure_the_command(tmp_path: Path) -> None:
    spy = write_csv(make_bars(200, vix=False), tmp_path / "spy.csv")
    env = {
        "SPY_DATA_SOURCE": "csv",
        "SPY_CSV_PATH": str(spy),
        "SPY_USE_VIX": "false",
        "SPY_DATASETS_DIR": str(tmp_path / "ds"),
    }
    result = invoke("data", "fetch", env=env)
    assert result.exit_code == 0, result.stderr
    assert list((tmp_path / "ds").glob("csv-SPY-*/features.csv"))


def test_flags_beat_environment(tmp_path: Path) -> None:
    env = {"SPY_DATA_SOURCE": "csv", "SPY_DATASETS_DIR": str(tmp_path / "env")}
    result = invoke("data", "fetch", "--source", "sample", "--datasets-dir", str(tmp_path / "flag"), env=env)
    assert result.exit_code == 0, result.stderr
    assert list((tmp_path / "flag").glob("sample-*")) and not (tmp_path / "env").exists()


def test_invalid_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    result = invoke("data", "fetch", env={"SPY_LEARNING_RATE": "abc", "SPY_DATASETS_DIR": str(tmp_path)})
    assert_one_line_failure(result, 2, "error: SPY_LEARNING_RATE: expected a number in (0, 1), got 'abc'")
    result = invoke("data", "fetch", "--start", "2020-13-45", "--datasets-dir", str(tmp_path))
    assert_one_line_failure(
        result, 2, "error: --start: expected a date as YYYY-MM-DD (e.g. 2020-12-31), got '2020-13-45'"
    )


def test_offline_without_cache_is_one_line(tmp_path: Path) -> None:
    result = invoke("data", "fetch", "--source", "yahoo", "--offline", "--datasets-dir", str(tmp_path))
    assert_one_line_failure(result, 1, "--source sample")


def test_validate_good_csv(tmp_path: Path) -> None:
    path = write_csv(make_bars(250, vix=False), tmp_path / "good.csv")
    result = invoke("data", "validate", "--csv", str(path))
    assert result.exit_code == 0, result.stderr
    assert "250 rows" in result.stdout and "0 error(s)" in result.stdout


def test_validate_bad_csv_lists_each_problem(tmp_path: Path) -> None:
    bars = make_bars(250, vix=False)
    bars = bars.drop(bars.index[20])
    bars.loc[bars.index[30], "close"] = float("nan")
    bars.loc[bars.index[40], "low"] = bars.loc[bars.index[40], "high"] * 2
    path = write_csv(bars, tmp_path / "bad.csv")
    result = invoke("data", "validate", "--csv", str(path))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, result.stderr  # gap, NaN, high<low, open/close outside range
    assert any("missing" in e and "trading day" in e for e in errors)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "CSV file not found"),
        ("date,open,close\n2020-01-02,1,2\n", "missing column(s) high, low, volume"),
        ("date,open,high,low,close,volume\n2020-01-02,a,b,c,d,e\n", "non-numeric"),
        ("", "not a readable CSV"),
    ],
)
def test_validate_unusable_files(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_text(content)
    assert_one_line_failure(invoke("data", "validate", "--csv", str(path)), 1, fragment)


def test_json_logs_on_demand(tmp_path: Path) -> None:
    result = invoke("--log-json", "data", "fetch", "--datasets-dir", str(tmp_path))
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert records and all({"timestamp", "level", "event", "logger"} <= r.keys() for r in records)
    assert any(r["event"] == "sample_data" and r["level"] == "warning" for r in records)
