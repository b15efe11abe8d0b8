"""A run after the fill session's auction sends nothing the broker must refuse (issue 12, failure 2).

A first start, a restart after downtime or a mis-timed cron can come after the next session's
opening auction: the decision is journalled as ``late_skip``, counted, exits 15, and the next
close decides normally. The same cycle in the evening still submits.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from finrl.agents.bundle import ModelBundle
from finrl.calendar import nyse_sessions
from finrl.meta.env.execution import Action
from finrl.trade.alpaca_broker import AlpacaBroker
from finrl.trade.exit_codes import CycleExit, exit_for_outcome
from finrl.trade.journal import Journal
from finrl.trade.service import ALPACA_EARLIEST_DECISION, PaperTradingService
from unit_tests.conftest import decision_delay
from unit_tests.fakes.alpaca_server import NEW_YORK, FakeTradingAPI
from unit_tests.trade import test_alpaca_broker as alpaca
from unit_tests.trade import test_simulated_trading as simulated
from unit_tests.trade.test_alpaca_broker import (  # the fake Alpaca's fixtures
    _forget_secrets,
    broker,
    make_broker,
    server,
    sleeps,
    tiny_bundle,
    trading,
)
from unit_tests.trade.test_simulated_trading import bundle

pytestmark = pytest.mark.integration
__all__ = ["_forget_secrets", "broker", "bundle", "make_broker", "server", "sleeps", "tiny_bundle", "trading"]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


def next_session(day: date) -> date:
    return nyse_sessions(day + timedelta(days=1), day + timedelta(days=10))[0].day


def late_skips(root: Path) -> list[dict[str, object]]:
    return [e for e in Journal(root / "journal.jsonl").entries() if e["event"] == "late_skip"]


@pytest.mark.parametrize(("when", "outcome"), [("next_morning", "late_skipped"), ("evening", "submitted")])
def test_simulated_broker_skips_a_missed_auction(bundle: ModelBundle, tmp_path: Path, when: str, outcome: str) -> None:
    trader, broker = simulated.make_trader(bundle, tmp_path, simulated.always(Action.BUY))
    (d0,) = simulated.session_days(1)
    broker.advance_to(d0)
    now = at(next_session(d0), 10) if when == "next_morning" else at(d0, 19, 30)
    result = trader.run_cycle(d0, now.astimezone(UTC))
    assert result.outcome == outcome and result.order_qty > 0
    orders = json.loads((tmp_path / "account.json").read_text())["orders"]
    assert len(orders) == (outcome == "submitted")
    if outcome == "late_skipped":
        (entry,) = late_skips(tmp_path)
        assert entry["session"] == str(d0) and entry["fill_session"] == str(next_session(d0))
        assert "auction took orders until" in str(entry["why"]) and entry["why"] == result.detail
        assert trader.metrics.registry.get_sample_value("finrl_late_skips_total") == 1
        assert trader.state.last_session == str(d0)  # decided: the next close decides normally
        assert exit_for_outcome(result.outcome) is CycleExit.LATE_SKIPPED and int(CycleExit.LATE_SKIPPED) == 15
    else:
        assert late_skips(tmp_path) == []


@pytest.mark.parametrize(("when", "outcome"), [("next_morning", "late_skipped"), ("evening", "submitted")])
def test_alpaca_service_never_sends_an_order_the_auction_cannot_take(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, trading: FakeTradingAPI, tmp_path: Path, when: str, outcome: str
) -> None:
    """Before: at D1 10:00 ET the D0 decision went out as an opg order and Alpaca answered 422."""
    trader = alpaca.make_trader(tiny_bundle, broker, tmp_path, alpaca.scripted(Action.BUY))
    service = PaperTradingService(
        trader, broker, health_path=tmp_path / "health.json", decision_delay=decision_delay(),
        not_before=ALPACA_EARLIEST_DECISION,
    )  # fmt: skip
    alpaca.at_close(trading, alpaca.D0)
    trading.set_now(at(alpaca.D1, 10) if when == "next_morning" else at(alpaca.D0, 19, 30))
    result = service.run_once()
    assert result is not None and result.session == alpaca.D0
    assert result.outcome == outcome
    assert len(trading.orders) == (outcome == "submitted")
    assert len(late_skips(tmp_path)) == (outcome == "late_skipped")

    if outcome == "late_skipped":  # the next close decides normally and submits for D2
        alpaca.at_close(trading, alpaca.D1)
        following = service.run_once()
        assert following is not None and following.session == alpaca.D1 and following.outcome == "submitted"
        (order,) = trading.orders
        assert order["client_order_id"] == following.client_order_id
