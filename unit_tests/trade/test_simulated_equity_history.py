"""The simulated account's equity history: the close it marks each session, kept in its state file.

The trader rebuilds its equity peak from it when its own state file is lost, so it must hold every
session replayed (also those crossed in one jump), equal the account's equity at each close, survive
a restart, and leave account files written before it loadable.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from finrl.trade.simulated import SimulatedBroker
from unit_tests.conftest import discrete3_config, make_bars

pytestmark = pytest.mark.unit

BARS = make_bars(30, seed=5)
DAYS = [d.date() for d in pd.DatetimeIndex(BARS.index)]
CASH = 100_000.0


def make_broker(path: Path) -> SimulatedBroker:
    return SimulatedBroker(path, BARS, discrete3_config().execution, CASH)


def close_equity(broker: SimulatedBroker, day: date) -> float:
    position = broker.position("SPY")
    return broker.account().cash + (position.qty if position else 0.0) * float(BARS["close"].loc[pd.Timestamp(day)])


def test_each_replayed_session_records_its_closing_equity(tmp_path: Path) -> None:
    broker = make_broker(tmp_path / "account.json")
    assert broker.equity_history(DAYS[0]) == []  # nothing marked yet
    broker.advance_to(DAYS[0])
    assert broker.equity_history(DAYS[0]) == [(DAYS[0], CASH)]
    broker.submit_market_order("SPY", 100, "buy", "buy-1", "opg")
    expected = [(DAYS[0], CASH)]
    for day in DAYS[1:6]:  # day by day, as the trader prepares each session
        broker.advance_to(day)
        expected.append((day, broker.account().equity))
    assert broker.equity_history(DAYS[0]) == expected
    assert len({equity for _, equity in expected[1:]}) == 5  # the position moves the equity each day
    broker.advance_to(DAYS[12])  # a jump (the trader was down a week): every session in between is marked
    history = broker.equity_history(DAYS[0])
    assert [day for day, _ in history] == DAYS[:13]
    assert history[-1] == (DAYS[12], broker.account().equity)
    assert history[-1][1] == pytest.approx(close_equity(broker, DAYS[12]), rel=0, abs=1e-9)
    broker.advance_to(DAYS[12])  # the same session again: nothing new
    assert broker.equity_history(DAYS[0]) == history
    assert broker.equity_history(DAYS[10]) == history[10:]  # from start, inclusive
    assert broker.equity_history(DAYS[13]) == []


def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    broker = make_broker(path)
    broker.advance_to(DAYS[0])
    broker.submit_market_order("SPY", 50, "buy", "buy-1", "opg")
    broker.advance_to(DAYS[4])
    restarted = make_broker(path)
    assert restarted.equity_history(DAYS[0]) == broker.equity_history(DAYS[0])
    assert json.loads(path.read_text())["equity_history"][DAYS[4].isoformat()] == broker.account().equity


def test_an_account_file_from_before_the_history_loads_and_starts_one(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    broker = make_broker(path)
    broker.advance_to(DAYS[0])
    broker.advance_to(DAYS[3])
    state = json.loads(path.read_text())
    del state["equity_history"]
    path.write_text(json.dumps(state))
    old = make_broker(path)
    assert old.equity_history(DAYS[0]) == []  # no history: the trader falls back on its journal
    old.advance_to(DAYS[5])
    assert old.equity_history(DAYS[0]) == [(DAYS[4], close_equity(old, DAYS[4])), (DAYS[5], old.account().equity)]
