"""Losing or damaging the trader's state file never lifts the drawdown halt nor lowers the peak."""

from __future__ import annotations

from pathlib import Path

import pytest

from finrl.agents.bundle import ModelBundle
from finrl.meta.env.execution import Action
from finrl.trade.journal import Journal
from finrl.trade.trader import TraderState
from unit_tests.conftest import risk_limits
from unit_tests.trade.test_simulated_trading import always, bundle, make_trader, session_days

pytestmark = pytest.mark.integration
__all__ = ["bundle"]  # the module fixture, shared with the simulated-trading tests


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_the_halt_and_peak_survive_a_lost_state_file(bundle: ModelBundle, tmp_path: Path, damage: str) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY), risk=risk_limits(max_drawdown=0.02))
    days = iter(session_days(120, start="2018-09-20"))  # the 2018 Q4 sell-off
    for day in days:  # trade into the drawdown until the halt triggers
        broker.advance_to(day)
        trader.run_cycle(day)
        if trader.state.halted:
            break
    before = trader.state
    assert before.halted and before.peak_equity > 0
    state_file = tmp_path / "state.json"
    if damage == "deleted":
        state_file.unlink()
    else:
        state_file.write_text('{"peak_equity": 1e9, "halt')  # torn mid-write

    day = next(days)
    broker.advance_to(day)
    result = trader.run_cycle(day)  # no traceback: rebuilt from the journal
    after = trader.state
    assert result.outcome == "halted"
    assert after.halted and after.halt_reason == before.halt_reason
    assert after.peak_equity == before.peak_equity  # the true peak, not today's equity
    assert broker.position("SPY") is None  # still flat: the halt sent no new buy
    rebuilt = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "state_rebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["halted"] is True
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    if damage == "corrupt":
        assert len(aside) == 1 and aside[0].read_text().startswith('{"peak_equity": 1e9')
        assert rebuilt[0]["kept_as"] == aside[0].name
    else:
        assert aside == []


def test_a_fresh_journal_rebuilds_a_fresh_state() -> None:
    assert TraderState.from_journal([]) == TraderState()


def test_the_brokers_account_history_restores_a_peak_the_journal_lost(bundle: ModelBundle, tmp_path: Path) -> None:
    """The state file deleted and the journal cut back to its first day (rotated, restored from an old
    backup): the account's closing equity since that day still holds the peak, so the halt holds."""
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY), risk=risk_limits(max_drawdown=0.02))
    days = iter(session_days(160, start="2018-07-02"))  # the summer rally to a peak, then Q4
    for day in days:
        broker.advance_to(day)
        trader.run_cycle(day)
        if trader.state.halted:
            break
    before = trader.state
    journal = tmp_path / "journal.jsonl"
    first_day = journal.read_text().splitlines()[:1]
    journal.write_text("\n".join(first_day) + "\n")
    (tmp_path / "state.json").unlink()
    assert TraderState.from_journal(Journal(journal).entries()).peak_equity < before.peak_equity

    day = next(days)
    broker.advance_to(day)
    result = trader.run_cycle(day)
    assert result.outcome == "halted" and trader.state.peak_equity == before.peak_equity
    (rebuilt,) = [e for e in Journal(journal).entries() if e["event"] == "state_rebuilt"]
    assert rebuilt["broker_peak_day"] is not None and rebuilt["peak_equity"] == before.peak_equity


def test_a_first_start_ignores_the_accounts_older_history(
    bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No journal and no state file: a new trader on an account that was worth more before it must
    not halt at once on someone else's peak."""
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY), risk=risk_limits(max_drawdown=0.02))
    day = session_days(1, start="2018-09-20")[0]
    monkeypatch.setattr(broker, "equity_history", lambda start: [(day, 10 * broker.account().equity)])
    broker.advance_to(day)
    assert trader.run_cycle(day).outcome != "halted"
