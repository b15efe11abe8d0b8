"""Fill reconciliation: what a broker fill cost against the fill the backtest would have had.

The model fill is the simulated broker's (and the environment's): the fill session's open (or
close, per the bundle's execution) through :func:`finrl.meta.env.execution.fill_order`, with the
impact inputs of the decision's close (:func:`finrl.meta.env.market_arrays.bars_liquidity` of the
session before the fill). The slippage is signed so that positive is worse for the account: a buy
above the model price, a sell below it, in basis points of the model price. With the simulated
broker it is exactly 0; with Alpaca it measures what the backtest's cost model missed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from finrl.meta.env.execution import ExecutionConfig, fill_order
from finrl.meta.env.market_arrays import bars_liquidity


@dataclass(frozen=True)
class FilledOrder:
    """A filled order awaiting its reconciliation (kept in the trader's state until its bar is known)."""

    client_order_id: str
    fill_session: str  # ISO date
    side: str
    qty: float
    price: float  # the broker's average fill price

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilledOrder:
        return cls(str(data["client_order_id"]), str(data["fill_session"]), str(data["side"]),
                   float(data["qty"]), float(data["price"]))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reconciliation:
    client_order_id: str
    fill_session: str
    side: str
    qty: float
    broker_price: float
    model_price: float
    reference_price: float  # the fill session's open or close, before costs
    slippage_bps: float  # positive: worse for the account than the model fill

    def to_journal(self) -> dict[str, Any]:
        return asdict(self)


def fill_session_of(client_order_id: str) -> date | None:
    """The fill session a trader's client order id names (``<strategy>-<symbol>-YYYYMMDD``); None otherwise."""
    try:
        return datetime.strptime(client_order_id.rsplit("-", 1)[-1], "%Y%m%d").date()
    except ValueError:
        return None


def slippage_bps(side: str, broker_price: float, model_price: float) -> float:
    """Signed so that positive is worse for the account: paying more on a buy, receiving less on a sell."""
    sign = 1.0 if side == "buy" else -1.0
    return sign * (broker_price - model_price) / model_price * 1e4 + 0.0  # + 0.0: never -0.0


def reconcile(order: FilledOrder, features: pd.DataFrame, execution: ExecutionConfig) -> Reconciliation | None:
    """The order against the model fill on ``features`` (daily bars or a features frame: open, close,
    log return, volume); None while the fill session's bar is not in it."""
    index = pd.DatetimeIndex(features.index)
    row = index.get_indexer(pd.DatetimeIndex([pd.Timestamp(order.fill_session)]))[0]
    if row < 1:  # the bar is not there yet (or the decision day before it is not)
        return None
    volatility, adv = bars_liquidity(features.iloc[: row + 1])
    column = "open" if execution.fill_at == "next_open" else "close"
    reference = float(features[column].iloc[row])
    delta = order.qty if order.side == "buy" else -order.qty
    model = fill_order(delta, reference, execution, float(volatility[row - 1]), float(adv[row - 1])).price
    return Reconciliation(
        client_order_id=order.client_order_id,
        fill_session=order.fill_session,
        side=order.side,
        qty=order.qty,
        broker_price=order.price,
        model_price=model,
        reference_price=reference,
        slippage_bps=slippage_bps(order.side, order.price, model),
    )


def bar_pending(order: FilledOrder, features: pd.DataFrame) -> bool:
    """True while the order's fill session is after ``features``' last bar: a later cycle reconciles it."""
    return bool(pd.Timestamp(order.fill_session) > pd.DatetimeIndex(features.index)[-1])
