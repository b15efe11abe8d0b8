"""What the daily trader needs from a broker, and the errors it distinguishes.

Two adapters implement :class:`Broker`: :mod:`finrl.trade.simulated` (a local paper account
that fills like the backtest) and :mod:`finrl.trade.alpaca_broker` (Alpaca through alpaca-py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from finrl.calendar import SessionTimes
from finrl.errors import FinRLError

if TYPE_CHECKING:
    import pandas as pd

FINAL_ORDER_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"})


class BrokerError(FinRLError):
    """The broker could not do what was asked."""


class BrokerAuthError(BrokerError):
    """Bad or missing API keys (HTTP 401): nothing will work until they are fixed."""

    exit_code = 3


class BrokerRejectedError(BrokerError):
    """The broker refused a request (HTTP 403/422: buying power, market closed, bad order)."""


class BrokerUnavailableError(BrokerError):
    """Timeouts, 429 and 5xx that outlasted the retries."""


@dataclass(frozen=True)
class AccountState:
    equity: float
    cash: float
    buying_power: float
    trading_blocked: bool = False
    status: str = "ACTIVE"  # Alpaca's account status (ACTIVE, ACCOUNT_UPDATED, ...); the simulated one is always active


@dataclass(frozen=True)
class PositionState:
    symbol: str
    qty: float  # signed: negative when short
    avg_entry_price: float


@dataclass(frozen=True)
class OrderState:
    id: str
    client_order_id: str
    symbol: str
    side: str  # "buy" or "sell"
    qty: float
    status: str
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    time_in_force: str = "opg"

    @property
    def done(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES


class Broker(Protocol):
    name: str

    def account(self) -> AccountState: ...

    def now(self) -> datetime: ...

    def sessions(self, start: date, end: date) -> list[SessionTimes]: ...

    def position(self, symbol: str) -> PositionState | None: ...

    def order_by_client_id(self, client_order_id: str) -> OrderState | None: ...

    def submit_market_order(
        self, symbol: str, qty: float, side: str, client_order_id: str, time_in_force: str
    ) -> OrderState: ...

    def follow_market(self, bars: pd.DataFrame) -> None:
        """New market data arrived (a simulated market replays it; a real broker has its own)."""

    def prepare_session(self, session: date) -> None:
        """Bring the account up to ``session``'s close before deciding (fills, dividends, marks)."""

    def equity_history(self, start: date) -> list[tuple[date, float]]:
        """The account's equity at each session's close from ``start`` (inclusive) on, oldest first.

        What the broker itself remembers, so that the trader can rebuild its equity peak when its
        own state file is lost. Days without a positive equity (before the account was funded)
        are left out; ``[]`` when the broker keeps no history.
        """
