"""One account of what the risk limits did (:class:`finrl.trade.risk.RiskOutcome`): the backtest's
``meta.risk`` counts, its console line and its report sentence all come from it, and the paper
trader names a rule as :func:`finrl.trade.risk.rule_of` does."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from finrl.applications.spy_rl_trading.commands.backtest import risk_line
from finrl.backtest.report import risk_sentence
from finrl.trade import risk as risk_module
from finrl.trade import trader as trader_module
from finrl.trade.risk import RiskEvent, RiskOutcome, rule_of
from unit_tests.conftest import risk_limits

pytestmark = pytest.mark.unit

BLOCKED = RiskEvent("2018-10-02", "risk_blocked", "max_order_notional", "max_order_notional: 80,000.00 exceeds 70,000")
HALT = RiskEvent("2018-10-11", "risk_halt", "max_drawdown", "max_drawdown: 6.2% below the peak 105,000.00")
LOSS = RiskEvent("2018-10-10", "risk_blocked", "max_daily_loss", "max_daily_loss: 0.6% since the previous close")


def meta(*events: RiskEvent) -> dict[str, Any]:
    """``meta.risk`` as metrics.json holds it (its counts left out: the words come from the events)."""
    return {"limits": asdict(risk_limits()), "applies_to": "agent", "events": [asdict(e) for e in events]}


def test_the_outcome_sorts_halts_from_blocked_orders() -> None:
    outcome = RiskOutcome.of([BLOCKED, LOSS, HALT])
    assert outcome.halts == (HALT,) and outcome.blocked == (BLOCKED, LOSS) and outcome.first_halt == HALT
    assert RiskOutcome.of(meta(BLOCKED, LOSS, HALT)["events"]) == outcome
    assert outcome.summary() == "halted 2018-10-11 (max_drawdown), flat from there; 2 order(s) blocked"
    assert RiskOutcome.of([]).summary() == "no halt; 0 order(s) blocked" and RiskOutcome.of([]).first_halt is None
    with pytest.raises(ValueError, match="not a risk event: decision"):
        RiskOutcome.of([{"date": "2018-10-11", "event": "decision", "rule": "", "detail": ""}])


@pytest.mark.parametrize("events", [(), (BLOCKED,), (BLOCKED, LOSS, HALT)])
def test_the_console_line_and_the_report_say_the_same(events: tuple[RiskEvent, ...]) -> None:
    said = RiskOutcome.of(events).summary()
    assert risk_line(meta(*events)) == f"risk limits (agent only): {said}"
    sentence = risk_sentence(meta(*events))
    assert sentence.startswith("Risk limits on the agent") and sentence.endswith(f": {said}.")


def test_without_limits_both_say_off() -> None:
    off: dict[str, Any] = {"limits": None, "applies_to": "agent", "halts": 0, "blocked_orders": 0, "events": []}
    assert risk_line(off).startswith("risk limits: off") and risk_sentence(off).startswith("Risk limits: off")


def test_the_trader_names_rules_as_the_backtest_does() -> None:
    assert vars(trader_module).get("rule_of") is risk_module.rule_of  # one rule_of, not a copy of its split
    assert rule_of(HALT.detail) == HALT.rule and rule_of(BLOCKED.detail) == BLOCKED.rule
