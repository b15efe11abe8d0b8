"""The one risk rule of the paper trader and the backtest (risk.apply_limits), and the backtest's book
of the state the trader keeps between closes (risk.RiskBook)."""

from __future__ import annotations

from datetime import date

import pytest

from finrl.trade.risk import RiskBook, RiskLimits, apply_limits

pytestmark = pytest.mark.unit
LIMITS = RiskLimits(max_drawdown=0.1, max_daily_loss=0.05, max_position_fraction=1.05, max_order_notional=50_000)


class Policy:
    """Records whether it was asked; decides to buy ``order`` shares."""

    def __init__(self, order: float = 100.0) -> None:
        self.asked = 0
        self.order = order

    def __call__(self) -> tuple[int, float, float]:
        self.asked += 1
        return 2, 1.0, self.order


def gate(policy: Policy, *, equity: float = 100_000, peak: float = 100_000, previous: float | None = None,
         halted: bool = False, shares: float = 0.0, price: float = 100.0):  # fmt: skip
    return apply_limits(LIMITS, equity=equity, peak_equity=peak, previous_equity=previous, halted=halted,
                        shares=shares, price=price, decide=policy)  # fmt: skip


def test_within_the_limits_the_policy_decides_and_the_order_is_sent() -> None:
    policy = Policy()
    gated = gate(policy)
    assert policy.asked == 1 and not gated.halted and gated.blocked is None
    assert (gated.action, gated.target, gated.order, gated.sent) == (2, 1.0, 100.0, 100.0)


def test_a_drawdown_breach_halts_flattens_without_asking_the_policy() -> None:
    policy = Policy()
    gated = gate(policy, equity=89_000, shares=40.0)
    assert policy.asked == 0
    assert gated.halted and gated.halts_now and gated.verdict.reason.startswith("max_drawdown: 11.0%")
    assert (gated.action, gated.target, gated.sent) == (None, 0.0, -40.0)  # an exit: never blocked
    again = gate(policy, equity=95_000, halted=True, shares=0.0)  # recovered: a halt stands until a person resets it
    assert again.halted and not again.halts_now and again.sent == 0.0 and policy.asked == 0
    assert str(again.order) == "0.0"  # never -0.0


@pytest.mark.parametrize(
    ("order", "previous", "rule"),
    [(600.0, None, "max_order_notional"), (1_100.0, None, "max_position_fraction"), (100.0, 106_000, "max_daily_loss")],
)
def test_an_order_that_breaks_a_limit_is_not_sent(order: float, previous: float | None, rule: str) -> None:
    gated = gate(Policy(order), previous=previous)
    assert gated.blocked is not None and gated.blocked.startswith(rule)
    assert gated.order == order and gated.sent == 0.0 and not gated.halted


def test_the_book_keeps_what_the_trader_keeps_between_closes() -> None:
    book = RiskBook(LIMITS)
    closes = [(date(2020, 2, 3), 100_000.0, 0.0), (date(2020, 2, 4), 110_000.0, 40.0),
              (date(2020, 2, 5), 103_000.0, 40.0), (date(2020, 2, 6), 98_000.0, 40.0),
              (date(2020, 2, 7), 120_000.0, 0.0)]  # fmt: skip
    sent = [book(day, equity, shares, 100.0, Policy(200.0)).sent for day, equity, shares in closes]
    assert book.peak_equity == 120_000 and book.last_equity == 120_000 and book.halted
    # day 3: 6.4% below the previous close, day 4: 10.9% below the peak (halt), day 5: flat and halted
    assert sent == [200.0, 200.0, 0.0, -40.0, 0.0]
    assert [(e.date, e.event, e.rule) for e in book.events] == [
        ("2020-02-05", "risk_blocked", "max_daily_loss"),
        ("2020-02-06", "risk_halt", "max_drawdown"),
    ]
