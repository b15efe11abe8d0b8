"""``spy-rl paper --check``: a preflight of everything a trading cycle needs, sending nothing.

Checks, in order: the model loads; the broker's keys and account (status, trading not blocked);
the machine's clock against the broker's; the broker's calendar against the NYSE calendar and
the last closed session; the live bars and VIX are final up to that session's close; and the
model decides on those features. Each check gives one line; a failed check skips those that need
it (one line says which). Nothing is written but the dataset cache (and the logs folder, created
if missing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from finrl.agents.ensemble_bundle import AnyBundle, EnsembleBundle
from finrl.applications.spy_rl_trading.paper_service import (
    build_broker,
    build_service,
    build_trader,
    live_feed,
    load_model,
)
from finrl.applications.spy_rl_trading.settings import Settings
from finrl.calendar import et, nyse_sessions
from finrl.errors import FinRLError
from finrl.trade.broker import AccountState, Broker
from finrl.trade.feed import MarketFeed
from finrl.trade.metrics import TradingMetrics
from finrl.trade.service import PaperTradingService

MAX_CLOCK_SKEW = timedelta(seconds=60)  # the 19:05 ET rule and the auction cut-offs tolerate less than this
T = TypeVar("T")


@dataclass(frozen=True)
class CheckLine:
    check: str
    status: Literal["ok", "error", "skipped"]
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def render(self) -> str:
        return f"{self.status}: {self.check}: {self.detail}"


class _CheckFailedError(Exception):
    """A check failed; its line is already recorded."""


class Preflight:
    def __init__(self, settings: Settings, machine_clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.machine_clock = machine_clock or (lambda: datetime.now(UTC))
        self.lines: list[CheckLine] = []

    def run(self) -> list[CheckLine]:
        try:
            bundle, effective = self._step("model", lambda: _loaded_model(self.settings), _describe_model)
            feed = live_feed(effective, bundle)
            broker = self._step("broker", lambda: build_broker(self.settings, bundle, feed), _describe_broker)
            self._account(broker)
            now = self._clock(broker)
            service = build_service(self.settings, build_trader(self.settings, bundle, broker, feed, TradingMetrics()),
                                    broker, feed)  # fmt: skip
            session = self._calendar(service, broker, now)
            features = self._step("data", lambda: _current_features(feed, session), lambda f: _describe_data(feed, f))
            self._features(service, bundle, broker, effective.symbol, features)
        except _CheckFailedError:
            self.lines.append(CheckLine("later checks", "skipped", f"they need {self.lines[-1].check} to pass"))
        return self.lines

    def _step(self, check: str, action: Callable[[], T], describe: Callable[[T], str]) -> T:
        try:
            value = action()
        except FinRLError as exc:
            self.lines.append(CheckLine(check, "error", str(exc)))
            raise _CheckFailedError from exc
        self.lines.append(CheckLine(check, "ok", describe(value)))
        return value

    def _account(self, broker: Broker) -> None:
        account = self._step("account", broker.account, _describe_account)
        if account.trading_blocked or account.status != "ACTIVE":
            why = "trading is blocked" if account.trading_blocked else f"status {account.status}, not ACTIVE"
            self.lines[-1] = CheckLine("account", "error", f"{why}: the broker would refuse every order")

    def _clock(self, broker: Broker) -> datetime:
        now = self._step("clock", broker.now, lambda t: f"{broker.name} says {et(t, seconds=True)}")
        if broker.name == "simulated":
            self.lines[-1] = CheckLine("clock", "ok", f"{self.lines[-1].detail} (the data's last close + 1 h)")
            return now
        skew = abs(now - self.machine_clock())
        if skew > MAX_CLOCK_SKEW:
            off = f"this machine's clock is {timedelta(seconds=round(skew.total_seconds()))} off {broker.name}'s"
            off += ": sync it (NTP)"
            self.lines[-1] = CheckLine("clock", "error", off)
        return now

    def _calendar(self, service: PaperTradingService, broker: Broker, now: datetime) -> date:
        def last_closed() -> date:
            start, end = (now - timedelta(days=10)).date(), (now + timedelta(days=10)).date()
            theirs = [(s.day, s.close) for s in broker.sessions(start, end)]
            ours = [(s.day, s.close) for s in nyse_sessions(start, end)]
            if theirs != ours:
                differ = sorted({d for d, _ in set(theirs) ^ set(ours)})
                raise FinRLError(
                    f"{broker.name}'s calendar and the NYSE calendar (exchange_calendars) differ on "
                    f"{', '.join(map(str, differ))}: update exchange_calendars"
                )
            session = service.latest_session(now)
            if session is None:
                raise FinRLError("no session closed in the last 10 days")
            return session

        def describe(session: date) -> str:
            upcoming = service.next_decision_time(now)
            due = f"; next decision {et(upcoming)}" if upcoming else ""
            return f"last session due for a decision {session}{due}"

        return self._step("calendar", last_closed, describe)

    def _features(
        self, service: PaperTradingService, bundle: AnyBundle, broker: Broker, symbol: str, features: pd.DataFrame
    ) -> None:
        def decide() -> str:
            bundle.check_features(features)
            if isinstance(bundle, EnsembleBundle):
                decisions = bundle.decide_after(features, bundle.env_config.execution)
                return f"target weight {float(decisions.targets[-1]):g}"
            account, position = broker.account(), broker.position(symbol)
            shares, entry = (position.qty, position.avg_entry_price) if position else (0.0, float("nan"))
            close = float(features["close"].iloc[-1])
            observation = service.trader.observation(features, shares, account.cash, account.equity, close, entry)
            if not np.isfinite(observation).all():
                raise FinRLError("the observation holds NaN or infinite values")
            assert service.trader.policy is not None  # a single bundle's policy
            return f"action {np.asarray(service.trader.policy(observation)).reshape(-1)[0]:g}"

        self._step("model decides", decide, lambda d: f"on {features.index[-1]:%Y-%m-%d}'s features: {d}")


def _loaded_model(settings: Settings) -> tuple[AnyBundle, Settings]:
    """The bundle with everything the trader reads from it (policies, drift references), so a damaged
    file is this check's problem, not a surprise later."""
    bundle, effective = load_model(settings)
    for member in bundle.members if isinstance(bundle, EnsembleBundle) else (bundle,):
        member.load_policy()
        _ = member.drift_reference
    return bundle, effective


def _describe_model(loaded: tuple[AnyBundle, Settings]) -> str:
    bundle, effective = loaded
    vix = "with VIX" if effective.use_vix else "no VIX"
    return f"{bundle.run_name} ({bundle.env_config.action_space}, {effective.symbol}, {vix})"


def _describe_account(account: AccountState) -> str:
    return f"{account.status}, equity {account.equity:,.2f}, cash {account.cash:,.2f}"


def _describe_broker(broker: Broker) -> str:
    return broker.name


def _current_features(feed: MarketFeed, session: date) -> pd.DataFrame:
    if feed.request.grows:  # the simulated broker's clock is its data's: judge freshness by the real clock
        feed.require_current()
    return feed.features_until(session)


def _describe_data(feed: MarketFeed, features: pd.DataFrame) -> str:
    request = feed.request
    vix = f"; VIX ({request.vix_source or 'as the bars'}) too" if request.use_vix else ""
    return f"{feed.describe_source()} final through {features.index[-1]:%Y-%m-%d}{vix}"


def preflight(settings: Settings) -> list[CheckLine]:
    return Preflight(settings).run()
