"""All settings of the SPY application in one pydantic-settings model.

Precedence, highest first: command-line flags (passed as keyword arguments) > environment
variables (``SPY_*``; Alpaca's under the deployment doc's names) > ``.env`` file > secret files
(``/run/secrets`` or ``SPY_SECRETS_DIR``, as Docker and Kubernetes mount them) > defaults.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finrl.errors import ConfigError
from finrl.meta.data.market_data import AlpacaCredentials, DataRequest

ENV_PREFIX = "SPY_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
ALPACA_PAPER_URL = "https://paper-api.alpaca.markets"

DataSource = Literal["yahoo", "csv", "alpaca", "sample"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        case_sensitive=False,
    )

    # logging and reproducibility
    log_level: LogLevel = "INFO"
    log_json: bool = False
    random_seed: int = Field(42, ge=0, lt=2**32)

    # market data
    symbol: str = Field("SPY", min_length=1, max_length=12, pattern=r"^[A-Za-z.^-]+$")
    data_source: DataSource = "sample"
    csv_path: Path | None = None
    vix_csv_path: Path | None = None
    use_vix: bool = True
    offline: bool = False
    start_date: date | None = None
    end_date: date | None = None
    train_start: date | None = None
    train_end: date | None = None
    val_start: date | None = None
    val_end: date | None = None
    test_start: date | None = None
    test_end: date | None = None

    # training
    total_timesteps: int = Field(200_000, gt=0)
    learning_rate: float = Field(3e-4, gt=0, lt=1)

    # trading
    trading_mode: Literal["paper", "live"] = "paper"
    live_trading_confirmed: bool = False

    # directories
    trained_models_dir: Path = Path("trained_models")
    tensorboard_log_dir: Path = Path("tensorboard_logs")
    datasets_dir: Path = Path("datasets")
    results_dir: Path = Path("results")
    logs_dir: Path = Path("logs")

    # Alpaca, under the names the deployment doc and Alpaca's own tools use
    alpaca_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("ALPACA_API_KEY", "alpaca_api_key"))
    alpaca_api_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_SECRET", "alpaca_api_secret")
    )
    alpaca_base_url: str = Field(
        ALPACA_PAPER_URL,
        validation_alias=AliasChoices("ALPACA_BASE_URL", "alpaca_base_url"),
        pattern=r"^https?://",
    )
    alpaca_data_url: str | None = Field(None, pattern=r"^https?://")
    alpaca_data_feed: Literal["iex", "sip", "delayed_sip"] = "iex"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("alpaca_api_key", "alpaca_api_secret", mode="before")
    @classmethod
    def _strip_secret(cls, value: Any) -> Any:
        # secret files usually end with a newline; an empty value means "not set"
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError(
                f"{env_name('start_date')}={self.start_date} is after {env_name('end_date')}={self.end_date}"
            )
        return self

    # ---- views used by the library layers

    def data_request(self) -> DataRequest:
        return DataRequest(
            source=self.data_source,
            symbol=self.symbol.upper(),
            start=self.start_date,
            end=self.end_date,
            csv_path=self.csv_path,
            vix_csv_path=self.vix_csv_path,
            use_vix=self.use_vix,
            offline=self.offline,
            alpaca=self.alpaca_credentials(),
        )

    def alpaca_credentials(self) -> AlpacaCredentials | None:
        if self.alpaca_api_key is None or self.alpaca_api_secret is None:
            return None
        return AlpacaCredentials(
            self.alpaca_api_key.get_secret_value(),
            self.alpaca_api_secret.get_secret_value(),
            data_url=self.alpaca_data_url,
            feed=self.alpaca_data_feed,
        )

    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in (self.alpaca_api_key, self.alpaca_api_secret) if s is not None]


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (for error messages and docs)."""
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source; ``overrides`` are command-line values (None = not given).

    Invalid values raise :class:`ConfigError` with one line naming the variable.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    secrets_dir = Path(os.environ.get(f"{ENV_PREFIX}SECRETS_DIR", DEFAULT_SECRETS_DIR))
    env_file = os.environ.get(f"{ENV_PREFIX}ENV_FILE", ".env")
    try:
        return Settings(
            _env_file=env_file,
            _secrets_dir=secrets_dir if secrets_dir.is_dir() else None,
            **given,
        )
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


SECRET_FIELDS = frozenset({"alpaca_api_key", "alpaca_api_secret"})


def _field_of(location: str) -> str:
    """The field behind an error location, which is an alias when the value came from the environment."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and location.upper() in (str(c).upper() for c in alias.choices):
            return name
    return location


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = _field_of(str(error["loc"][0])) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if not field:  # a check across fields: its message names the variables, the input would hold secrets
            problems.append(message)
            continue
        shown = "" if field in SECRET_FIELDS else f"={error.get('input')!r}"
        problems.append(f"{env_name(field)}{shown}: {message}")
    return "invalid setting " + "; ".join(problems)
