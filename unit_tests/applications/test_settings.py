"""Settings: defaults, source precedence, Alpaca names and secrets, one-line ConfigError messages."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from finrl.applications.spy_rl_trading.settings import ALPACA_PAPER_URL, Settings, env_name, load_settings
from finrl.errors import ConfigError
from finrl.meta.data.request import DataRequest

pytestmark = pytest.mark.unit

KEY = "PKTESTKEY123456"
SECRET = "SKTESTSECRET987654321"


def write_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> Path:
    path = tmp_path / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    monkeypatch.setenv("SPY_ENV_FILE", str(path))
    return path


def write_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name, value in values.items():
        (directory / name).write_text(value, encoding="utf-8")
    monkeypatch.setenv("SPY_SECRETS_DIR", str(directory))
    return directory


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert "\n" not in message, f"ConfigError message is not one line: {message!r}"
    return message


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    s = load_settings()
    assert s.log_level == "INFO"
    assert s.log_json is False
    assert s.random_seed == 42
    assert s.symbol == "SPY"
    assert s.data_source == "sample"
    assert s.total_timesteps == 200_000
    assert s.learning_rate == pytest.approx(3e-4)
    assert s.trading_mode == "paper"
    assert s.live_trading_confirmed is False
    assert s.use_vix is True
    assert s.offline is False
    assert s.start_date is None and s.end_date is None
    assert s.csv_path is None
    assert s.trained_models_dir == Path("trained_models")
    assert s.alpaca_api_key is None
    assert s.alpaca_api_secret is None
    assert s.alpaca_base_url == ALPACA_PAPER_URL
    assert s.alpaca_credentials() is None
    assert s.secret_values() == []


def test_cli_none_means_not_given() -> None:
    s = load_settings(learning_rate=None, total_timesteps=None, data_source=None)
    assert s.learning_rate == pytest.approx(3e-4)
    assert s.total_timesteps == 200_000
    assert s.data_source == "sample"


# ---------------------------------------------------------------- precedence

PRECEDENCE = [
    # field, env var, .env value, environment value, CLI value, parsed .env / env / CLI values
    ("learning_rate", "SPY_LEARNING_RATE", "0.01", "0.02", 0.03, (0.01, 0.02, 0.03)),
    ("total_timesteps", "SPY_TOTAL_TIMESTEPS", "1111", "2222", 3333, (1111, 2222, 3333)),
    ("data_source", "SPY_DATA_SOURCE", "csv", "yahoo", "alpaca", ("csv", "yahoo", "alpaca")),
]


@pytest.mark.parametrize(("field", "var", "dotenv", "environ", "cli", "expected"), PRECEDENCE)
def test_precedence_cli_over_env_over_dotenv_over_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    var: str,
    dotenv: str,
    environ: str,
    cli: object,
    expected: tuple[object, object, object],
) -> None:
    default = Settings.model_fields[field].default
    assert getattr(load_settings(), field) == default

    write_env_file(tmp_path, monkeypatch, **{var: dotenv})
    assert getattr(load_settings(), field) == expected[0]

    monkeypatch.setenv(var, environ)
    assert getattr(load_settings(), field) == expected[1]

    assert getattr(load_settings(**{field: cli}), field) == expected[2]
    # a CLI value of None leaves the environment in charge
    assert getattr(load_settings(**{field: None}), field) == expected[1]


def test_all_three_fields_from_one_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env_file(tmp_path, monkeypatch, SPY_LEARNING_RATE="0.005", SPY_TOTAL_TIMESTEPS="777", SPY_DATA_SOURCE="yahoo")
    monkeypatch.setenv("SPY_TOTAL_TIMESTEPS", "888")
    s = load_settings(data_source="csv")
    assert s.learning_rate == pytest.approx(0.005)  # .env
    assert s.total_timesteps == 888  # environment beats .env
    assert s.data_source == "csv"  # CLI beats .env


# ---------------------------------------------------------------- Alpaca names and secrets


def test_alpaca_variables_read_under_their_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    monkeypatch.setenv("ALPACA_BASE_URL", "https://api.alpaca.markets")
    s = load_settings()
    assert isinstance(s.alpaca_api_key, SecretStr)
    assert isinstance(s.alpaca_api_secret, SecretStr)
    assert s.alpaca_api_key.get_secret_value() == KEY
    assert s.alpaca_api_secret.get_secret_value() == SECRET
    assert s.alpaca_base_url == "https://api.alpaca.markets"
    assert sorted(s.secret_values()) == sorted([KEY, SECRET])


def test_alpaca_names_win_over_spy_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPY_ALPACA_API_KEY", "PREFIXEDKEY")
    monkeypatch.setenv("SPY_ALPACA_BASE_URL", "https://prefixed.example.com")
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_BASE_URL", "https://api.alpaca.markets")
    s = load_settings()
    assert s.alpaca_api_key is not None
    assert s.alpaca_api_key.get_secret_value() == KEY
    assert s.alpaca_base_url == "https://api.alpaca.markets"


def test_repr_and_str_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    s = load_settings()
    for text in (repr(s), str(s), repr(s.data_request())):
        assert KEY not in text
        assert SECRET not in text


def test_secrets_from_files_with_trailing_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_secrets_dir(
        tmp_path,
        monkeypatch,
        ALPACA_API_KEY=KEY + "\n",
        ALPACA_API_SECRET=SECRET + "\n",
        ALPACA_BASE_URL="https://api.alpaca.markets",
    )
    s = load_settings()
    assert s.alpaca_api_key is not None and s.alpaca_api_secret is not None
    assert s.alpaca_api_key.get_secret_value() == KEY
    assert s.alpaca_api_secret.get_secret_value() == SECRET
    assert s.alpaca_base_url == "https://api.alpaca.markets"


def test_environment_and_dotenv_beat_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_secrets_dir(tmp_path, monkeypatch, ALPACA_API_KEY="FILEKEY\n", ALPACA_API_SECRET="FILESECRET\n")
    write_env_file(tmp_path, monkeypatch, ALPACA_API_SECRET="DOTENVSECRET")
    monkeypatch.setenv("ALPACA_API_KEY", "ENVKEY")
    s = load_settings()
    assert s.alpaca_api_key is not None and s.alpaca_api_secret is not None
    assert s.alpaca_api_key.get_secret_value() == "ENVKEY"
    assert s.alpaca_api_secret.get_secret_value() == "DOTENVSECRET"


def test_blank_secret_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "  \n")
    assert load_settings().alpaca_api_key is None


# ---------------------------------------------------------------- invalid values


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SPY_LEARNING_RATE", "abc"),
        ("SPY_LEARNING_RATE", "0"),
        ("SPY_TOTAL_TIMESTEPS", "-5"),
        ("SPY_DATA_SOURCE", "bogus"),
        ("SPY_TRADING_MODE", "yolo"),
        ("SPY_LOG_LEVEL", "loud"),
        ("SPY_RANDOM_SEED", "-1"),
    ],
)
def test_invalid_environment_value_raises_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    message = config_error()
    assert var in message


def test_invalid_cli_value_names_the_variable() -> None:
    message = config_error(total_timesteps=-5)
    assert "SPY_TOTAL_TIMESTEPS" in message


@pytest.mark.parametrize(
    ("field", "flag", "value", "expected"),
    [
        ("train_end", "--train-end", "31/12/2020",
         "--train-end: expected a date as YYYY-MM-DD (e.g. 2020-12-31), got '31/12/2020'"),
        ("data_source", "--source", "bogus", "--source: expected 'yahoo', 'csv', 'alpaca' or 'sample', got 'bogus'"),
        ("learning_rate", "--learning-rate", 2.0, "--learning-rate: expected a number in (0, 1), got 2.0"),
        ("total_timesteps", "--timesteps", -5, "--timesteps: expected a whole number greater than 0, got -5"),
        ("risk_free_rate", "--risk-free-rate", 0.9, "--risk-free-rate: expected a number in [-0.05, 0.5], got 0.9"),
        ("symbol", "--symbol", "S P Y",
         "--symbol: expected a ticker of letters, '.', '^' or '-' (e.g. SPY), got 'S P Y'"),
    ],
)  # fmt: skip
def test_invalid_flag_value_names_the_flag_and_the_format(field: str, flag: str, value: object, expected: str) -> None:
    assert config_error(flag_names={field: flag}, **{field: value}) == expected


def test_a_flag_is_named_only_for_the_value_it_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPY_END_DATE", "2019-01-01")
    message = config_error(flag_names={"start_date": "--start", "end_date": "--end"}, start_date=date(2020, 1, 1))
    assert message == "--start 2020-01-01 is after SPY_END_DATE=2019-01-01 (--end)"  # the way to fix it, too


def test_a_switch_is_named_as_it_is_typed() -> None:
    """A boolean flag is --allow-short or --no-allow-short, never '--allow-short true'."""
    flags = {"allow_short": "--allow-short/--no-allow-short", "weight_levels": "--weight-levels"}
    typed_off = config_error(flag_names=flags, allow_short=False, action_space="target_weight", weight_levels="-1,0,1")
    assert typed_off == "--weight-levels -1,0,1: negative levels need --allow-short"
    unset = config_error(flag_names=flags, action_space="target_weight", weight_levels="-1,0,1")
    assert unset == "--weight-levels -1,0,1: negative levels need SPY_ALLOW_SHORT=true (--allow-short)"


def test_invalid_dotenv_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env_file(tmp_path, monkeypatch, SPY_DATA_SOURCE="bogus")
    assert "SPY_DATA_SOURCE" in config_error()


def test_several_invalid_values_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPY_LEARNING_RATE", "abc")
    monkeypatch.setenv("SPY_TRADING_MODE", "yolo")
    message = config_error()
    assert "SPY_LEARNING_RATE" in message and "SPY_TRADING_MODE" in message


def test_config_error_exit_code() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(data_source="bogus")
    assert info.value.exit_code == 2


def test_start_after_end_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPY_START_DATE", "2020-01-01")
    monkeypatch.setenv("SPY_END_DATE", "2019-01-01")
    message = config_error()
    assert "SPY_START_DATE" in message
    assert "SPY_END_DATE" in message


def test_start_after_end_does_not_echo_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    message = config_error(start_date=date(2020, 1, 1), end_date=date(2019, 1, 1))
    assert KEY not in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("field", "var"), [("alpaca_api_key", "ALPACA_API_KEY"), ("alpaca_api_secret", "ALPACA_API_SECRET")]
)
def test_invalid_secret_value_is_not_echoed(field: str, var: str) -> None:
    bad = 98765432123456  # not a string: invalid for SecretStr
    message = config_error(**{field: bad})
    assert var in message
    assert str(bad) not in message


def test_invalid_alpaca_base_url_names_alpaca_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_BASE_URL", "ftp://example.com")
    message = config_error()
    assert "ALPACA_BASE_URL" in message
    assert "SPY_ALPACA_BASE_URL" not in message  # the variable the user must fix has no prefix


# ---------------------------------------------------------------- normalisation and views


@pytest.mark.parametrize("value", ["debug", "Debug", "DEBUG"])
def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SPY_LOG_LEVEL", value)
    assert load_settings().log_level == "DEBUG"
    assert load_settings(log_level="warning").log_level == "WARNING"


def test_data_request_maps_fields(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    vix = tmp_path / "vix.csv"
    s = load_settings(
        data_source="csv",
        symbol="spy",
        start_date="2018-01-02",
        end_date="2018-12-31",
        csv_path=str(csv),
        vix_csv_path=str(vix),
        use_vix=False,
        offline=True,
    )
    request = s.data_request()
    assert isinstance(request, DataRequest)
    assert request.source == "csv"
    assert request.symbol == "SPY"
    assert request.start == date(2018, 1, 2)
    assert request.end == date(2018, 12, 31)
    assert request.csv_path == csv
    assert request.vix_csv_path == vix
    assert request.use_vix is False
    assert request.offline is True
    assert request.alpaca is None


def test_data_request_carries_alpaca_credentials_when_both_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    monkeypatch.setenv("SPY_ALPACA_DATA_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("SPY_ALPACA_DATA_FEED", "sip")
    creds = load_settings(data_source="alpaca").data_request().alpaca
    assert creds is not None
    assert creds.api_key == KEY
    assert creds.api_secret == SECRET
    assert creds.data_url == "http://127.0.0.1:9999"
    assert creds.feed == "sip"


@pytest.mark.parametrize("only", ["ALPACA_API_KEY", "ALPACA_API_SECRET"])
def test_data_request_without_both_credentials_has_none(monkeypatch: pytest.MonkeyPatch, only: str) -> None:
    monkeypatch.setenv(only, KEY)
    s = load_settings()
    assert s.alpaca_credentials() is None
    assert s.data_request().alpaca is None


def test_env_name() -> None:
    assert env_name("alpaca_api_key") == "ALPACA_API_KEY"
    assert env_name("alpaca_api_secret") == "ALPACA_API_SECRET"
    assert env_name("alpaca_base_url") == "ALPACA_BASE_URL"
    assert env_name("learning_rate") == "SPY_LEARNING_RATE"
    assert env_name("total_timesteps") == "SPY_TOTAL_TIMESTEPS"
