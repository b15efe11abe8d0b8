"""Settings in, library calls out: the jobs behind ``spy-rl`` and the example entry modules."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from finrl.agents.bundle import MANIFEST_FILE, ModelBundle, load_bundle
from finrl.agents.ppo import PPOConfig
from finrl.agents.training import TrainingJob, TrainingResult, train
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.backtest.engine import BacktestResult, default_test_window, run_backtest
from finrl.backtest.report import write_report
from finrl.errors import ConfigError
from finrl.log import get_logger
from finrl.meta.data.market_data import MarketData, load_market_data
from finrl.meta.env.execution import CostModel, ExecutionConfig
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DataSplit, DateWindow, split_by_dates
from finrl.trade.broker import Broker
from finrl.trade.journal import Journal
from finrl.trade.metrics import TradingMetrics
from finrl.trade.risk import RiskLimits
from finrl.trade.service import ALPACA_EARLIEST_DECISION, PaperTradingService
from finrl.trade.simulated import SimulatedBroker
from finrl.trade.trader import DailyTrader, TraderConfig

log = get_logger(__name__)


@dataclass(frozen=True)
class PreparedData:
    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame


def prepare_data(settings: Settings, spec: FeatureSpec | None = None) -> PreparedData:
    market = load_market_data(settings.data_request(), settings.datasets_dir)
    spec = spec or FeatureSpec(use_vix=settings.use_vix)
    return PreparedData(market, spec, build_features(market.bars, spec))


def execution_config(settings: Settings) -> ExecutionConfig:
    return ExecutionConfig(
        costs=CostModel(settings.commission_bps, settings.spread_bps, settings.slippage_bps),
        position_fraction=settings.position_fraction,
        allow_short=settings.allow_short,
        fractional_shares=settings.fractional_shares,
        fill_at=settings.fill_at,
    )


def env_config(settings: Settings) -> EnvConfig:
    return EnvConfig(
        execution=execution_config(settings),
        initial_cash=settings.initial_cash,
        episode_length=settings.episode_length or None,
    )


def ppo_config(settings: Settings) -> PPOConfig:
    return PPOConfig(
        learning_rate=settings.learning_rate,
        n_steps=settings.n_steps,
        batch_size=settings.batch_size,
        n_epochs=settings.n_epochs,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_range=settings.clip_range,
        ent_coef=settings.ent_coef,
        target_kl=settings.target_kl,
        net_arch=tuple(int(n) for n in settings.net_arch.split(",")),
        n_envs=settings.n_envs,
        torch_threads=settings.torch_threads,
        device=settings.device,
    )


def data_split(settings: Settings, features: pd.DataFrame) -> DataSplit:
    return split_by_dates(
        pd.DatetimeIndex(features.index),
        train_start=settings.train_start,
        train_end=settings.train_end,
        val_start=settings.val_start,
        val_end=settings.val_end,
        test_start=settings.test_start,
        test_end=settings.test_end,
        with_validation=settings.eval_freq > 0,
    )


def default_run_name(settings: Settings) -> str:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"  # runs a second apart differ
    return f"ppo-{settings.symbol.lower()}-{settings.data_source}-seed{settings.random_seed}-{stamp}"


def run_training(settings: Settings, *, progress: bool | None = None) -> TrainingResult:
    data = prepare_data(settings)
    job = TrainingJob(
        features=data.features,
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=data_split(settings, data.features),
        run_name=settings.run_name or default_run_name(settings),
        models_dir=settings.trained_models_dir,
        tensorboard_dir=settings.tensorboard_log_dir,
        ppo=ppo_config(settings),
        env=env_config(settings),
        seed=settings.random_seed,
        total_timesteps=settings.total_timesteps,
        eval_freq=settings.eval_freq,
        checkpoint_freq=settings.checkpoint_freq,
        settings=settings.snapshot(),
        progress=progress,
    )
    return train(job)


# ---------------------------------------------------------------------------- backtests

# data settings a backtest takes from the model's training run unless the user sets them
INHERITED_DATA_FIELDS = ("data_source", "symbol", "csv_path", "vix_csv_path", "use_vix", "start_date")


def settings_for_bundle(settings: Settings, bundle: ModelBundle) -> Settings:
    """The user's settings, with unset data fields filled from the bundle's training settings.

    ``end_date`` is never inherited: a backtest wants the days after the training data.
    """
    trained = bundle.manifest.settings
    inherited = {
        name: trained[name]
        for name in INHERITED_DATA_FIELDS
        if name not in settings.model_fields_set and name in trained
    }
    if not inherited:
        return settings
    parsed = Settings.model_validate({**settings.snapshot(), **inherited})  # types checked, no env read
    return settings.model_copy(update={name: getattr(parsed, name) for name in inherited})


@dataclass(frozen=True)
class BacktestRun:
    result: BacktestResult
    directory: Path


def run_backtests(settings: Settings, references: list[str]) -> list[BacktestRun]:
    """Backtest each bundle (a path, run name, ``latest`` or a folder of bundles) on its test window."""
    bundles = [load_bundle(path, settings.trained_models_dir) for path in expand_references(references, settings)]
    runs: list[BacktestRun] = []
    prepared: dict[str, PreparedData] = {}
    for bundle in bundles:
        effective = settings_for_bundle(settings, bundle)
        key = repr(effective.data_request()) + repr(bundle.feature_spec)
        if key not in prepared:
            # the user's --vix/--no-vix shapes the data; a mismatch with the bundle is then reported as such
            spec = replace(bundle.feature_spec, use_vix=effective.use_vix)
            prepared[key] = prepare_data(effective, spec)
        data = prepared[key]
        window = test_window(effective, bundle, data.features)
        result = run_backtest(bundle, data.features, window, settings.risk_free_rate)
        if data.market.fingerprint != bundle.manifest.data_fingerprint:
            result.warnings.append(
                "the data differs from the training data (fingerprint mismatch): fine for new days, "
                "check the source if the windows overlap"
            )
        directory = write_report(result, settings.results_dir / f"{bundle.run_name}__{window.start}_{window.end}")
        runs.append(BacktestRun(result, directory))
    return runs


def expand_references(references: list[str], settings: Settings) -> list[Path | str]:
    """A folder holding several bundles (a seed sweep) stands for all of them."""
    expanded: list[Path | str] = []
    for reference in references or ["latest"]:
        path = Path(reference)
        if path.is_dir() and not (path / MANIFEST_FILE).exists():
            members = sorted(p for p in path.iterdir() if (p / MANIFEST_FILE).is_file() and not p.is_symlink())
            if members:
                expanded.extend(members)
                continue
        expanded.append(reference)
    return expanded


def test_window(settings: Settings, bundle: ModelBundle, features: pd.DataFrame) -> DateWindow:
    """--test-start/--test-end where given, else the days after what the model saw."""
    index = pd.DatetimeIndex(features.index)
    if settings.test_start and settings.test_end:
        return DateWindow(settings.test_start, settings.test_end)
    if settings.test_start:
        return DateWindow(settings.test_start, index[-1].date())
    default = default_test_window(bundle, index)
    return DateWindow(default.start, settings.test_end or default.end)


def write_multi_seed_summary(settings: Settings, runs: list[BacktestRun]) -> Path:
    """Mean and spread of every metric across the models (seeds): a lucky seed is not skill."""
    from finrl.fileio import atomic_write_json
    from finrl.performance import summarize_runs

    first = runs[0].result.window
    names = sorted(run.result.bundle.run_name for run in runs)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]
    directory = settings.results_dir / f"multi-{len(runs)}-models__{first.start}_{first.end}__{digest}"
    per_model = {run.result.bundle.run_name: run.result.metrics for run in runs}
    document = {
        "models": names,
        "agent": summarize_runs([m["agent"] for m in per_model.values()]),
        "buy_and_hold": summarize_runs([m["buy_and_hold"] for m in per_model.values()]),
        "per_model": per_model,
        "reports": {run.result.bundle.run_name: str(run.directory) for run in runs},
    }
    atomic_write_json(directory / "summary.json", document)
    return directory


# ---------------------------------------------------------------------------- paper trading


class MarketFeed:
    """The bundle's features over the data the model was trained on, reloaded when a newer session is needed."""

    def __init__(self, settings: Settings, spec: FeatureSpec) -> None:
        self.settings, self.spec = settings, spec
        self._data: PreparedData | None = None

    def data(self) -> PreparedData:
        if self._data is None:
            self._data = prepare_data(self.settings, self.spec)
        return self._data

    def reload(self) -> PreparedData:
        self._data = None
        return self.data()

    def features_until(self, session: date) -> pd.DataFrame:
        data = self.data()
        if data.features.index[-1].date() < session:
            data = self.reload()
        return data.features.loc[: pd.Timestamp(session)]


def build_paper_service(settings: Settings, metrics: TradingMetrics) -> PaperTradingService:
    """The trader, broker and service for ``spy-rl paper`` from settings and the chosen bundle."""
    bundle = load_bundle(settings.model, settings.trained_models_dir)
    effective = settings_for_bundle(settings, bundle)
    feed = MarketFeed(effective, bundle.feature_spec)
    execution = bundle.env_config.execution
    prepare: Callable[[date], None] | None = None
    refresh: Callable[[], None] | None = None
    broker: Broker
    if settings.broker == "simulated":
        simulated = SimulatedBroker(
            settings.logs_dir / "simulated_account.json", feed.data().market.bars, execution,
            bundle.env_config.initial_cash,
        )  # fmt: skip

        if effective.data_source in ("yahoo", "alpaca"):  # offline data does not grow while the service runs

            def refresh_market() -> None:
                simulated.update_bars(feed.reload().market.bars)

            refresh = refresh_market

        prepare = simulated.advance_to
        broker = simulated
    else:
        credentials = settings.alpaca_credentials()
        if credentials is None:
            raise ConfigError("--broker alpaca needs ALPACA_API_KEY and ALPACA_API_SECRET (or their secret files)")
        from finrl.trade.alpaca_broker import AlpacaBroker

        broker = AlpacaBroker(credentials.api_key, credentials.api_secret, base_url=settings.alpaca_base_url)
    trader = DailyTrader(
        bundle=bundle,
        policy=bundle.load_policy(),
        broker=broker,
        features_for=feed.features_until,
        journal=Journal(settings.logs_dir / "journal.jsonl"),
        state_path=settings.logs_dir / "trader_state.json",
        risk=RiskLimits(
            max_drawdown=settings.max_drawdown,
            max_daily_loss=settings.max_daily_loss,
            max_position_fraction=settings.max_position_fraction,
            max_order_notional=settings.max_order_notional,
        ),
        config=TraderConfig(symbol=settings.symbol.upper(), strategy=settings.strategy_name, dry_run=settings.dry_run),
        metrics=metrics,
    )
    log.info(
        "paper_trading_ready", broker=broker.name, model=bundle.run_name, mode=settings.trading_mode,
        dry_run=settings.dry_run, symbol=settings.symbol,
    )  # fmt: skip
    return PaperTradingService(
        trader,
        broker,
        health_path=settings.logs_dir / "health.json",
        decision_delay=timedelta(minutes=settings.decision_delay_minutes),
        not_before=ALPACA_EARLIEST_DECISION if settings.broker == "alpaca" else None,
        prepare=prepare,
        refresh=refresh,
    )
