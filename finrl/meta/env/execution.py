"""How an order fills and what it costs: one model for the env, the backtest and the simulated broker.

Prices are the traded (unadjusted) open or close. A buy pays half the quoted spread, slippage and
a square-root market impact above the reference price, a sell as much below it; both pay a
commission on the notional, and a sell also pays the regulatory fees on it (the SEC's Section 31
fee on the proceeds and FINRA's trading activity fee per share, capped per trade). Sizes are a
fraction of equity, in whole or fractional shares, never "1 share".

Every fill records each component in currency (:data:`COST_COMPONENTS`); its ``cost`` is their sum.
With ``q`` shares at reference price ``P`` and fill price ``p``:

* commission = q * p * commission_bps / 1e4
* spread = q * P * (spread_bps / 2) / 1e4 (half the quoted spread per fill)
* slippage = q * P * slippage_bps / 1e4
* impact = q * P * impact_coef * sigma * sqrt(q / ADV), the square-root law; ``sigma`` is the daily
  volatility of log returns and ``ADV`` the average daily volume in shares, both over the trailing
  window ending at the decision's close (:func:`finrl.meta.env.market_arrays.trailing_liquidity`),
  so nothing after the decision enters; no volume or volatility data means no impact
* sec_fee (sells only) = q * p * sec_fee_per_million / 1e6
* taf (sells only) = min(q * finra_taf_per_share, finra_taf_max)

``p = P * (1 +/- (spread/2 + slippage) bps + impact fraction)``. Orders are sized with the spread,
slippage and commission estimate only (:func:`order_shares`): the impact and the sell fees, a
fraction of a basis point for this account's sizes, are paid but not foreseen, so cash can end a
little below zero after a buy, as after a gap up. Fees are not rounded to the cent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

BPS = 1e-4
PER_MILLION = 1e-6
COST_COMPONENTS = ("commission", "spread", "slippage", "impact", "sec_fee", "taf")
DIVIDEND_THRESHOLD = 1e-4  # adj_close rounding makes tiny fake factor moves every day


class Action(IntEnum):
    SELL = 0
    HOLD = 1
    BUY = 2


@dataclass(frozen=True)
class CostModel:
    """Costs per fill (see the module's docstring); the values come from the caller (``Settings`` holds the
    defaults and their sources)."""

    commission_bps: float
    spread_bps: float  # the full quoted spread; each fill pays half of it
    slippage_bps: float
    sec_fee_per_million: float  # sells: SEC Section 31 fee, dollars per million dollars of proceeds
    finra_taf_per_share: float  # sells: FINRA trading activity fee per share ...
    finra_taf_max: float  # ... capped at this much per trade
    impact_coef: float  # square-root impact: coefficient x daily volatility x sqrt(shares / ADV)

    def __post_init__(self) -> None:
        values = (self.commission_bps, self.spread_bps, self.slippage_bps, self.sec_fee_per_million,
                  self.finra_taf_per_share, self.finra_taf_max, self.impact_coef)  # fmt: skip
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"trading costs must be finite and not negative, got {self}")

    @property
    def price_impact(self) -> float:
        return (self.spread_bps / 2 + self.slippage_bps) * BPS

    @property
    def commission_rate(self) -> float:
        return self.commission_bps * BPS

    @property
    def sec_fee_rate(self) -> float:
        return self.sec_fee_per_million * PER_MILLION


# what a cost model recorded before the regulatory fees and the impact existed meant: none of them
COSTS_BEFORE_FEES: dict[str, float] = {
    "sec_fee_per_million": 0.0,
    "finra_taf_per_share": 0.0,
    "finra_taf_max": 0.0,
    "impact_coef": 0.0,
}


@dataclass(frozen=True)
class ExecutionConfig:
    """How orders are sized and filled; every value comes from the caller (``Settings`` holds the defaults)."""

    costs: CostModel
    position_fraction: float  # of equity, for long and short alike
    allow_short: bool
    fractional_shares: bool  # Alpaca's market-on-open orders take whole shares only
    fill_at: Literal["next_open", "next_close"]

    def __post_init__(self) -> None:
        if not 0 < self.position_fraction <= 1:
            raise ValueError(f"position_fraction must be in (0, 1], got {self.position_fraction}")
        if self.fill_at not in ("next_open", "next_close"):
            raise ValueError(f"fill_at must be next_open or next_close, got {self.fill_at!r}")


@dataclass(frozen=True)
class Fill:
    """One fill and its costs in currency, each component apart (:data:`COST_COMPONENTS`)."""

    shares: float  # signed change in shares (+ bought, - sold)
    price: float  # average fill price including spread, slippage and impact
    commission: float
    cost: float  # the sum of the components
    spread: float
    slippage: float
    impact: float
    sec_fee: float  # sells only
    taf: float  # sells only

    @property
    def charges(self) -> float:
        """What the fill pays in cash besides ``shares * price``: commission and the sell fees."""
        return self.commission + self.sec_fee + self.taf


NO_FILL = Fill(0.0, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


MAX_IMPACT = 0.5  # the square-root law fits small participations; beyond it a sell would fill near or below 0


def impact_fraction(size: float, volatility: float, adv: float, coef: float) -> float:
    """The square-root law's price impact of ``size`` shares, a fraction of the price (0..MAX_IMPACT).

    ``coef * volatility * sqrt(size / adv)``; 0 without a coefficient, a positive volatility or a
    positive average daily volume (NaN included: the first days of a series have no history). Capped
    at :data:`MAX_IMPACT`: an order of many days' volume in a wild market would otherwise sell at a
    negative price (with negative fees), which no market does.
    """
    if not (coef > 0 and volatility > 0 and adv > 0):
        return 0.0
    return min(coef * volatility * math.sqrt(size / adv), MAX_IMPACT)


def target_position(action: int, position: int, allow_short: bool) -> int:
    """-1, 0 or +1 after ``action``: sell goes to the lowest allowed position, buy to long."""
    if action == Action.BUY:
        return 1
    if action == Action.SELL:
        return -1 if allow_short else 0
    if action == Action.HOLD:
        return position
    raise ValueError(f"invalid action {action!r}: expected 0 (sell), 1 (hold) or 2 (buy)")


def position_of(shares: float) -> int:
    return int(shares > 0) - int(shares < 0)


def order_shares(cash: float, shares: float, target: int, sizing_price: float, config: ExecutionConfig) -> float:
    """Signed shares to trade to move ``shares`` to ``target`` (-1/0/+1), sized at ``sizing_price``.

    Sizing happens when the decision is made (day t's close), as a live order must be: leaving a
    position closes all of it; entering spends ``position_fraction`` of the equity left after
    closing, net of estimated spread, slippage and commission. The fill price (t+1's open) may
    differ, so cash can end slightly below zero after a gap up, as with a real market-on-open order.
    """
    if target == position_of(shares):
        return 0.0
    if target == 0:
        return -shares
    sizing_price = float(sizing_price)  # numpy scalars from the env's arrays would leak into the fill
    impact, commission_rate = config.costs.price_impact, config.costs.commission_rate
    entry_price = sizing_price * (1 + impact if target > 0 else 1 - impact)
    exit_price = sizing_price * (1 - impact if shares > 0 else 1 + impact)
    close_cost = abs(shares) * (abs(exit_price - sizing_price) + exit_price * commission_rate)
    equity = cash + shares * sizing_price
    budget = max(0.0, equity - close_cost) * config.position_fraction / (entry_price * (1 + commission_rate))
    # fractional sizes round down to Alpaca's 1e-9 share precision, which also keeps cash >= 0 at the sizing price
    size = math.floor(budget * 1e9) / 1e9 if config.fractional_shares else math.floor(budget + 1e-9)
    return target * size - shares


def fill_order(
    delta: float, reference_price: float, config: ExecutionConfig, volatility: float = 0.0, adv: float = 0.0
) -> Fill:
    """Fill ``delta`` shares (+ buy, - sell) at ``reference_price`` with every cost of the module's docstring.

    ``volatility`` (daily, of log returns) and ``adv`` (shares) are the trailing values known at the
    decision's close; the defaults (no liquidity data) mean no impact.
    """
    if delta == 0:
        return NO_FILL
    costs = config.costs
    reference_price = float(reference_price)
    size = abs(delta)
    fraction = impact_fraction(size, float(volatility), float(adv), costs.impact_coef)
    move = costs.price_impact + fraction
    price = reference_price * (1 + move) if delta > 0 else reference_price * (1 - move)
    commission = size * price * costs.commission_rate
    reference_notional = size * reference_price
    spread = reference_notional * (costs.spread_bps / 2 * BPS)
    slippage = reference_notional * (costs.slippage_bps * BPS)
    impact = reference_notional * fraction
    sec_fee = taf = 0.0
    if delta < 0:  # regulatory fees are charged on sales only
        sec_fee = size * price * costs.sec_fee_rate
        taf = min(size * costs.finra_taf_per_share, costs.finra_taf_max)
    cost = commission + spread + slippage + impact + sec_fee + taf
    return Fill(delta, price, commission, cost, spread, slippage, impact, sec_fee, taf)


def rebalance(
    cash: float,
    shares: float,
    target: int,
    reference_price: float,
    config: ExecutionConfig,
    sizing_price: float | None = None,
) -> Fill:
    """Size at ``sizing_price`` (default: the fill's reference price) and fill at ``reference_price``."""
    size_at = reference_price if sizing_price is None else sizing_price
    return fill_order(order_shares(cash, shares, target, size_at, config), reference_price, config)


def dividends_per_share(close: ArrayLike, adj_close: ArrayLike) -> np.ndarray:
    """Cash dividend per share on each ex-date, implied by the adjustment factor adj_close/close.

    A back-adjusted series has factor_{t-1} / factor_t = 1 - D_t / close_{t-1} on ex-date t; moves
    below :data:`DIVIDEND_THRESHOLD` are rounding noise of the vendor's adj_close and count as 0.
    """
    close_a = np.asarray(close, dtype=np.float64)
    factor = np.asarray(adj_close, dtype=np.float64) / close_a
    out = np.zeros_like(close_a)
    ratio = 1.0 - factor[:-1] / factor[1:]
    out[1:] = np.where(ratio > DIVIDEND_THRESHOLD, ratio * close_a[:-1], 0.0)
    return out


def entry_after_fill(shares_before: float, entry_before: float, delta: float, price: float) -> float:
    """The average entry price of the position after filling ``delta`` shares at ``price``.

    Opening or flipping starts a new entry at the fill price; adding in the same direction averages
    the cost (as a broker's average entry price does); reducing keeps it; closing leaves none (NaN).
    """
    after = shares_before + delta
    if after == 0:
        return math.nan
    if shares_before == 0 or (shares_before > 0) != (after > 0):
        return price
    if abs(after) > abs(shares_before):
        return (shares_before * entry_before + delta * price) / after
    return entry_before
