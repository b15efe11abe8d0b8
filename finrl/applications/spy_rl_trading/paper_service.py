"""Settings and a model bundle (or an ensemble of them) in, the paper-trading service out: broker,
feed, risk, journal."""

from __future__ import annotations

from datetime import timedelta

from finrl.agents.ensemble_bundle import AnyBundle, load_any_bundle
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.errors import ConfigError
from finrl.log import get_logger
from finrl.trade.broker import Broker
from finrl.trade.feed import MarketFeed
from finrl.trade.journal import Journal
from finrl.trade.metrics import TradingMetrics
from finrl.trade.service import ALPACA_EARLIEST_DECISION, PaperTradingService
from finrl.trade.simulated import SimulatedBroker
from finrl.trade.trader import DailyTrader, TraderConfig

log = get_logger(__name__)


# the trade layer's values come from the settings, where their defaults are declared


def trader_config(settings: Settings) -> TraderConfig:
    return TraderConfig(
        symbol=settings.symbol.upper(),
        strategy=settings.strategy_name,
        dry_run=settings.dry_run,
        late_policy=settings.late_policy,
    )


def decision_delay(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.decision_delay_minutes)


def build_paper_service(settings: Settings, metrics: TradingMetrics) -> PaperTradingService:
    """The trader, broker and service for ``spy-rl paper`` from settings and the chosen bundle."""
    bundle, effective = load_model(settings)
    feed = live_feed(effective, bundle)
    broker = build_broker(settings, bundle, feed)
    trader = build_trader(settings, bundle, broker, feed, metrics)
    log.info(
        "paper_trading_ready", broker=broker.name, model=bundle.run_name, mode=settings.trading_mode,
        dry_run=settings.dry_run, symbol=effective.symbol, live_source=feed.request.source,
        live_vix_source=feed.request.vix_source if feed.request.use_vix else None,
    )  # fmt: skip
    return build_service(settings, trader, broker, feed)


def load_model(settings: Settings) -> tuple[AnyBundle, Settings]:
    """The bundle to trade, and the settings with its symbol, VIX choice and first day."""
    bundle = load_any_bundle(settings.model, settings.trained_models_dir)
    return bundle, settings.with_training_data(bundle.manifest.settings)


def live_feed(effective: Settings, bundle: AnyBundle) -> MarketFeed:
    """Market data from the live settings (``--live-source`` and friends), never from the files
    the model was trained on; the model only sets the symbol, the VIX choice and the first day."""
    return MarketFeed(effective.live_data_request(), effective.datasets_dir, bundle.feature_spec)


def build_broker(settings: Settings, bundle: AnyBundle, feed: MarketFeed) -> Broker:
    """The simulated account (it loads the data: its market) or Alpaca (no request yet)."""
    if settings.broker == "simulated":
        return SimulatedBroker(
            settings.logs_dir / "simulated_account.json", feed.bars, bundle.env_config.execution,
            bundle.env_config.initial_cash,
        )  # fmt: skip
    credentials = settings.alpaca_credentials()
    if credentials is None:
        raise ConfigError("--broker alpaca needs ALPACA_API_KEY and ALPACA_API_SECRET (or their secret files)")
    from finrl.trade.alpaca_broker import AlpacaBroker

    broker = AlpacaBroker(credentials.api_key, credentials.api_secret, base_url=settings.alpaca_base_url)
    feed.clock = broker.now  # which bars are final: judged by the clock the decisions follow
    return broker


def build_trader(
    settings: Settings, bundle: AnyBundle, broker: Broker, feed: MarketFeed, metrics: TradingMetrics
) -> DailyTrader:
    return DailyTrader(
        bundle=bundle,
        broker=broker,
        features_for=feed.features_until,
        journal=Journal(settings.logs_dir / "journal.jsonl"),
        state_path=settings.logs_dir / "trader_state.json",
        risk=settings.risk_limits(),
        config=trader_config(settings),
        metrics=metrics,
    )


def build_service(settings: Settings, trader: DailyTrader, broker: Broker, feed: MarketFeed) -> PaperTradingService:
    return PaperTradingService(
        trader,
        broker,
        # a simulated market's clock is its data: it follows each refresh; Alpaca's trader reloads on demand
        feed=feed if settings.broker == "simulated" else None,
        health_path=settings.logs_dir / "health.json",
        decision_delay=decision_delay(settings),
        not_before=ALPACA_EARLIEST_DECISION if settings.broker == "alpaca" else None,
    )
