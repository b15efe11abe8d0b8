"""Schemas of the files the project writes and reads back, and one way to say what is wrong with one.

A file written by an older version, edited by hand or damaged by a crash must end in one line naming
the file and the field (``corrupt <path>: field 'cash': Input should be a valid number``), never in a
``KeyError`` three calls later. Each reader validates its document here once; the model bundle and
the ensemble manifest keep their richer models in :mod:`finrl.agents` and share :func:`validate_file`.
Only pydantic is imported: ``spy-rl health`` reads the health file with this module.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from finrl.errors import DataError, FinRLError

Model = TypeVar("Model", bound=BaseModel)


# ---------------------------------------------------------------- one line from a ValidationError


def problems(exc: ValidationError, *, skip: Collection[str] = ()) -> list[tuple[str, str, Any]]:
    """``(where, message, input)`` of each error: ``where`` is the dotted location without the parts in
    ``skip`` (a tagged union's tags), ``message`` pydantic's without its "Value error, " prefix."""
    found = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if str(part) not in skip)
        found.append((where, error["msg"].removeprefix("Value error, "), error.get("input")))
    return found


def first_problem(exc: ValidationError, *, skip: Collection[str] = ()) -> tuple[str, str]:
    """The first error's location and its message, with how many more there are."""
    where, message, _ = problems(exc, skip=skip)[0]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return where, f"{message}{more}"


def describe(exc: ValidationError, source: Path | str, *, top: str = "top level") -> str:
    """``corrupt <source>: field '<where>': <problem>``, the line every file reader raises."""
    where, message = first_problem(exc)
    return f"corrupt {source}: field {where or top!r}: {message}"


def validate_file(model: type[Model], document: Any, source: Path | str, error: type[FinRLError] = DataError) -> Model:
    """``document`` (parsed from ``source``) as ``model``; a malformed field is one ``error`` line naming both."""
    if not isinstance(document, dict):
        raise error(f"corrupt {source}: expected a JSON object, got {_json_type(document)}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise error(describe(exc, source)) from None


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- the files


class SimulatedOrder(BaseModel):
    """An order of the simulated account; fills add their price, session and costs."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    id: str
    client_order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    qty: float = Field(ge=0)
    status: str
    time_in_force: str
    filled_qty: float | None = None
    filled_avg_price: float | None = None


class SimulatedAccount(BaseModel):
    """``simulated_account.json``: the simulated broker's cash, position, orders and marked closes."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    cash: float
    shares: float
    avg_entry_price: float | None = None
    last_session: date | None = None
    orders: dict[str, SimulatedOrder] = Field(default_factory=dict)
    equity_history: dict[date, float] = Field(default_factory=dict)  # absent in files from before it

    def to_state(self) -> dict[str, Any]:
        """The account as the broker keeps it: plain JSON values, optional fields absent from the file left out."""
        state = self.model_dump(mode="json", exclude_unset=True)
        return {"avg_entry_price": None, "last_session": None, "orders": {}, **state}


class TraderStateFile(BaseModel):
    """``trader_state.json``: the trader's cache of its journal (peak, halt, pending orders)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    peak_equity: float = Field(default=0.0, ge=0)
    last_session: date | None = None
    last_equity: float | None = None
    halted: bool = False
    halt_reason: str = ""
    pending: list[str] = Field(default_factory=list)
    unreconciled: list[dict[str, Any]] = Field(default_factory=list)


class HealthFile(BaseModel):
    """``health.json``: the paper service's heartbeat."""

    model_config = ConfigDict(extra="allow")

    status: str
    heartbeat: AwareDatetime
    error: Any = None  # the fatal error's text


class JournalEntry(BaseModel):
    """One line of the trading journal: its time and kind; each event adds its own fields."""

    model_config = ConfigDict(extra="allow")

    ts: str
    event: str = Field(min_length=1)


class CacheMetadata(BaseModel):
    """A dataset cache folder's ``metadata.json``: what the bars must hash to."""

    model_config = ConfigDict(extra="allow")

    fingerprint: str = Field(min_length=1)
