"""Risk limits checked before every order, and the persistent state they need.

* max drawdown from the equity peak: flatten and stop trading until a human resets the state;
* max daily loss since the previous session's close: no new exposure that day (exits allowed);
* max position as a fraction of equity and max order notional: the order is blocked.

:func:`apply_limits` is the one rule for a decision at a close, which the paper trader and the
backtest both call: a halt (standing, or starting at this close) means target flat and the
policy is not asked; an order that breaks a limit is not sent. The backtest keeps the state the
trader keeps between closes in a :class:`RiskBook`, so it shows what the trader would have done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class RiskLimits:
    """The limits, all from the caller (the application's settings declare their defaults)."""

    max_drawdown: float
    max_daily_loss: float
    max_position_fraction: float  # a little above 1.0: a market-on-open order sized at the close can overshoot
    max_order_notional: float

    def __post_init__(self) -> None:
        for name in ("max_drawdown", "max_daily_loss"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if self.max_position_fraction <= 0 or self.max_order_notional <= 0:
            raise ValueError("position and order limits must be positive")


@dataclass(frozen=True)
class RiskVerdict:
    halt: bool = False  # flatten and stop
    no_new_exposure: bool = False  # only orders that reduce the position
    reason: str = ""


def assess_account(limits: RiskLimits, equity: float, peak_equity: float, previous_equity: float | None) -> RiskVerdict:
    """Account-level limits, evaluated once per cycle on the equity at the decision's close."""
    if peak_equity > 0 and equity <= peak_equity * (1 - limits.max_drawdown):
        drawdown = 1 - equity / peak_equity
        return RiskVerdict(halt=True, reason=f"max_drawdown: {drawdown:.1%} below the peak {peak_equity:,.2f}")
    if previous_equity and equity <= previous_equity * (1 - limits.max_daily_loss):
        loss = 1 - equity / previous_equity
        return RiskVerdict(no_new_exposure=True, reason=f"max_daily_loss: {loss:.1%} since the previous close")
    return RiskVerdict()


def check_order(
    limits: RiskLimits, verdict: RiskVerdict, equity: float, shares: float, delta: float, price: float
) -> str | None:
    """The rule an order breaks, or None. Orders that only reduce the position always pass."""
    after = shares + delta
    reduces = abs(after) < abs(shares) and (after == 0 or (after > 0) == (shares > 0))
    if reduces:
        return None
    if verdict.no_new_exposure:
        return verdict.reason
    if equity <= 0 or abs(after) * price > limits.max_position_fraction * equity:
        return f"max_position_fraction: {abs(after) * price:,.2f} exceeds {limits.max_position_fraction:.2f} x equity"
    if abs(delta) * price > limits.max_order_notional:
        return f"max_order_notional: {abs(delta) * price:,.2f} exceeds {limits.max_order_notional:,.2f}"
    return None


Decision = tuple[Any, float, float]  # (the policy's action, its target, the order in signed shares)


@dataclass(frozen=True)
class GatedDecision:
    """What the limits make of the decision at one close."""

    verdict: RiskVerdict  # the account's assessment at this close
    halted: bool  # flat and out (a halt standing or starting now): the policy was not asked
    halts_now: bool  # the halt starts at this close (``verdict.reason`` says why): record it once
    action: Any  # the policy's action; None when halted
    target: float  # the policy's target; 0 (flat) when halted
    order: float  # the order the decision asks for (signed shares): flattening when halted
    blocked: str | None  # the rule ``order`` breaks: nothing is sent

    @property
    def sent(self) -> float:
        """The order that goes to the market: none when blocked."""
        return 0.0 if self.blocked else self.order


def apply_limits(
    limits: RiskLimits,
    *,
    equity: float,
    peak_equity: float,
    previous_equity: float | None,
    halted: bool,
    shares: float,
    price: float,
    decide: Callable[[], Decision],
) -> GatedDecision:
    """The decision at a close under the limits: the paper trader's rule, and the backtest's.

    ``equity`` is the account's at the decision's close, ``peak_equity`` the highest seen so far
    (this close included), ``previous_equity`` the previous decision's (None at the first),
    ``halted`` whether an earlier close halted. ``decide`` asks the policy (only when not halted).
    Halted: target flat, the whole position closes (an exit, which no limit blocks). Otherwise the
    policy's order is checked by :func:`check_order`; a blocked one is reported, not sent.
    """
    verdict = assess_account(limits, equity, peak_equity, previous_equity)
    if halted or verdict.halt:
        action, target, order = None, 0.0, (0.0 - shares if shares else 0.0)  # never -0.0
    else:
        action, target, order = decide()
    blocked = check_order(limits, verdict, equity, shares, order, price) if order else None
    return GatedDecision(verdict, halted or verdict.halt, verdict.halt and not halted, action, target, order, blocked)


@dataclass(frozen=True)
class RiskEvent:
    """A halt or a blocked order, as the backtest reports it (the trader journals the same)."""

    date: str  # the decision's close, ISO
    event: str  # risk_halt | risk_blocked (the trader's journal events)
    rule: str  # max_drawdown, max_daily_loss, max_position_fraction, max_order_notional
    detail: str


@dataclass(frozen=True)
class RiskOutcome:
    """What the limits did over a run, from its :class:`RiskEvent` records (or their ``asdict`` form,
    as ``metrics.json``'s ``meta.risk.events`` holds them): the one account of halts and blocked orders
    that the backtest's metrics, its console line and its report all give."""

    halts: tuple[RiskEvent, ...] = ()  # in order: a backtest halts at most once (nothing lifts it)
    blocked: tuple[RiskEvent, ...] = ()

    @classmethod
    def of(cls, events: Iterable[RiskEvent | Mapping[str, Any]]) -> RiskOutcome:
        records = [event if isinstance(event, RiskEvent) else RiskEvent(**event) for event in events]
        unknown = {event.event for event in records} - {"risk_halt", "risk_blocked"}
        if unknown:
            raise ValueError(f"not a risk event: {', '.join(sorted(unknown))}")
        return cls(
            tuple(event for event in records if event.event == "risk_halt"),
            tuple(event for event in records if event.event == "risk_blocked"),
        )

    @property
    def first_halt(self) -> RiskEvent | None:
        """The halt after which the agent is flat (None: it never halted)."""
        return self.halts[0] if self.halts else None

    def summary(self) -> str:
        """In words, as the console line and the report say it: ``halted 2018-10-11 (max_drawdown), flat from
        there; 2 order(s) blocked`` or ``no halt; 0 order(s) blocked``."""
        first = self.first_halt
        halted = f"halted {first.date} ({first.rule}), flat from there" if first else "no halt"
        return f"{halted}; {len(self.blocked)} order(s) blocked"


@dataclass
class RiskBook:
    """The limits over a replayed account: the state the paper trader keeps between closes.

    Callable as a :data:`finrl.meta.env.rollout.DecisionGate` (the rollout hands it each close's
    account and the policy's decision); it never resets a halt, as no person is there to do it.
    """

    limits: RiskLimits
    peak_equity: float = 0.0
    last_equity: float | None = None
    halted: bool = False
    events: list[RiskEvent] = field(default_factory=list)

    def __call__(
        self, day: date, equity: float, shares: float, price: float, decide: Callable[[], Decision]
    ) -> GatedDecision:
        self.peak_equity = max(self.peak_equity, equity)
        gated = apply_limits(
            self.limits, equity=equity, peak_equity=self.peak_equity, previous_equity=self.last_equity,
            halted=self.halted, shares=shares, price=price, decide=decide,
        )  # fmt: skip
        self.last_equity, self.halted = equity, gated.halted
        if gated.halts_now:
            reason = gated.verdict.reason
            self.events.append(RiskEvent(day.isoformat(), "risk_halt", rule_of(reason), reason))
        if gated.blocked:
            self.events.append(RiskEvent(day.isoformat(), "risk_blocked", rule_of(gated.blocked), gated.blocked))
        return gated


def rule_of(detail: str) -> str:
    """The rule a verdict's or a check's text names (its prefix: ``max_order_notional: ...``)."""
    return detail.split(":")[0]
