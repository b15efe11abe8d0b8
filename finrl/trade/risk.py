"""Risk limits checked before every order, and the persistent state they need.

* max drawdown from the equity peak: flatten and stop trading until a human resets the state;
* max daily loss since the previous session's close: no new exposure that day (exits allowed);
* max position as a fraction of equity and max order notional: the order is blocked.
"""

from __future__ import annotations

from dataclasses import dataclass


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
