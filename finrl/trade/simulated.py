"""A local paper account that fills exactly like the backtest: the broker that needs no keys.

It trades against daily bars from the configured data source. Its clock is the data's: "now"
is one hour after the close of the latest bar (never past real time), so ``--once`` decides on
the latest bar and queues an order for the next session. Orders fill at that session's open (or
close) with the same cost model as the environment (the impact from the trailing volatility and
volume known at the decision's close, as the backtest reads them); holders at a close receive the
next day's dividend. State lives in a JSON file written atomically after every change, so a restart resumes
where it stopped; it also keeps the equity at each close it marked (the account's history, as a real
broker keeps one), so that the trader can rebuild its equity peak without its own state file.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrl.calendar import SessionTimes, nyse_sessions
from finrl.fileio import atomic_write_json
from finrl.meta.env.execution import (
    COST_COMPONENTS,
    ExecutionConfig,
    dividends_per_share,
    entry_after_fill,
    fill_order,
)
from finrl.meta.env.market_arrays import bars_liquidity
from finrl.schemas import SimulatedAccount, validate_file
from finrl.trade.broker import (
    AccountState,
    BrokerRejectedError,
    OrderState,
    PositionState,
)


class SimulatedBroker:
    name = "simulated"

    def __init__(self, state_path: Path, bars: pd.DataFrame, execution: ExecutionConfig, initial_cash: float) -> None:
        self.state_path = Path(state_path)
        self.execution = execution
        self.update_bars(bars)
        self._state = self._load(initial_cash)

    # ------------------------------------------------------------------ market replay

    def update_bars(self, bars: pd.DataFrame) -> None:
        """Newer market data (a daily refresh); the account state is kept."""
        self._bars = bars
        self._days = [d.date() for d in pd.DatetimeIndex(bars.index)]
        self._row = {day: i for i, day in enumerate(self._days)}
        self._open = bars["open"].to_numpy(dtype=np.float64)
        self._close = bars["close"].to_numpy(dtype=np.float64)
        self._dividends = dividends_per_share(bars["close"], bars["adj_close"])
        # the features' log return and volume: the windows hold the backtest's very values
        self._volatility, self._adv = bars_liquidity(bars)

    @property
    def last_session(self) -> date | None:
        value = self._state["last_session"]
        return date.fromisoformat(value) if value else None

    def follow_market(self, bars: pd.DataFrame) -> None:
        self.update_bars(bars)

    def prepare_session(self, session: date) -> None:
        self.advance_to(session)

    def advance_to(self, session: date) -> None:
        """Process every bar after the last one seen up to ``session``: dividends, fills, marks."""
        if session not in self._row:
            raise BrokerRejectedError(f"no market data for {session}: the simulated market ends {self._days[-1]}")
        last = self.last_session
        if last is None:
            self._state["last_session"] = session.isoformat()
            self._record_close(self._row[session])
        else:
            for i in range(self._row[last] + 1, self._row[session] + 1):
                self._process_day(i)
        self._save()

    def _process_day(self, i: int) -> None:
        state = self._state
        if state["shares"] and self._dividends[i]:
            state["cash"] += state["shares"] * float(self._dividends[i])  # holders at the previous close
        reference = self._open[i] if self.execution.fill_at == "next_open" else self._close[i]
        for order in state["orders"].values():
            if order["status"] not in ("new", "accepted"):
                continue
            delta = order["qty"] if order["side"] == "buy" else -order["qty"]
            # impact inputs of the decision's day (the previous session), as the env reads them
            fill = fill_order(delta, float(reference), self.execution, self._volatility[i - 1], self._adv[i - 1])
            state["cash"] -= fill.shares * fill.price + fill.charges
            before = state["shares"]
            state["shares"] = before + fill.shares
            # the env's entry price: a new one on opening or flipping, averaged on adds, kept on reductions
            entry = state["avg_entry_price"]
            after = entry_after_fill(before, math.nan if entry is None else entry, fill.shares, fill.price)
            state["avg_entry_price"] = None if math.isnan(after) else after
            order.update(status="filled", filled_qty=order["qty"], filled_avg_price=fill.price,
                         filled_session=self._days[i].isoformat(), costs=fill.cost,
                         cost_breakdown={name: getattr(fill, name) for name in COST_COMPONENTS})  # fmt: skip
        state["last_session"] = self._days[i].isoformat()
        self._record_close(i)

    def _record_close(self, i: int) -> None:
        """Remember the equity at bar ``i``'s close (an account file from before this starts empty)."""
        state = self._state
        equity = state["cash"] + state["shares"] * float(self._close[i])
        state.setdefault("equity_history", {})[self._days[i].isoformat()] = equity

    # ------------------------------------------------------------------ Broker protocol

    def now(self) -> datetime:
        """The market's clock is its data's: an hour after the latest bar's close, never past real time."""
        (times,) = nyse_sessions(self._days[-1], self._days[-1])
        return min(datetime.now(UTC), times.close + timedelta(hours=1))

    def sessions(self, start: date, end: date) -> list[SessionTimes]:
        return nyse_sessions(start, end)

    def account(self) -> AccountState:
        state = self._state
        last = self.last_session
        price = float(self._close[self._row[last]]) if last else 0.0
        equity = state["cash"] + state["shares"] * price
        return AccountState(equity=equity, cash=state["cash"], buying_power=max(equity, 0.0))

    def equity_history(self, start: date) -> list[tuple[date, float]]:
        """The equity at each close this account has marked, from ``start`` on (see the protocol)."""
        history: dict[str, float] = self._state.get("equity_history", {})
        days = sorted((date.fromisoformat(day), float(equity)) for day, equity in history.items())
        return [(day, equity) for day, equity in days if day >= start and equity > 0]

    def position(self, symbol: str) -> PositionState | None:
        shares = self._state["shares"]
        if not shares:
            return None
        return PositionState(symbol, shares, float(self._state["avg_entry_price"]))

    def order_by_client_id(self, client_order_id: str) -> OrderState | None:
        order = self._state["orders"].get(client_order_id)
        return _order_state(order) if order else None

    def submit_market_order(
        self, symbol: str, qty: float, side: str, client_order_id: str, time_in_force: str
    ) -> OrderState:
        if client_order_id in self._state["orders"]:
            raise BrokerRejectedError(f"client_order_id {client_order_id} must be unique")
        if qty <= 0 or side not in ("buy", "sell"):
            raise BrokerRejectedError(f"invalid order: {side} {qty}")
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": client_order_id,
            "symbol": symbol,
            "side": side,
            "qty": float(qty),
            "status": "accepted",
            "time_in_force": time_in_force,
            "submitted_after": self._state["last_session"],
        }
        self._state["orders"][client_order_id] = order
        self._save()
        return _order_state(order)

    # ------------------------------------------------------------------ persistence

    def _load(self, initial_cash: float) -> dict[str, Any]:
        if self.state_path.is_file():
            try:
                document = json.loads(self.state_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BrokerRejectedError(f"corrupt simulated account {self.state_path}: {exc}") from exc
            return validate_file(SimulatedAccount, document, self.state_path, BrokerRejectedError).to_state()
        return {
            "cash": float(initial_cash),
            "shares": 0.0,
            "avg_entry_price": None,
            "last_session": None,
            "orders": {},
            "equity_history": {},  # ISO date -> equity at that session's close; absent in older files
        }

    def _save(self) -> None:
        atomic_write_json(self.state_path, self._state)


def _order_state(order: dict[str, Any]) -> OrderState:
    fields = {k: order[k] for k in ("id", "client_order_id", "symbol", "side", "qty", "status", "time_in_force")}
    return OrderState(
        **fields, filled_qty=float(order.get("filled_qty", 0.0)), filled_avg_price=order.get("filled_avg_price")
    )
