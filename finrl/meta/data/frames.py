"""The canonical daily-bar frame every data source produces.

Index ``date`` (tz-naive midnight timestamps, one per session, ascending); float columns
``open, high, low, close, adj_close, volume``; optionally ``vix``. Open/high/low/close are the
traded (unadjusted) prices used for execution; ``adj_close`` is the dividend-adjusted close
used for returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date

import pandas as pd

from finrl.errors import DataError

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
REQUIRED_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_ALIASES = {
    "adj close": "adj_close",
    "adjclose": "adj_close",
    "adjusted_close": "adj_close",
    "timestamp": "date",
}


def normalise_column_names(columns: Iterable[object]) -> list[str]:
    names = [str(c).strip().lower().replace("-", "_") for c in columns]
    return [_ALIASES.get(n, n.replace(" ", "_")) for n in names]


def to_date_index(values: Iterable[str | date | float], *, what: str) -> pd.DatetimeIndex:
    """Parse dates (strings, datetimes, tz-aware timestamps) to tz-naive calendar days."""
    values = tuple(values)
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values, format="mixed"))
    except ValueError:
        # offsets that differ across a daylight-saving change (-05:00 / -04:00) parse only via UTC
        try:
            index = pd.DatetimeIndex(pd.to_datetime(values, format="mixed", utc=True))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{what}: unparseable dates ({exc})") from exc
    except TypeError as exc:
        raise DataError(f"{what}: unparseable dates ({exc})") from exc
    if index.tz is not None:  # exchange-local calendar day, not the UTC one
        index = index.tz_convert("America/New_York").tz_localize(None)
    return pd.DatetimeIndex(index.normalize().astype("datetime64[ns]"), name="date")


def canonical_bars(frame: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Select, order and type the bar columns; ``adj_close`` defaults to ``close``."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)} (have: {', '.join(map(str, frame.columns))})")
    out: pd.DataFrame = frame.copy()
    if "adj_close" not in out.columns:
        out["adj_close"] = out["close"]
    columns = [*BAR_COLUMNS, *(["vix"] if "vix" in out.columns else [])]
    out = out[columns]
    try:
        out = out.apply(pd.to_numeric, errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what}: non-numeric price or volume values ({exc})") from exc
    return out.sort_index()


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the data that a model was trained on (dates, columns and values)."""
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"a data fingerprint needs a date index, not {type(frame.index).__name__}")
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(frame.index.asi8.tobytes())
    digest.update(frame.to_numpy(dtype="float64").tobytes())
    return digest.hexdigest()
