"""All settings of the SPY application in one pydantic-settings model.

Precedence, highest first: command-line flags (passed as keyword arguments) > environment
variables (``SPY_*``; Alpaca's under the deployment doc's names) > ``.env`` file > secret files
(``/run/secrets`` or ``SPY_SECRETS_DIR``, as Docker and Kubernetes mount them) > defaults.
"""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finrl.errors import ConfigError
from finrl.meta.data.request import AlpacaCredentials, DataRequest

if TYPE_CHECKING:  # the views below import the library lazily: settings load on every command, even `health`
    import pandas as pd

    from finrl.agents.ppo import PPOConfig
    from finrl.meta.dataset import FeatureData
    from finrl.meta.env.execution import ExecutionConfig
    from finrl.meta.env.spy_env import EnvConfig
    from finrl.meta.features import FeatureSpec
    from finrl.meta.preprocessing import DataSplit
    from finrl.research.folds import FoldPlan
    from finrl.research.walkforward import WalkForwardConfig
    from finrl.trade.risk import RiskLimits

ENV_PREFIX = "SPY_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
ALPACA_PAPER_URL = "https://paper-api.alpaca.markets"
ALPACA_LIVE_HOST = "api.alpaca.markets"

# the settings of CostModel, in its order (a backtest may re-run a bundle under other values of these)
COST_FIELDS: tuple[str, ...] = (
    "commission_bps",
    "spread_bps",
    "slippage_bps",
    "sec_fee_per_million",
    "finra_taf_per_share",
    "finra_taf_max",
    "impact_coef",
)

# data settings a backtest or the paper trader takes from the model's training run unless the user sets them
MAX_LAYER_WIDTH = 16_384  # a wider hidden layer than any policy here needs, and gigabytes of weights


def _layer_widths(value: str) -> str:
    """``64,64``: positive whole widths (a zero-width layer trains nothing), written without spaces."""
    try:
        widths = [int(w) for w in value.split(",")]
    except ValueError:
        raise ValueError(f"expected comma-separated layer widths like 64,64, got {value!r}") from None
    if not all(1 <= w <= MAX_LAYER_WIDTH for w in widths):
        raise ValueError(f"each layer width must be between 1 and {MAX_LAYER_WIDTH}, got {value}")
    return ",".join(str(w) for w in widths)


LayerWidths = Annotated[str, AfterValidator(_layer_widths)]
INHERITED_DATA_FIELDS = ("data_source", "symbol", "csv_path", "vix_csv_path", "use_vix", "start_date")

DataSource = Literal["yahoo", "csv", "alpaca", "sample"]
VixSourceName = Literal["yahoo", "csv", "sample"]
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
        allow_inf_nan=False,  # no setting means anything at NaN or infinity (cash, costs, limits, rates)
    )

    # logging and reproducibility
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_json: bool = Field(False, description="JSON log lines (timestamp, level, event, logger)")
    random_seed: int = Field(42, ge=0, lt=2**32, description="Seed for Python, NumPy, torch and the envs")

    # market data
    symbol: str = Field(
        "SPY", min_length=1, max_length=12, pattern=r"^[A-Za-z.^-]+$", description="Ticker symbol to trade"
    )
    data_source: DataSource = Field("sample", description="yahoo, csv, alpaca or sample (offline S&P 500 stand-in)")
    csv_path: Path | None = Field(
        None, description="Daily bars CSV (date, open, high, low, close, volume; adj_close optional) for --source csv"
    )
    vix_csv_path: Path | None = Field(
        None, description="VIX daily closes CSV (date, close); needed with --source csv and --vix"
    )
    use_vix: bool = Field(True, description="Use the VIX close as an observation feature")
    regime_features: bool = Field(
        False,
        description="Add regime features: realised-vol ratio, drawdown from the trailing peak, VIX change (with VIX)",
    )
    offline: bool = Field(False, description="Use cached data only, never download (fails if nothing is cached)")
    start_date: date | None = Field(None, description="First day of data to load (YYYY-MM-DD)")
    end_date: date | None = Field(None, description="Last day of data to load (YYYY-MM-DD)")
    train_start: date | None = Field(None, description="First training day (default: first day of data)")
    train_end: date | None = Field(
        None,
        description="Last day the model may see (default: the day 70% into the data). Without --val-start/"
        "--val-end, the last 15/85 of the days up to it are held out for validation, so training itself ends "
        "earlier",
    )
    val_start: date | None = Field(None, description="First validation day (default: after training)")
    val_end: date | None = Field(None, description="Last validation day (default: 85% of the days)")
    test_start: date | None = Field(None, description="First test day (default: after validation)")
    test_end: date | None = Field(None, description="Last test day (default: last day of data)")

    # PPO training (defaults measured for throughput on 2 CPU cores: benchmarks/)
    total_timesteps: int = Field(
        200_000, gt=0, description="PPO environment steps to train, rounded up to whole rollouts (n-envs x n-steps)"
    )
    learning_rate: float = Field(3e-4, gt=0, lt=1, description="PPO learning rate")
    n_envs: int = Field(16, ge=1, le=256, description="Environments stepped together in one process")
    n_steps: int = Field(256, ge=8, description="Steps per environment per rollout")
    batch_size: int = Field(1024, ge=8, description="PPO minibatch size (at most n-envs x n-steps)")
    n_epochs: int = Field(5, ge=1, description="PPO epochs per rollout")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor per trading day (0..1)")
    gae_lambda: float = Field(
        0.95, gt=0, le=1, description="GAE lambda: bias/variance trade-off of the advantage estimate (0..1)"
    )
    clip_range: float = Field(0.2, gt=0, lt=1, description="PPO clip range of the policy ratio (0..1)")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus coefficient")
    target_kl: float | None = Field(None, gt=0, description="Stop an update early above this KL divergence")
    net_arch: LayerWidths = Field(
        "64,64", description="Hidden layer widths of the policy and value nets, comma-separated (e.g. 64,64)"
    )
    episode_length: int = Field(252, ge=0, description="Trading days per training episode (0 = whole window)")
    eval_freq: int = Field(20_000, ge=0, description="Validate every N timesteps and keep the best (0 = off)")
    checkpoint_freq: int = Field(100_000, ge=0, description="Checkpoint every N timesteps (0 = off)")
    torch_threads: int = Field(1, ge=1, le=64, description="torch CPU threads (1 is fastest for small nets)")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="torch device for PPO")
    run_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Run name: the model's folder and its TensorBoard run "
        "(default: ppo-<symbol>-<source>-seed<N>-<UTC time>)",
    )

    # what the agent decides and what it is rewarded for (recorded in the bundle, honoured by backtests and trading)
    # defaults: the configuration chosen on validation windows in docs/results.md (tools/research_grid.py)
    action_space: Literal["discrete3", "target_weight", "continuous"] = Field(
        "target_weight", description="discrete3 (sell/hold/buy), target_weight (one of the weight levels) or continuous"
    )
    weight_levels: str = Field(
        "0,0.25,0.5,0.75,1",
        pattern=r"^-?\d+(\.\d+)?(,-?\d+(\.\d+)?)+$",
        description="target_weight: the weights of equity its actions choose, comma-separated (negative: short)",
    )
    rebalance_band: float = Field(
        0.02, ge=0, lt=1, description="Weight spaces: no order while the weight is within this of the target"
    )
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return"] = Field(
        "drawdown_penalty",
        description="Training reward: log_return, differential_sharpe, drawdown_penalty, excess_log_return",
    )
    dsr_eta: float = Field(0.01, gt=0, le=1, description="differential_sharpe: the rate of its moving averages")
    drawdown_penalty: float = Field(
        1.0, ge=0, description="drawdown_penalty: coefficient on each step's increase of the drawdown"
    )

    # execution and costs: one model for training, backtests and paper trading
    initial_cash: float = Field(100_000.0, gt=0, description="Starting cash of the simulated account, in dollars")
    commission_bps: float = Field(1.0, ge=0, description="Commission in basis points of notional")
    spread_bps: float = Field(1.0, ge=0, description="Quoted spread in basis points (half paid per fill)")
    slippage_bps: float = Field(2.0, ge=0, description="Slippage in basis points per fill")
    # Regulatory fees on sells. SEC Section 31: $27.80 per million of proceeds, the rate in force from
    # 2024-05-22 (SEC fee rate advisory, fiscal 2024 mid-year adjustment) into fiscal 2025; the SEC's
    # fiscal-2025 annual adjustment (Release 34-102779, 2025-04-08) set $0.00 from 2025-05-14. The
    # default keeps the last non-zero rate (conservative); set the rate in force for live accounting.
    sec_fee_per_million: float = Field(
        27.80, ge=0, description="SEC Section 31 fee on sells, dollars per million of proceeds"
    )
    # FINRA trading activity fee on sells of covered equities (FINRA By-Laws Schedule A, Section 1),
    # in force from 2024-01-01: $0.000166 per share, at most $8.30 per trade.
    finra_taf_per_share: float = Field(0.000166, ge=0, description="FINRA TAF on sells, dollars per share")
    finra_taf_max: float = Field(8.30, ge=0, description="FINRA TAF cap per sell trade, dollars")
    # Square-root market impact, coef x daily volatility x sqrt(shares / ADV) of the price: the
    # square-root law (Almgren, Thum, Hauptmann & Li 2005, Risk; Toth et al. 2011, Phys. Rev. X)
    # measures a coefficient of order 1 (0.5..1 typical); 1.0 is the conservative end.
    impact_coef: float = Field(
        1.0, ge=0, description="Square-root impact coefficient: coef x daily vol x sqrt(shares/ADV) of price"
    )
    position_fraction: float = Field(1.0, gt=0, le=1, description="Position size as a fraction of equity (0..1)")
    allow_short: bool = Field(False, description="Allow short positions (sell goes short)")
    fractional_shares: bool = Field(False, description="Trade fractional shares (else whole shares only)")
    fill_at: Literal["next_open", "next_close"] = Field(
        "next_open", description="When a decision made after day t's close fills: next_open or next_close (of t+1)"
    )

    # evaluation
    risk_free_rate: float = Field(0.0, ge=-0.05, le=0.5, description="Annual risk-free rate for Sharpe/Sortino/alpha")

    # trading
    trading_mode: Literal["paper", "live"] = Field(
        "paper",
        description="paper (Alpaca paper account or simulated) or live (real money; needs --confirm-live-trading)",
    )
    live_trading_confirmed: bool = Field(False, description="Second confirmation required for live trading")
    broker: Literal["simulated", "alpaca"] = Field("simulated", description="simulated (no keys) or alpaca")
    model: str = Field("latest", min_length=1, description="Model bundle to trade: a folder, run name or latest")
    dry_run: bool = Field(False, description="Log decisions and intended orders, send nothing")
    strategy_name: str = Field(
        "finrl", pattern=r"^[A-Za-z0-9_]{1,40}$", description="Prefix of client order ids (one per strategy)"
    )
    late_policy: Literal["skip"] = Field(
        "skip", description="A run after the fill session's auction: skip (send nothing, decide at the next close)"
    )
    decision_delay_minutes: int = Field(
        15, ge=0, le=600, description="Decide this long after the close; a daily bar is final only then"
    )
    # the paper trader's market data: its own settings, never the training run's files
    live_source: DataSource = Field(
        "yahoo", description="Paper trading's daily bars: yahoo, alpaca, csv (--live-csv) or sample (a replay)"
    )
    live_csv_path: Path | None = Field(
        None, description="Daily bars CSV for --live-source csv, rewritten after each close"
    )
    live_vix_source: VixSourceName | None = Field(
        None, description="Paper trading's VIX: yahoo, csv or sample; default: csv with --live-vix-csv, else as bars"
    )
    live_vix_csv_path: Path | None = Field(None, description="VIX daily CSV for paper trading")
    max_drawdown: float = Field(0.25, gt=0, le=1, description="Flatten and stop below this drawdown from the peak")
    max_daily_loss: float = Field(0.05, gt=0, le=1, description="No new exposure after this loss since the last close")
    max_position_fraction: float = Field(1.05, gt=0, le=4, description="Largest position as a fraction of equity")
    max_order_notional: float = Field(1_000_000.0, gt=0, description="Largest single order, in dollars")
    backtest_risk_limits: bool = Field(
        True, description="spy-rl backtest applies these risk limits to the agent, as the paper trader does"
    )
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus metrics port (0 = off)")

    # tuning (spy-rl tune): the study's storage, and how soon a dead worker's trial is failed and retried
    tune_storage: str = Field(
        "sqlite:///studies/spy.db",
        pattern=r"^(sqlite|postgresql(\+psycopg)?)://",
        description="Optuna storage URL: sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB",
    )
    tune_storage_password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SPY_TUNE_STORAGE_PASSWORD", "tune_storage_password"),
        description="Password for a PostgreSQL storage URL without one (env or secret file tune_storage_password)",
    )
    tune_heartbeat_interval: int = Field(30, ge=1, description="Seconds between a running trial's heartbeats")
    tune_grace_period: int = Field(
        120, ge=2, description="Seconds without a heartbeat before a trial is failed and retried once"
    )

    # directories
    trained_models_dir: Path = Field(
        Path("trained_models"), description="Folder of trained model bundles (and the latest link)"
    )
    tensorboard_log_dir: Path = Field(Path("tensorboard_logs"), description="Folder of TensorBoard runs")
    datasets_dir: Path = Field(
        Path("datasets"), description="Folder of the dataset cache (bars and features per source and range)"
    )
    results_dir: Path = Field(Path("results"), description="Folder of backtest and research reports")
    logs_dir: Path = Field(Path("logs"), description="Folder of logs, the trading journal and the health file")

    # Alpaca, under the names the deployment doc and Alpaca's own tools use
    alpaca_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ALPACA_API_KEY", "alpaca_api_key"),
        description="Alpaca API key id (environment or secret file only, never a flag)",
    )
    alpaca_api_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ALPACA_API_SECRET", "alpaca_api_secret"),
        description="Alpaca API secret key (environment or secret file only, never a flag)",
    )
    alpaca_base_url: str = Field(
        ALPACA_PAPER_URL,
        validation_alias=AliasChoices("ALPACA_BASE_URL", "alpaca_base_url"),
        pattern=r"^https?://",
        description="Alpaca trading API URL: the paper endpoint unless --trading-mode live",
    )
    alpaca_data_url: str | None = Field(
        None, pattern=r"^https?://", description="Alpaca market-data API URL (default: Alpaca's own)"
    )
    alpaca_data_feed: Literal["iex", "sip", "delayed_sip"] = Field(
        "iex", description="Alpaca bars feed: iex (free), sip (paid, all exchanges) or delayed_sip"
    )
    # market-data requests (Alpaca bars, Yahoo): the trading client's read timeout and retries
    # (finrl.http_retry's policy; a test keeps them equal; literals: settings load without requests)
    data_timeout: float = Field(
        15.0, gt=0, description="Seconds a market-data request may take before it is cut and retried"
    )
    data_retries: int = Field(3, ge=0, description="Retries of a market-data request after a timeout, 429 or 5xx")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("alpaca_api_key", "alpaca_api_secret", "tune_storage_password", mode="before")
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
        self._check_windows()
        if self.trading_mode == "live" and not self.live_trading_confirmed:
            raise ValueError(
                f"{env_name('trading_mode')}=live needs {env_name('live_trading_confirmed')}=true as well: "
                "live trading moves real money"
            )
        live_url = urlsplit(self.alpaca_base_url).hostname == ALPACA_LIVE_HOST
        if self.trading_mode == "paper" and self.broker == "alpaca" and live_url:
            raise ValueError(
                f"{env_name('alpaca_base_url')}={self.alpaca_base_url} is not a paper endpoint while "
                f"{env_name('trading_mode')}=paper"
            )
        levels = [float(w) for w in self.weight_levels.split(",")]
        if self.action_space == "target_weight":
            problem = ""
            if len(set(levels)) != len(levels):
                problem = "the levels must differ"
            elif any(w < 0 for w in levels) and not self.allow_short:
                problem = f"negative levels need {env_name('allow_short')}=true"
            elif any(not -1 <= w <= 1 for w in levels):
                problem = "the levels must lie in [-1, 1]"
            if problem:
                raise ValueError(f"{env_name('weight_levels')}={self.weight_levels}: {problem}")
        if self.tune_grace_period <= self.tune_heartbeat_interval:
            raise ValueError(
                f"{env_name('tune_grace_period')}={self.tune_grace_period} must exceed "
                f"{env_name('tune_heartbeat_interval')}={self.tune_heartbeat_interval}"
            )
        if self.batch_size > self.n_steps * self.n_envs:
            raise ValueError(
                f"{env_name('batch_size')}={self.batch_size} exceeds one rollout "
                f"({env_name('n_steps')} x {env_name('n_envs')} = {self.n_steps * self.n_envs})"
            )
        return self

    def _check_windows(self) -> None:
        """Each explicit window starts on or before its end. (Windows that overlap are the data split's
        to refuse when training, and a backtest may test inside training on purpose: it warns.)"""
        for window in ("train", "val", "test"):
            start, end = getattr(self, f"{window}_start"), getattr(self, f"{window}_end")
            if start is not None and end is not None and start > end:
                raise ValueError(f"{env_name(f'{window}_start')}={start} is after {env_name(f'{window}_end')}={end}")

    def torch_device(self) -> str:
        """The torch device to train on: ``cuda`` only where torch finds one (else one line), ``auto`` resolved."""
        if self.device == "cpu":
            return "cpu"
        import torch

        available = torch.cuda.is_available()
        if self.device == "cuda" and not available:
            raise ConfigError(
                f"{env_name('device')}=cuda (--device cuda) but torch {torch.__version__} finds no CUDA device "
                f"(built for CUDA {torch.version.cuda or 'none'}): use --device cpu, or auto to take one when present"
            )
        return "cuda" if available else "cpu"

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
            data_timeout=self.data_timeout,
            data_retries=self.data_retries,
            final_delay=timedelta(minutes=self.decision_delay_minutes),
        )

    def live_data_request(self) -> DataRequest:
        """What the paper trader reads: the live settings (never the training run's files), with
        this run's symbol, VIX choice and first day (``with_training_data`` sets them from the model)."""
        vix_source = self.live_vix_source or (
            "csv" if self.live_vix_csv_path else "sample" if self.live_source == "sample" else "yahoo"
        )
        return replace(
            self.data_request(),
            source=self.live_source,
            end=None,
            csv_path=self.live_csv_path,
            vix_source=vix_source,
            vix_csv_path=self.live_vix_csv_path,
            flag_prefix="live-",
        )

    def risk_limits(self) -> RiskLimits:
        """The paper trader's limits, which backtests apply too (the settings of the same names)."""
        from finrl.trade.risk import RiskLimits

        return RiskLimits(**{limit.name: getattr(self, limit.name) for limit in fields(RiskLimits)})

    def feature_spec(self) -> FeatureSpec:
        from finrl.meta.features import FeatureSpec

        return FeatureSpec(use_vix=self.use_vix, regime_features=self.regime_features)

    def feature_data(self) -> FeatureData:
        """The bars and features these settings ask for (through the dataset cache)."""
        from finrl.meta.dataset import load_feature_data

        return load_feature_data(self.data_request(), self.datasets_dir, self.feature_spec())

    def execution_config(self) -> ExecutionConfig:
        from finrl.meta.env.execution import CostModel, ExecutionConfig

        return ExecutionConfig(
            costs=CostModel(**{name: getattr(self, name) for name in COST_FIELDS}),
            position_fraction=self.position_fraction,
            allow_short=self.allow_short,
            fractional_shares=self.fractional_shares,
            fill_at=self.fill_at,
        )

    def env_config(self) -> EnvConfig:
        from finrl.meta.env.actions import parse_weight_levels
        from finrl.meta.env.spy_env import EnvConfig

        return EnvConfig(
            execution=self.execution_config(),
            initial_cash=self.initial_cash,
            episode_length=self.episode_length or None,
            action_space=self.action_space,
            weight_levels=parse_weight_levels(self.weight_levels),
            rebalance_band=self.rebalance_band,
            reward=self.reward,
            dsr_eta=self.dsr_eta,
            drawdown_penalty=self.drawdown_penalty,
        )

    def ppo_config(self) -> PPOConfig:
        from finrl.agents.ppo import PPOConfig

        return PPOConfig(
            learning_rate=self.learning_rate,
            n_steps=self.n_steps,
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            clip_range=self.clip_range,
            ent_coef=self.ent_coef,
            target_kl=self.target_kl,
            net_arch=tuple(int(n) for n in self.net_arch.split(",")),
            n_envs=self.n_envs,
            torch_threads=self.torch_threads,
            device=self._logged_device(),
        )

    def _logged_device(self) -> str:
        device = self.torch_device()
        if self.device == "auto":  # say which one it took: a run on the CPU is slower, not wrong
            from finrl.log import get_logger

            log = get_logger(__name__)
            (log.info if device == "cuda" else log.warning)("torch_device", requested="auto", device=device)
        return device

    def walkforward_config(self, plan: FoldPlan, seeds: tuple[int, ...], workers: int) -> WalkForwardConfig:
        """A walk-forward of this agent (``spy-rl walkforward`` and every tuning trial); its cache is shared."""
        from finrl.research.walkforward import WalkForwardConfig

        if self.eval_freq <= 0:
            raise ConfigError("--eval-freq must be positive: each seed's model is kept by its validation window")
        return WalkForwardConfig(
            plan=plan,
            seeds=seeds,
            ppo=self.ppo_config(),
            env=self.env_config(),
            total_timesteps=self.total_timesteps,
            eval_freq=min(self.eval_freq, self.total_timesteps),
            risk_free_rate=self.risk_free_rate,
            cache_dir=Path(self.results_dir) / "walkforward-cache",
            tensorboard_dir=Path(self.tensorboard_log_dir) / "walkforward",
            workers=workers,
            settings=self.snapshot(),
            log_level=self.log_level,
        )

    def data_split(self, features: pd.DataFrame) -> DataSplit:
        """Train / validation / test windows over the feature days (explicit dates win, else 70/15/15)."""
        import pandas as pd

        from finrl.meta.preprocessing import split_by_dates

        return split_by_dates(
            pd.DatetimeIndex(features.index),
            train_start=self.train_start,
            train_end=self.train_end,
            val_start=self.val_start,
            val_end=self.val_end,
            test_start=self.test_start,
            test_end=self.test_end,
            with_validation=self.eval_freq > 0,
        )

    def effective_run_name(self) -> str:
        """--name, or a name from the symbol, source, seed and a millisecond UTC stamp."""
        if self.run_name:
            return self.run_name
        now = datetime.now(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"  # runs a second apart differ
        return f"ppo-{self.symbol.lower()}-{self.data_source}-seed{self.random_seed}-{stamp}"

    def alpaca_credentials(self) -> AlpacaCredentials | None:
        if self.alpaca_api_key is None or self.alpaca_api_secret is None:
            return None
        return AlpacaCredentials(
            self.alpaca_api_key.get_secret_value(),
            self.alpaca_api_secret.get_secret_value(),
            data_url=self.alpaca_data_url,
            feed=self.alpaca_data_feed,
        )

    def snapshot(self) -> dict[str, Any]:
        """Every setting except secrets, JSON-ready: what a model bundle records."""
        return self.model_dump(mode="json", exclude=set(SECRET_FIELDS))

    def with_training_data(self, trained: dict[str, Any]) -> Settings:
        """These settings, with the data fields the user left unset taken from a model's training settings.

        A backtest or the paper trader reads the data its model was trained on unless told otherwise;
        ``end_date`` is never inherited: they want the days after the training data.
        """
        inherited = {
            name: trained[name]
            for name in INHERITED_DATA_FIELDS
            if name not in self.model_fields_set and name in trained
        }
        if not inherited:
            return self
        parsed = Settings.model_validate({**self.snapshot(), **inherited})  # types checked, no env read
        return self.model_copy(update={name: getattr(parsed, name) for name in inherited})

    def secret_values(self) -> list[str]:
        secrets = (self.alpaca_api_key, self.alpaca_api_secret, self.tune_storage_password)
        return [s.get_secret_value() for s in secrets if s is not None]


def field_metavar(field: str) -> str:
    """How the help shows a field's value: its format (a date), its choices, or its kind."""
    annotation = Settings.model_fields[field].annotation
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):  # X | None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        choices = "|".join(str(choice) for choice in typing.get_args(annotation))
        return choices if len(choices) <= 30 else "CHOICE"  # the description names them
    if annotation is date:
        return "YYYY-MM-DD"
    kinds: dict[Any, str] = {bool: "", int: "INTEGER", float: "NUMBER", Path: "PATH"}
    return kinds.get(annotation, "TEXT")


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (for error messages and docs)."""
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(*, flag_names: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from every source; ``overrides`` are command-line values (None = not given).

    Invalid values raise :class:`ConfigError` with one line naming what the user typed: the flag
    (``flag_names`` maps a field to it) when the value came from the command line, else the variable.
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
        raise ConfigError(_one_line(exc, flag_names or {}, set(given))) from None


# never recorded (snapshots, bundles, studies) nor shown in errors; a storage URL may hold a password
SECRET_FIELDS = frozenset({"alpaca_api_key", "alpaca_api_secret", "tune_storage_password", "tune_storage"})


def _field_of(location: str) -> str:
    """The field behind an error location, which is an alias when the value came from the environment."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and location.upper() in (str(c).upper() for c in alias.choices):
            return name
    return location


def _one_line(exc: ValidationError, flags: dict[str, str] | None = None, given: set[str] | None = None) -> str:
    """``--flag: expected ..., got 'value'`` per problem, joined by "; ": the flag when the value came
    from the command line (a field in ``given`` with a name in ``flags``), else the variable."""
    flags, given = flags or {}, given or set()
    found = []
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else ""
        field = _field_of(where) if where else ""
        if not field:  # a check across fields: its message names the variables, the input would hold secrets
            found.append(_named_as_typed(error["msg"].removeprefix("Value error, "), flags, given))
            continue
        expected = _expected(field, error)
        shown = "" if field in SECRET_FIELDS or ", got " in expected else f", got {error.get('input')!r}"
        name = flags[field].split("/")[0] if field in flags and field in given else env_name(field)
        found.append(f"{name}: {expected}{shown}")
    return "; ".join(found)


def _named_as_typed(message: str, flags: dict[str, str], given: set[str]) -> str:
    """A message naming variables, as the user can set them: a flag given in its place
    (``SPY_BATCH_SIZE=4096`` -> ``--batch-size 4096``), another with its flag beside it
    (``SPY_ALLOW_SHORT=true`` -> ``SPY_ALLOW_SHORT=true (--allow-short)``)."""
    names = {env_name(field): field for field in flags}
    if not names:
        return message

    def named(match: re.Match[str]) -> str:
        field, value = names[match[1]], (match[2] or "")[1:]
        on, _, off = flags[field].partition("/")  # a switch: --allow-short/--no-allow-short
        if field in given:
            if off and value.lower() in ("true", "false"):
                return on if value.lower() == "true" else off
            return f"{on} {value}" if value else on
        return f"{match[0]} ({on if not off or value.lower() != 'false' else off})"

    pattern = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.sub(rf"\b({pattern})(=[^\s:;()]*[^\s:;(),])?", named, message)  # a value may hold commas


DATE_FORMAT = "a date as YYYY-MM-DD (e.g. 2020-12-31)"
_URL = "a URL starting with https:// (or http://)"
PATTERN_WORDS = {  # a field's pattern, as its error says it
    "symbol": "a ticker of letters, '.', '^' or '-' (e.g. SPY)",
    "run_name": "a folder name of letters, digits, '.', '_' or '-'",
    "strategy_name": "1 to 40 letters, digits or '_'",
    "weight_levels": "two or more comma-separated numbers like 0,0.5,1",
    "tune_storage": "sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB",
    "alpaca_base_url": _URL,
    "alpaca_data_url": _URL,
}


def _expected(field: str, error: Any) -> str:
    """What ``field`` takes, in words, for a pydantic error on it."""
    kind, context = error["type"], error.get("ctx") or {}
    if _is_date(field) and kind.startswith(("date", "datetime")):
        return f"expected {DATE_FORMAT}"
    if kind == "literal_error":
        return f"expected {context['expected']}"
    if kind == "bool_parsing":
        return "expected true or false"
    if kind.startswith(("int_", "float_", "greater_than", "less_than", "finite_number")):
        number = _number_range(field)  # "a number ...": NaN and infinity are no number here
        return f"expected {'a finite ' + number.removeprefix('a ') if kind == 'finite_number' else number}"
    if kind == "string_pattern_mismatch":
        return f"expected {PATTERN_WORDS.get(field, 'text matching ' + str(context['pattern']))}"
    return str(error["msg"]).removeprefix("Value error, ")


def _number_range(field: str) -> str:
    """``a number in (0, 1)``, ``a whole number of at least 0``: the field's kind and bounds."""
    info = Settings.model_fields[field]
    whole = info.annotation is int or int in typing.get_args(info.annotation)
    kind = "a whole number" if whole else "a number"
    low = next(((f"({m.gt}", f"greater than {m.gt}") for m in info.metadata if hasattr(m, "gt")), None)
    low = low or next(((f"[{m.ge}", f"of at least {m.ge}") for m in info.metadata if hasattr(m, "ge")), None)
    high = next(((f"{m.lt})", f"below {m.lt}") for m in info.metadata if hasattr(m, "lt")), None)
    high = high or next(((f"{m.le}]", f"of at most {m.le}") for m in info.metadata if hasattr(m, "le")), None)
    if low and high:
        return f"{kind} in {low[0]}, {high[0]}"
    bound = low or high
    return f"{kind} {bound[1]}" if bound else kind


def _is_date(field: str) -> bool:
    info = Settings.model_fields.get(field)
    return info is not None and (info.annotation is date or date in typing.get_args(info.annotation))
