"""The long-running paper-trading service: one decision per trading day, after the close.

It asks the broker's clock and calendar what the latest completed session is (a session counts
once ``decision_delay`` has passed since its real close, early closes included, and not before
``not_before`` New York time: Alpaca takes market-on-open orders only from 19:00 ET; holidays
have no session), brings the account up to that close, and runs the daily cycle once per session. It
sleeps in short slices between checks, writes a heartbeat for the container health check, keeps
running through broker and data errors (logged, counted, the cycle retried on the next wake),
and on SIGTERM/SIGINT finishes the step in progress and returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path

from finrl.calendar import NEW_YORK, SessionTimes
from finrl.errors import FinRLError
from finrl.log import get_logger
from finrl.signals import on_stop_signals
from finrl.trade.broker import Broker, BrokerAuthError
from finrl.trade.feed import MarketFeed
from finrl.trade.health import write_health
from finrl.trade.trader import CycleResult, DailyTrader

log = get_logger(__name__)

ALPACA_EARLIEST_DECISION = time(19, 5)  # Alpaca accepts opg orders only from 19:00 ET until 09:28 ET


class PaperTradingService:
    def __init__(
        self,
        trader: DailyTrader,
        broker: Broker,
        *,
        health_path: Path,
        decision_delay: timedelta,
        not_before: time | None = None,
        feed: MarketFeed | None = None,
        heartbeat_seconds: float = 30.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.trader, self.broker = trader, broker
        self.health_path = Path(health_path)
        self.decision_delay = decision_delay
        self.not_before = not_before  # New York time of day; Alpaca takes opg orders only 19:00-09:28 ET
        self.feed = feed  # refreshed before each check; the broker follows it (a simulated market's clock)
        self.heartbeat_seconds = heartbeat_seconds
        self.stop = stop or threading.Event()

    def decision_time(self, session: SessionTimes) -> datetime:
        """When a session's decision is due: its close plus the delay, and not before ``not_before``."""
        due = session.close + self.decision_delay
        if self.not_before is not None:
            earliest = datetime.combine(session.day, self.not_before, tzinfo=NEW_YORK)
            due = max(due, earliest)
        return due

    def latest_session(self, now: datetime | None = None) -> date | None:
        """The last session whose decision time has passed."""
        now = now or self.broker.now()
        recent = self.broker.sessions((now - timedelta(days=10)).date(), now.date())
        done = [s.day for s in recent if self.decision_time(s) <= now]
        return done[-1] if done else None

    def next_decision_time(self, now: datetime) -> datetime | None:
        upcoming = self.broker.sessions(now.date(), (now + timedelta(days=10)).date())
        times = [self.decision_time(s) for s in upcoming if self.decision_time(s) > now]
        return times[0] if times else None

    def run_once(self) -> CycleResult | None:
        """One cycle for the latest completed session (``--once``); errors propagate to the caller."""
        session, now = self._refreshed_latest_session()
        if session is None:
            log.warning("no_completed_session", note="no session closed in the last 10 days")
            return None
        return self._run_cycle(session, now)

    def _refreshed_latest_session(self) -> tuple[date | None, datetime]:
        """The session to decide and the broker's clock it was judged by (the trader's late check reuses it)."""
        if self.feed is not None and self.feed.refresh():
            self.feed.require_current()  # the simulated market's clock is its data: a stale feed would replay
            self.broker.follow_market(self.feed.bars)
        now = self.broker.now()
        return self.latest_session(now), now

    def _run_cycle(self, session: date, now: datetime) -> CycleResult:
        self.broker.prepare_session(session)
        result = self.trader.run_cycle(session, now)
        write_health(self.health_path, "ok", last_session=session.isoformat(), outcome=result.outcome)
        return result

    def run_forever(self) -> None:
        log.info("service_start", broker=self.broker.name, delay_minutes=self.decision_delay.total_seconds() / 60)
        while not self.stop.is_set():
            status, detail = "ok", {}
            try:
                session, now = self._refreshed_latest_session()
                if session is not None and session.isoformat() != self.trader.state.last_session:
                    detail = {"outcome": self._run_cycle(session, now).outcome}
            except BrokerAuthError as exc:
                status, detail = "error", {"error": str(exc)}
                log.error("broker_auth_failed", error=str(exc), note="fix the keys; retrying at the next wake")
                self.trader.metrics.errors.labels(kind="BrokerAuthError").inc()
            except FinRLError as exc:
                status, detail = "error", {"error": str(exc)}
                log.error("cycle_failed", error=str(exc), note="retrying at the next wake")
                self.trader.metrics.errors.labels(kind=type(exc).__name__).inc()
            write_health(self.health_path, status, last_session=self.trader.state.last_session, **detail)
            self._sleep_until_next_check()
        log.info("service_stop")

    def _sleep_until_next_check(self) -> None:
        try:
            now = self.broker.now()
            wake = self.next_decision_time(now)
            seconds = (wake - now).total_seconds() if wake else self.heartbeat_seconds
        except FinRLError:
            seconds = self.heartbeat_seconds
        self.stop.wait(max(1.0, min(seconds, self.heartbeat_seconds)))


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGTERM (docker stop) and SIGINT set ``stop``; the loop finishes its step and returns."""

    def request_stop(signum: int) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    with on_stop_signals(request_stop):
        yield stop
