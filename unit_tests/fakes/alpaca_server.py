"""A fake of Alpaca's HTTP API on 127.0.0.1, for tests that drive the real ``alpaca-py`` clients.

What it emulates (market data API v2, ``https://data.alpaca.markets``):

* ``GET /v2/stocks/bars`` -- historical bars as ``StockHistoricalDataClient.get_stock_bars`` requests
  them: query ``symbols`` (comma separated), ``timeframe`` (only ``1Day``), ``start`` / ``end``
  (RFC 3339, both inclusive), ``adjustment`` (``raw``, ``split``, ``dividend``, ``all``), ``feed``,
  ``limit`` (1..10000, the server may return fewer: see ``max_page_size``), ``page_token``, ``sort``
  (``asc``/``desc``). The answer has Alpaca's shape::

      {"bars": {"SPY": [{"t": "2024-01-02T05:00:00Z", "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0,
                         "v": 100, "n": 10, "vw": 1.0}, ...]},
       "next_page_token": "..." | null}

  Daily bars are stamped at midnight New York time, in UTC. Pages hold at most
  ``min(limit, max_page_size)`` bars across all symbols (symbol by symbol, then by time, as Alpaca
  orders them); ``next_page_token`` is an opaque token naming the next bar, ``null`` on the last page.
* Authentication with the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers: wrong or missing
  keys answer ``401 {"message": "unauthorized."}``.

Prices come from pandas frames of canonical daily bars (a date index; ``open, high, low, close,
volume`` and optionally ``adj_close``). ``adjustment=raw`` and ``split`` serve them as they are;
``all`` and ``dividend`` scale open/high/low/close by ``adj_close / close`` of each day (so the
adjusted close *is* ``adj_close``); volume is never adjusted (no splits in the fake).

Every request is recorded (:attr:`FakeAlpacaServer.requests`) and failures can be scripted
(:meth:`FakeAlpacaServer.fail_next`): any status and body, per path and method, slow answers
(``delay`` longer than the client's timeout is a timeout) and failures *after* the request was
handled (``after_handling=True``: the order exists, but the client sees a 500 or a timeout: a
crash between submission and acknowledgment). Further endpoints plug in with
:meth:`FakeAlpacaServer.route`, whose path templates may hold ``{name}`` segments.

The trading API (``https://paper-api.alpaca.markets``) is opt-in, so that a server for market
data alone answers 404 there: :meth:`FakeAlpacaServer.enable_trading` installs a stateful
:class:`FakeTradingAPI` (account, clock, calendar, positions, orders, the account's daily portfolio
history; see its docstring).

Usage::

    with FakeAlpacaServer(bars={"SPY": frame}) as server:
        client = StockHistoricalDataClient(server.api_key, server.api_secret, url_override=server.base_url)
        trading = server.enable_trading(cash=100_000.0, now=datetime(2024, 3, 4, 19, 30, tzinfo=NEW_YORK))
        broker = TradingClient(server.api_key, server.api_secret, url_override=server.base_url)

As a process (the Docker end-to-end test runs it in a container beside the paper trader), with
trading enabled, a fixed clock, and two unauthenticated inspection routes, ``GET /__fake/health``
and ``GET /__fake/orders`` (the orders and how many ``POST /v2/orders`` arrived); it serves until
SIGTERM or SIGINT::

    python -m unit_tests.fakes.alpaca_server --host 0.0.0.0 --port 8080 --now 2019-01-01T00:30:00Z \
        --api-key KEY --api-secret SECRET
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = [
    "NEW_YORK",
    "FakeAlpacaServer",
    "FakeResponse",
    "FakeTradingAPI",
    "Handler",
    "RecordedRequest",
    "alpaca_error",
]

DATA_MAX_LIMIT = 10_000  # Alpaca's largest page
ADJUSTMENTS = ("raw", "split", "dividend", "all")
FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
_MARKET_TZ = "America/New_York"
NEW_YORK = ZoneInfo(_MARKET_TZ)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """The (last) value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[-1] if values else None

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class FakeResponse:
    """What a route answers: a status, a JSON-serialisable body (None for an empty body), headers."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[RecordedRequest, dict[str, str]], FakeResponse]
"""A route: the request and the values of the path template's ``{name}`` segments."""


def alpaca_error(status: int, message: str, code: int | None = None) -> FakeResponse:
    """An error in Alpaca's body shape: ``{"code": ..., "message": ...}`` (``code`` when given)."""
    body: dict[str, Any] = {"message": message}
    if code is not None:
        body = {"code": code, **body}
    return FakeResponse(status, body)


@dataclass(frozen=True)
class _Failure:
    response: FakeResponse
    path: str | None
    method: str | None
    delay: float
    after_handling: bool

    def matches(self, request: RecordedRequest) -> bool:
        return (self.path is None or self.path == request.path) and (
            self.method is None or self.method == request.method
        )


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False  # answered without the API keys (the fake's own inspection routes)


def _compile_template(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


def _parse_rfc3339(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:  # Alpaca also accepts plain dates (YYYY-MM-DD), read as UTC midnight
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC")


def _bar_time(day: pd.Timestamp) -> str:
    """Alpaca's daily-bar timestamp: midnight New York time, written in UTC."""
    utc = pd.Timestamp(day).normalize().tz_localize(_MARKET_TZ).tz_convert("UTC")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeAlpacaServer:
    """Alpaca's HTTP API, in-process on ``127.0.0.1`` (see the module docstring).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``bars`` maps symbols to
    frames of daily bars; :meth:`set_bars` replaces one later. ``max_page_size`` caps each page
    below the client's ``limit`` so that tests can exercise pagination with a few bars. ``host``
    and ``port`` are where it listens (a free port on loopback by default).
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-key-id",
        api_secret: str = "fake-secret-key",
        bars: Mapping[str, pd.DataFrame] | None = None,
        max_page_size: int = DATA_MAX_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        self.api_key = api_key
        self.api_secret = api_secret
        self.max_page_size = max_page_size
        self.host, self.port = host, port
        self._bars: dict[str, pd.DataFrame] = {}
        for symbol, frame in (bars or {}).items():
            self.set_bars(symbol, frame)
        self._routes: list[_Route] = []
        self._requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.trading: FakeTradingAPI | None = None
        self.route("GET", "/v2/stocks/bars", self._stock_bars)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAlpacaServer:
        if self._httpd is not None:
            raise RuntimeError("the fake Alpaca server is already running")
        self._httpd = ThreadingHTTPServer((self.host, self.port), _make_handler_class(self))
        self._httpd.daemon_threads = True
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name="fake-alpaca", daemon=True
        )  # a short poll: stop() returns at once
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeAlpacaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as ``url_override`` (the client appends ``/v2/...``)."""
        if self._httpd is None:
            raise RuntimeError("the fake Alpaca server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ configuration

    def route(self, method: str, template: str, handler: Handler, *, public: bool = False) -> None:
        """Serve ``method template`` with ``handler``; a later route for the same key replaces it.

        A ``public`` route answers without the API keys (for the fake's own inspection routes).
        """
        method = method.upper()
        with self._lock:
            self._routes = [r for r in self._routes if (r.method, r.template) != (method, template)]
            self._routes.append(_Route(method, template, _compile_template(template), handler, public))

    def set_bars(self, symbol: str, frame: pd.DataFrame) -> None:
        """Serve ``frame`` (date index; open, high, low, close, volume[, adj_close]) for ``symbol``."""
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in frame.columns]
        if missing:
            raise ValueError(f"bars for {symbol} lack column(s) {missing}")
        data = frame.copy()
        index = pd.DatetimeIndex(data.index)
        if index.tz is not None:  # keep the New York calendar day
            index = index.tz_convert(_MARKET_TZ).tz_localize(None)
        data.index = index.normalize()
        self._bars[symbol] = data.sort_index()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
        after_handling: bool = False,
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` / ``method`` only, when given) with ``status``.

        The body defaults to Alpaca's ``{"message": ...}`` error shape. Scripted failures are
        answered before authentication, as a proxy or an overloaded server would, and the request
        has no effect, unless ``after_handling``: then the request is served as usual (an order
        is created) and only its answer is replaced. ``delay`` seconds pass before the answer:
        longer than the client's read timeout, it is a timeout (the client never sees ``status``).
        """
        response = FakeResponse(
            status, body if body is not None else {"message": f"scripted failure {status}"}, dict(headers or {})
        )
        failure = _Failure(response, path, method.upper() if method else None, float(delay), after_handling)
        with self._lock:
            self._failures.extend([failure] * count)

    def timeout_next(
        self,
        count: int = 1,
        *,
        seconds: float = 2.0,
        path: str | None = None,
        method: str | None = None,
        after_handling: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests only after ``seconds`` (then with a 504).

        Pick ``seconds`` above the client's read timeout. With ``after_handling`` the request
        takes effect first (the order exists although the client timed out).
        """
        self.fail_next(
            count,
            status=504,
            body={"message": "scripted timeout"},
            path=path,
            method=method,
            delay=seconds,
            after_handling=after_handling,
        )

    def enable_trading(self, **options: Any) -> FakeTradingAPI:
        """Serve the trading API from a fresh :class:`FakeTradingAPI` (``options`` go to it)."""
        self.trading = FakeTradingAPI(self, **options)
        return self.trading

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str = "GET") -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and r.method == method.upper()]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            self._requests.append(request)
            scripted = self._take_failure(request)
            routes = list(self._routes)
        if scripted is not None and not scripted.after_handling:
            time.sleep(scripted.delay)
            return scripted.response
        response = self._serve(request, routes)
        if scripted is not None:
            time.sleep(scripted.delay)
            return scripted.response
        return response

    def _serve(self, request: RecordedRequest, routes: list[_Route]) -> FakeResponse:
        authorized = (
            request.header("APCA-API-KEY-ID") == self.api_key
            and request.header("APCA-API-SECRET-KEY") == self.api_secret
        )
        unauthorized = FakeResponse(401, {"message": "unauthorized."})
        path_known = False
        for route in routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            path_known = True
            if route.method == request.method:
                if not (authorized or route.public):
                    return unauthorized
                return route.handler(request, match.groupdict())
        if not authorized:
            return unauthorized
        if path_known:
            return alpaca_error(405, "method not allowed")
        return alpaca_error(404, "Not Found")

    def _take_failure(self, request: RecordedRequest) -> _Failure | None:
        for i, failure in enumerate(self._failures):
            if failure.matches(request):
                del self._failures[i]
                return failure
        return None

    # ------------------------------------------------------------------ market data

    def _stock_bars(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        symbols_param = request.param("symbols")
        if not symbols_param:
            return alpaca_error(400, "missing symbols", 42210000)
        symbols = sorted({s.strip() for s in symbols_param.split(",") if s.strip()})
        timeframe = request.param("timeframe")
        if timeframe != "1Day":
            return alpaca_error(422, f"the fake serves only timeframe=1Day, not {timeframe!r}", 42210000)
        adjustment = request.param("adjustment") or "raw"
        if adjustment not in ADJUSTMENTS:
            return alpaca_error(422, f"invalid adjustment: {adjustment}", 42210000)
        feed = request.param("feed") or "sip"
        if feed not in FEEDS:
            return alpaca_error(422, f"invalid feed: {feed}", 42210000)
        sort = request.param("sort") or "asc"
        if sort not in ("asc", "desc"):
            return alpaca_error(422, f"invalid sort: {sort}", 42210000)
        try:
            limit = int(request.param("limit") or DATA_MAX_LIMIT)
            start = _parse_rfc3339(request.param("start")) if request.param("start") else None
            end = _parse_rfc3339(request.param("end")) if request.param("end") else None
        except ValueError as exc:
            return alpaca_error(422, f"invalid query parameter: {exc}", 42210000)
        if not 1 <= limit <= DATA_MAX_LIMIT:
            return alpaca_error(422, f"invalid limit: must be between 1 and {DATA_MAX_LIMIT}", 42210000)

        items = [(s, bar) for s in symbols for bar in self._symbol_bars(s, adjustment, start, end, sort)]
        offset = 0
        token = request.param("page_token")
        if token:
            decoded = _decode_token(token)
            if decoded is None or decoded[0] != _query_key(request) or not 0 < decoded[1] <= len(items):
                return alpaca_error(422, "invalid page token", 42210000)
            offset = decoded[1]
        page = items[offset : offset + min(limit, self.max_page_size)]
        following = offset + len(page)
        body: dict[str, Any] = {"bars": {}, "next_page_token": None}
        for symbol, bar in page:
            body["bars"].setdefault(symbol, []).append(bar)
        if following < len(items):
            body["next_page_token"] = _encode_token(_query_key(request), following)
        return FakeResponse(200, body)

    def _symbol_bars(
        self, symbol: str, adjustment: str, start: pd.Timestamp | None, end: pd.Timestamp | None, sort: str
    ) -> list[dict[str, Any]]:
        frame = self._bars.get(symbol)
        if frame is None or frame.empty:
            return []
        stamps = pd.DatetimeIndex(frame.index).tz_localize(_MARKET_TZ).tz_convert("UTC")
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= np.asarray(stamps >= start)
        if end is not None:
            keep &= np.asarray(stamps <= end)
        selected = frame.loc[keep]
        if sort == "desc":
            selected = selected.iloc[::-1]
        return [self._bar_json(day, row, adjustment) for day, row in selected.iterrows()]

    @staticmethod
    def _bar_json(day: pd.Timestamp, row: pd.Series, adjustment: str) -> dict[str, Any]:
        close = float(row["close"])
        o, h, low = float(row["open"]), float(row["high"]), float(row["low"])
        if adjustment in ("all", "dividend") and "adj_close" in row.index and pd.notna(row["adj_close"]):
            adjusted_close = float(row["adj_close"])
            factor = adjusted_close / close
            o, h, low, close = o * factor, h * factor, low * factor, adjusted_close
        volume = round(float(row["volume"]))
        return {
            "t": _bar_time(day),
            "o": o,
            "h": h,
            "l": low,
            "c": close,
            "v": volume,
            "n": max(1, volume // 100),
            "vw": round((o + h + low + close) / 4, 6),
        }


def _query_key(request: RecordedRequest) -> str:
    """The parameters a page token is bound to (a token from another query is refused)."""
    names = ("symbols", "timeframe", "start", "end", "adjustment", "feed", "sort")
    return "&".join(f"{n}={request.param(n) or ''}" for n in names)


def _encode_token(query_key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([query_key, offset]).encode()).decode()


def _decode_token(token: str) -> tuple[str, int] | None:
    try:
        key, offset = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(key, str) or not isinstance(offset, int):
        return None
    return key, offset


def _make_handler_class(server: FakeAlpacaServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions use it

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k: v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = server.handle(recorded)
            except Exception as exc:  # a bug in a route: answer 500 rather than hang the client
                response = alpaca_error(500, f"fake server error: {type(exc).__name__}: {exc}")
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            if payload:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a scripted timeout)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
            pass

    return _Handler


# --------------------------------------------------------------------------- trading API

ORDER_TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
OPEN_ORDER_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding"})
CLIENT_ORDER_ID_MAX = 128
_ACCOUNT_ID = "0d9b4a5c-6c1e-4d0f-9a8e-2f3b5c7d9e01"


def _num(value: float) -> str:
    """A number as Alpaca writes it: a string, no exponent, no trailing zeros ("10", "101.25")."""
    text = f"{float(value):.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _utc_iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-alpaca-asset:{symbol}"))


def _parse_qty(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        qty = float(value)  # alpaca-py sends a JSON number, other clients a string
    except (TypeError, ValueError):
        return None
    return qty if np.isfinite(qty) else None


_PERIOD = re.compile(r"^([1-9][0-9]*)([DWMA])$")
_TIMEFRAMES = ("1Min", "5Min", "15Min", "1H", "1D")
_PERIOD_DAYS = {"D": 1, "W": 7, "M": 30, "A": 365}  # a period's length when Alpaca picks the timeframe


def _zoned_date(name: str, text: str) -> date:
    """The New York date of an RFC 3339 time (Alpaca wants the zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid {name}: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"invalid {name}: {text!r} has no timezone")
    return moment.astimezone(NEW_YORK).date()


def _history_window(request: RecordedRequest, today: date) -> tuple[date, date, str]:
    """First and last day (inclusive) and timeframe of a portfolio-history query (ValueError: why not)."""
    period_text, start_text = request.param("period"), request.param("start")
    end_text, date_end_text = request.param("end"), request.param("date_end")
    if end_text and date_end_text:
        raise ValueError("only one of end and date_end can be specified")
    if sum(bool(t) for t in (period_text, start_text, end_text or date_end_text)) > 2:
        raise ValueError("only two of start, end (or date_end) and period can be specified")
    match = _PERIOD.match(period_text or "1M")
    if match is None:
        raise ValueError(f"invalid period: {period_text!r}")
    count, unit = int(match[1]), match[2]
    offset = {"D": pd.DateOffset(days=count), "W": pd.DateOffset(weeks=count)}.get(unit) or (
        pd.DateOffset(months=count) if unit == "M" else pd.DateOffset(years=count)
    )
    start = _zoned_date("start", start_text) if start_text else None
    if end_text:
        end = _zoned_date("end", end_text)
    elif date_end_text:
        try:
            end = date.fromisoformat(date_end_text)
        except ValueError:
            raise ValueError(f"invalid date_end: {date_end_text!r}") from None
    elif start is not None and period_text:
        end = (pd.Timestamp(start) + offset).date()
    else:
        end = today
    if start is None:
        start = (pd.Timestamp(end) - offset).date()
    timeframe = request.param("timeframe")
    if not timeframe:  # Alpaca's default: minutes under 7 days, 15 minutes under 30, else days
        span = (end - start).days if start_text and not period_text else count * _PERIOD_DAYS[unit]
        timeframe = "1Min" if span < 7 else "15Min" if span < 30 else "1D"
    if timeframe not in _TIMEFRAMES:
        raise ValueError(f"invalid timeframe: {timeframe!r}")
    return start, end, timeframe


def _day_stamp(day: date) -> int:
    """Alpaca's daily portfolio-history stamp: the day's start, midnight New York time, in epoch seconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp())


class FakeTradingAPI:
    """Alpaca's trading API v2, stateful, served by a :class:`FakeAlpacaServer`.

    Endpoints (JSON as Alpaca writes it: numbers as strings, timestamps ISO 8601):

    * ``GET /v2/account`` -- equity, cash, buying power (cash less open buy orders when
      ``multiplier`` is 1), ``trading_blocked`` (settable attribute), ...
    * ``GET /v2/clock`` -- the fake's "now" (:meth:`set_now`; the real time until set), in New York
      time, with ``is_open`` and the next open and close from the NYSE calendar.
    * ``GET /v2/calendar?start&end`` -- NYSE sessions from exchange_calendars (early closes
      included): ``{"date", "open": "09:30", "close": "16:00" | "13:00", "session_open": "0400",
      "session_close": "2000", "settlement_date"}`` (T+1). Without ``start``/``end``: the year of "now".
    * ``GET /v2/positions``, ``GET /v2/positions/{symbol_or_asset_id}`` -- 404
      ``{"code": 40410000, "message": "position does not exist"}`` when flat; a short position has
      a negative ``qty`` and ``side: short``.
    * ``POST /v2/orders`` -- market orders only (``qty``, not ``notional``). Validation answers 422
      (code 40010001): bad side/type/time_in_force/qty, fractional qty with a time_in_force other
      than ``day``, a ``client_order_id`` over 128 characters or already used (``"client_order_id
      must be unique"``), and -- with ``enforce_submission_windows`` -- Alpaca's documented windows:
      ``opg`` is refused from 09:28 to 19:00 New York time, ``cls`` from 15:50 to 19:00, other
      market orders from 16:00 to 19:00 (the exact wording of those messages is the fake's).
      Refusals answer 403 (code 40310000): ``trading_blocked``, a buy above the buying power at
      the mark price (``"insufficient buying power"``), a sell of more than the long position
      available when ``shorting_enabled`` is False. New orders are ``accepted`` while the market
      is closed, ``new`` while it is open.
    * ``GET /v2/orders`` (``status`` open|closed|all, ``limit``, ``direction``, ``symbols``,
      ``after``, ``until``), ``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id
      ?client_order_id=`` (404 ``{"code": 40410000, "message": "order not found"}``),
      ``DELETE /v2/orders/{id}`` (204; 422 once the order is final).
    * ``GET /v2/account/portfolio/history`` -- the daily equity the fake has recorded (see below),
      in Alpaca's shape: ``{"timestamp": [epoch seconds], "equity": [...], "profit_loss": [...],
      "profit_loss_pct": [...], "base_value", "base_value_asof" (only with a prior close),
      "timeframe": "1D", "cashflow": {}}``. Each day is stamped at its start, midnight New York
      time (04:00 or 05:00 UTC with daylight saving). Only ``timeframe=1D`` is served (422 for
      intraday ones, also when omitted and the window is under 30 days, as Alpaca then picks
      minutes). The window: ``start`` (RFC 3339 with a zone, read as its New York date), ``end``
      (RFC 3339) or ``date_end`` (``YYYY-MM-DD``), ``period`` (``<n>D|W|M|A``, default ``1M``); at
      most two of the three (422 otherwise). Without an end: ``start + period`` when both are
      given, else the New York date of "now"; without a start: the end less the period; both ends
      inclusive. ``base_value`` is the last positive close before the window (named by
      ``base_value_asof``), else the window's first positive equity, else 0;
      ``profit_loss = equity - base_value``, ``profit_loss_pct = equity / base_value - 1`` (null
      while ``base_value`` is 0). A day
      recorded as ``None`` answers null (alpaca-py's ``PortfolioHistory`` then refuses the
      answer), one recorded as 0 answers 0, as for days before an account was funded. Unlike
      Alpaca, no live point is appended for the session in progress.

    The market moves only when a test says so: :meth:`fill` (all or one open order, at a price:
    position, cash and the mark move), :meth:`partial_fill`, :meth:`expire`, :meth:`set_price`.
    Mark prices default to the last fill, then to the last close of the server's bars. The
    portfolio history holds what a test records: :meth:`record_close` (the account's equity now, as
    a day's close) and :meth:`set_equity_history` (any days and values, replacing the history).
    """

    def __init__(
        self,
        server: FakeAlpacaServer,
        *,
        cash: float = 100_000.0,
        now: datetime | None = None,
        multiplier: int = 1,
        shorting_enabled: bool = False,
        enforce_submission_windows: bool = True,
    ) -> None:
        self.server = server
        self.cash = float(cash)
        self.last_equity = float(cash)
        self.multiplier = multiplier
        self.shorting_enabled = shorting_enabled
        self.enforce_submission_windows = enforce_submission_windows
        self.trading_blocked = False
        self.created_at = datetime(2024, 1, 2, 14, 0, tzinfo=UTC)
        self._now = now
        self._lock = threading.RLock()
        self._orders: dict[str, dict[str, Any]] = {}  # by id, in submission order
        self._positions: dict[str, dict[str, float]] = {}  # symbol -> {"qty", "avg_entry_price"}
        self._marks: dict[str, float] = {}
        self._equity_history: dict[date, float | None] = {}  # New York date -> equity at its close
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/v2/account", self._get_account),
            ("GET", "/v2/clock", self._get_clock),
            ("GET", "/v2/calendar", self._get_calendar),
            ("GET", "/v2/positions", self._list_positions),
            ("GET", "/v2/positions/{symbol}", self._get_position),
            ("POST", "/v2/orders", self._post_order),
            ("GET", "/v2/orders", self._list_orders),
            ("GET", "/v2/orders:by_client_order_id", self._get_order_by_client_id),
            ("GET", "/v2/orders/{order_id}", self._get_order),
            ("DELETE", "/v2/orders/{order_id}", self._delete_order),
            ("GET", "/v2/account/portfolio/history", self._get_portfolio_history),
        ]
        for method, template, handler in routes:
            server.route(method, template, handler)

    # ------------------------------------------------------------------ test controls

    def now(self) -> datetime:
        return self._now if self._now is not None else datetime.now(UTC)

    def set_now(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("set_now needs a timezone-aware datetime")
        self._now = moment

    def set_price(self, symbol: str, price: float) -> None:
        with self._lock:
            self._marks[symbol] = float(price)

    def mark(self, symbol: str) -> float | None:
        with self._lock:
            if symbol in self._marks:
                return self._marks[symbol]
        frame = self.server._bars.get(symbol)
        if frame is not None and not frame.empty:
            return float(frame["close"].iloc[-1])
        return None

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order as the API shows it, oldest first."""
        with self._lock:
            return [self._order_json(o) for o in self._orders.values()]

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._by_client_id(client_order_id)
            return self._order_json(found) if found else None

    def position_qty(self, symbol: str) -> float:
        with self._lock:
            return self._positions.get(symbol, {}).get("qty", 0.0)

    def fill(self, price: float, *, client_order_id: str | None = None) -> int:
        """Fill the rest of every open order (or of one) at ``price``; returns how many filled."""
        with self._lock:
            count = 0
            for order in self._open_orders(client_order_id):
                self._execute(order, order["qty"] - order["filled_qty"], float(price))
                order["status"] = "filled"
                order["filled_at"] = order["updated_at"] = self.now()
                count += 1
            return count

    def partial_fill(self, client_order_id: str, qty: float, price: float) -> None:
        with self._lock:
            (order,) = self._open_orders(client_order_id)
            remaining = order["qty"] - order["filled_qty"]
            if not 0 < qty < remaining:
                raise ValueError(f"a partial fill needs 0 < qty < {remaining}")
            self._execute(order, float(qty), float(price))
            order["status"] = "partially_filled"
            order["updated_at"] = self.now()

    def set_equity_history(self, history: Mapping[date, float | None]) -> None:
        """Replace the portfolio history: each New York date's closing equity (None answers null)."""
        with self._lock:
            self._equity_history = {day: None if value is None else float(value) for day, value in history.items()}

    def record_close(self, day: date | None = None) -> float:
        """Record the account's equity now (cash and positions at their marks) as ``day``'s close.

        ``day`` defaults to the New York date of "now"; returns the equity recorded.
        """
        with self._lock:
            long_value, short_value = self._market_values()
            equity = self.cash + long_value + short_value
            self._equity_history[day or self.now().astimezone(NEW_YORK).date()] = equity
            return equity

    @property
    def equity_history(self) -> dict[date, float | None]:
        """The recorded closes, oldest first (a copy)."""
        with self._lock:
            return dict(sorted(self._equity_history.items()))

    def expire(self, *, client_order_id: str | None = None) -> int:
        """Expire every open order (or one), as an unfilled opg order after the open."""
        with self._lock:
            count = 0
            for order in self._open_orders(client_order_id):
                order["status"] = "expired"
                order["expired_at"] = order["updated_at"] = self.now()
                count += 1
            return count

    # ------------------------------------------------------------------ state

    def _by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        return next((o for o in self._orders.values() if o["client_order_id"] == client_order_id), None)

    def _open_orders(self, client_order_id: str | None) -> list[dict[str, Any]]:
        chosen = [o for o in self._orders.values() if o["status"] in OPEN_ORDER_STATUSES]
        if client_order_id is not None:
            chosen = [o for o in chosen if o["client_order_id"] == client_order_id]
            if not chosen:
                raise KeyError(f"no open order with client_order_id {client_order_id!r}")
        return chosen

    def _execute(self, order: dict[str, Any], qty: float, price: float) -> None:
        signed = qty if order["side"] == "buy" else -qty
        symbol = order["symbol"]
        held = self._positions.get(symbol, {"qty": 0.0, "avg_entry_price": 0.0})
        before, after = held["qty"], held["qty"] + signed
        if abs(after) < 1e-12:
            self._positions.pop(symbol, None)
        else:
            if before == 0 or (before > 0) != (after > 0):
                average = price  # opened, or flipped sides
            elif abs(after) > abs(before):
                average = (before * held["avg_entry_price"] + signed * price) / after
            else:
                average = held["avg_entry_price"]  # reduced: the entry price stays
            self._positions[symbol] = {"qty": after, "avg_entry_price": average}
        self.cash -= signed * price
        done = order["filled_qty"]
        order["filled_avg_price"] = ((order["filled_avg_price"] or 0.0) * done + price * qty) / (done + qty)
        order["filled_qty"] = done + qty
        self._marks[symbol] = price

    def _market_values(self) -> tuple[float, float]:
        long_value = short_value = 0.0
        for symbol, held in self._positions.items():
            value = held["qty"] * (self.mark(symbol) or held["avg_entry_price"])
            if value > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def _open_buy_notional(self) -> float:
        total = 0.0
        for order in self._orders.values():
            if order["side"] == "buy" and order["status"] in OPEN_ORDER_STATUSES:
                total += (order["qty"] - order["filled_qty"]) * (self.mark(order["symbol"]) or 0.0)
        return total

    def _buying_power(self) -> float:
        long_value, short_value = self._market_values()
        if self.multiplier <= 1:
            power = self.cash
        else:
            power = (self.cash + long_value + short_value) * self.multiplier - long_value + short_value
        return max(0.0, power - self._open_buy_notional())

    def _sessions(self, start: date, end: date) -> list[Any]:
        from finrl.calendar import nyse_sessions

        return nyse_sessions(start, end)

    def _market_open(self, moment: datetime) -> bool:
        day = moment.astimezone(NEW_YORK).date()
        return any(s.open <= moment < s.close for s in self._sessions(day, day))

    # ------------------------------------------------------------------ JSON

    def _order_json(self, order: dict[str, Any]) -> dict[str, Any]:
        side = order["side"]
        return {
            "id": order["id"],
            "client_order_id": order["client_order_id"],
            "created_at": _utc_iso(order["created_at"]),
            "updated_at": _utc_iso(order["updated_at"]),
            "submitted_at": _utc_iso(order["created_at"]),
            "filled_at": _utc_iso(order["filled_at"]),
            "expired_at": _utc_iso(order["expired_at"]),
            "canceled_at": _utc_iso(order["canceled_at"]),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": _asset_id(order["symbol"]),
            "symbol": order["symbol"],
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(order["qty"]),
            "filled_qty": _num(order["filled_qty"]),
            "filled_avg_price": None if order["filled_avg_price"] is None else _num(order["filled_avg_price"]),
            "order_class": "",
            "order_type": "market",
            "type": "market",
            "side": side,
            "position_intent": order["position_intent"],
            "time_in_force": order["time_in_force"],
            "limit_price": None,
            "stop_price": None,
            "status": order["status"],
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }

    def _position_json(self, symbol: str, held: dict[str, float]) -> dict[str, Any]:
        qty, entry = held["qty"], held["avg_entry_price"]
        price = self.mark(symbol) or entry
        market_value, cost_basis = qty * price, qty * entry
        unrealized = market_value - cost_basis
        return {
            "asset_id": _asset_id(symbol),
            "symbol": symbol,
            "exchange": "ARCA",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _num(qty),
            "qty_available": _num(qty),
            "avg_entry_price": _num(entry),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(market_value),
            "cost_basis": _num(cost_basis),
            "unrealized_pl": _num(unrealized),
            "unrealized_plpc": _num(unrealized / abs(cost_basis) if cost_basis else 0.0),
            "unrealized_intraday_pl": _num(unrealized),
            "unrealized_intraday_plpc": _num(unrealized / abs(cost_basis) if cost_basis else 0.0),
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }

    # ------------------------------------------------------------------ routes

    def _get_account(self, _request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        with self._lock:
            long_value, short_value = self._market_values()
            equity = self.cash + long_value + short_value
            power = self._buying_power()
            body = {
                "id": _ACCOUNT_ID,
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": _num(power),
                "regt_buying_power": _num(power),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": _num(max(0.0, self.cash)),
                "options_buying_power": _num(max(0.0, self.cash)),
                "cash": _num(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": _num(equity),
                "pattern_day_trader": False,
                "trading_blocked": self.trading_blocked,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": _utc_iso(self.created_at),
                "trade_suspended_by_user": False,
                "multiplier": str(self.multiplier),
                "shorting_enabled": self.shorting_enabled,
                "equity": _num(equity),
                "last_equity": _num(self.last_equity),
                "long_market_value": _num(long_value),
                "short_market_value": _num(short_value),
                "position_market_value": _num(long_value - short_value),
                "initial_margin": _num(long_value - short_value),
                "maintenance_margin": _num(0.25 * (long_value - short_value)),
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
                "options_approved_level": 0,
                "options_trading_level": 0,
            }
        return FakeResponse(200, body)

    def _get_portfolio_history(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        def bad(message: str) -> FakeResponse:
            return alpaca_error(422, message, 42210000)

        try:
            window = _history_window(request, self.now().astimezone(NEW_YORK).date())
        except ValueError as exc:
            return bad(str(exc))
        first, last, timeframe = window
        if timeframe != "1D":
            return bad(f"the fake serves only timeframe=1D, not {timeframe!r}")
        with self._lock:
            recorded = sorted(self._equity_history.items())
        days = [(day, equity) for day, equity in recorded if first <= day <= last]
        prior = [(day, equity) for day, equity in recorded if day < first and equity is not None and equity > 0]
        body: dict[str, Any] = {}
        if prior:
            base = prior[-1][1]
            body["base_value_asof"] = prior[-1][0].isoformat()
        else:
            base = next((equity for _, equity in days if equity is not None and equity > 0), 0.0)
        body.update(
            timestamp=[_day_stamp(day) for day, _ in days],
            equity=[equity for _, equity in days],
            profit_loss=[None if equity is None else equity - base for _, equity in days],
            profit_loss_pct=[None if equity is None or base <= 0 else equity / base - 1 for _, equity in days],
            base_value=base,
            timeframe="1D",
            cashflow={},
        )
        return FakeResponse(200, body)

    def _get_clock(self, _request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        moment = self.now()
        day = moment.astimezone(NEW_YORK).date()
        sessions = self._sessions(day - timedelta(days=1), day + timedelta(days=14))
        next_open = next(s.open for s in sessions if s.open > moment)
        next_close = next(s.close for s in sessions if s.close > moment)
        body = {
            "timestamp": moment.astimezone(NEW_YORK).isoformat(timespec="microseconds"),
            "is_open": any(s.open <= moment < s.close for s in sessions),
            "next_open": next_open.astimezone(NEW_YORK).isoformat(),
            "next_close": next_close.astimezone(NEW_YORK).isoformat(),
        }
        return FakeResponse(200, body)

    def _get_calendar(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        year = self.now().astimezone(NEW_YORK).year
        try:
            start = date.fromisoformat(request.param("start") or f"{year}-01-01")
            end = date.fromisoformat(request.param("end") or f"{year}-12-31")
        except ValueError as exc:
            return alpaca_error(400, f"invalid date: {exc}", 40010000)
        if start > end:
            return FakeResponse(200, [])
        sessions = self._sessions(start, end + timedelta(days=10))
        body = []
        for i, session in enumerate(sessions):
            if session.day > end:
                break
            settlement = sessions[i + 1].day if i + 1 < len(sessions) else session.day + timedelta(days=1)
            body.append(
                {
                    "date": session.day.isoformat(),
                    "open": session.open.astimezone(NEW_YORK).strftime("%H:%M"),
                    "close": session.close.astimezone(NEW_YORK).strftime("%H:%M"),
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": settlement.isoformat(),
                }
            )
        return FakeResponse(200, body)

    def _list_positions(self, _request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        with self._lock:
            return FakeResponse(200, [self._position_json(s, held) for s, held in sorted(self._positions.items())])

    def _get_position(self, _request: RecordedRequest, params: dict[str, str]) -> FakeResponse:
        key = params["symbol"]
        with self._lock:
            for symbol, held in self._positions.items():
                if key in (symbol, _asset_id(symbol)):
                    return FakeResponse(200, self._position_json(symbol, held))
        return alpaca_error(404, "position does not exist", 40410000)

    def _post_order(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        try:
            data = request.json()
        except ValueError:
            return alpaca_error(400, "request body format is invalid", 40010000)
        if not isinstance(data, dict):
            return alpaca_error(400, "request body format is invalid", 40010000)
        invalid = self._validate_order(data)
        if invalid is not None:
            return invalid
        with self._lock:
            symbol, side, qty = data["symbol"], data["side"], _parse_qty(data["qty"])
            assert qty is not None
            cid = data.get("client_order_id") or str(uuid.uuid4())
            if self._by_client_id(cid) is not None:
                return alpaca_error(422, "client_order_id must be unique", 40010001)
            refused = self._check_funds(symbol, side, qty)
            if refused is not None:
                return refused
            moment = self.now()
            held = self._positions.get(symbol, {}).get("qty", 0.0)
            intent = ("buy_to_close" if held < 0 else "buy_to_open") if side == "buy" else None
            if side == "sell":
                intent = "sell_to_close" if held > 0 else "sell_to_open"
            order = {
                "id": str(uuid.uuid4()),
                "client_order_id": cid,
                "symbol": symbol,
                "side": side,
                "qty": qty,
                "time_in_force": data["time_in_force"],
                "position_intent": intent,
                "status": "new" if self._market_open(moment) else "accepted",
                "filled_qty": 0.0,
                "filled_avg_price": None,
                "created_at": moment,
                "updated_at": moment,
                "filled_at": None,
                "expired_at": None,
                "canceled_at": None,
            }
            self._orders[order["id"]] = order
            return FakeResponse(200, self._order_json(order))

    def _validate_order(self, data: dict[str, Any]) -> FakeResponse | None:
        def bad(message: str) -> FakeResponse:
            return alpaca_error(422, message, 40010001)

        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not re.fullmatch(r"[A-Z][A-Z.]{0,11}", symbol):
            return bad(f"invalid symbol: {symbol!r}")
        if data.get("side") not in ("buy", "sell"):
            return bad("invalid side")
        if data.get("type", "market") != "market":
            return bad(f"the fake accepts only market orders, not type {data.get('type')!r}")
        tif = data.get("time_in_force")
        if tif not in ORDER_TIME_IN_FORCE:
            return bad(f"invalid time_in_force: {tif!r}")
        if data.get("notional") is not None:
            return bad("the fake accepts qty, not notional")
        qty = _parse_qty(data.get("qty"))
        if qty is None or qty <= 0:
            return bad("qty must be > 0")
        if qty != int(qty) and tif != "day":
            return bad("fractional orders must be DAY orders")
        if data.get("extended_hours"):
            return bad("extended hours order must be DAY limit orders")
        cid = data.get("client_order_id")
        if cid is not None and (not isinstance(cid, str) or len(cid) > CLIENT_ORDER_ID_MAX):
            return bad(f"client_order_id must be no more than {CLIENT_ORDER_ID_MAX} characters")
        if self.enforce_submission_windows:
            clock = self.now().astimezone(NEW_YORK).time()
            minutes = clock.hour * 60 + clock.minute
            evening = 19 * 60
            if tif == "opg" and 9 * 60 + 28 <= minutes < evening:
                return bad("opg orders must be submitted after 7:00pm and before 9:28am ET")
            if tif == "cls" and 15 * 60 + 50 <= minutes < evening:
                return bad("cls orders must be submitted after 7:00pm and before 3:50pm ET")
            if tif not in ("opg", "cls") and 16 * 60 <= minutes < evening:
                return bad("orders not eligible for extended hours are rejected between 4:00pm and 7:00pm ET")
        return None

    def _check_funds(self, symbol: str, side: str, qty: float) -> FakeResponse | None:
        if self.trading_blocked:
            return alpaca_error(403, "account is not authorized to trade", 40310000)
        if side == "buy":
            price = self.mark(symbol)
            if price is not None and qty * price > self._buying_power() + 1e-9:
                return alpaca_error(403, "insufficient buying power", 40310000)
            return None
        if self.shorting_enabled:
            return None
        held = self._positions.get(symbol, {}).get("qty", 0.0)
        pending = sum(
            o["qty"] - o["filled_qty"]
            for o in self._orders.values()
            if o["symbol"] == symbol and o["side"] == "sell" and o["status"] in OPEN_ORDER_STATUSES
        )
        available = max(0.0, held - pending)
        if qty > available + 1e-12:
            return alpaca_error(
                403, f"insufficient qty available for order (requested: {_num(qty)}, available: {_num(available)})",
                40310000,
            )  # fmt: skip
        return None

    def _list_orders(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        status = request.param("status") or "open"
        if status not in ("open", "closed", "all"):
            return alpaca_error(422, f"invalid status: {status}", 40010001)
        direction = request.param("direction") or "desc"
        if direction not in ("asc", "desc"):
            return alpaca_error(422, f"invalid direction: {direction}", 40010001)
        try:
            limit = int(request.param("limit") or 50)
            after = _parse_rfc3339(request.param("after")) if request.param("after") else None
            until = _parse_rfc3339(request.param("until")) if request.param("until") else None
        except ValueError as exc:
            return alpaca_error(422, f"invalid query parameter: {exc}", 40010001)
        if not 1 <= limit <= 500:
            return alpaca_error(422, "limit must be between 1 and 500", 40010001)
        symbols = {s for s in (request.param("symbols") or "").split(",") if s}
        with self._lock:
            chosen = []
            for order in self._orders.values():
                is_open = order["status"] in OPEN_ORDER_STATUSES
                if (status == "open" and not is_open) or (status == "closed" and is_open):
                    continue
                if symbols and order["symbol"] not in symbols:
                    continue
                if after is not None and order["created_at"] <= after:
                    continue
                if until is not None and order["created_at"] >= until:
                    continue
                chosen.append(order)
            if direction == "desc":
                chosen.reverse()
            return FakeResponse(200, [self._order_json(o) for o in chosen[:limit]])

    def _get_order_by_client_id(self, request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        cid = request.param("client_order_id")
        if not cid:
            return alpaca_error(422, "client_order_id is missing", 40010001)
        with self._lock:
            order = self._by_client_id(cid)
            if order is None:
                return alpaca_error(404, "order not found", 40410000)
            return FakeResponse(200, self._order_json(order))

    def _find(self, order_id: str) -> tuple[dict[str, Any] | None, FakeResponse | None]:
        try:
            uuid.UUID(order_id)
        except ValueError:
            return None, alpaca_error(422, "order_id is missing", 40010001)
        order = self._orders.get(order_id)
        if order is None:
            return None, alpaca_error(404, "order not found", 40410000)
        return order, None

    def _get_order(self, _request: RecordedRequest, params: dict[str, str]) -> FakeResponse:
        with self._lock:
            order, error = self._find(params["order_id"])
            return error if order is None else FakeResponse(200, self._order_json(order))

    def _delete_order(self, _request: RecordedRequest, params: dict[str, str]) -> FakeResponse:
        with self._lock:
            order, error = self._find(params["order_id"])
            if order is None:
                return error  # type: ignore[return-value]
            if order["status"] not in OPEN_ORDER_STATUSES:
                return alpaca_error(422, f'order is already in "{order["status"]}" state', 42210000)
            order["status"] = "canceled"
            order["canceled_at"] = order["updated_at"] = self.now()
            return FakeResponse(204, None)


# --------------------------------------------------------------------------- as a process


def _parse_now(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--now needs a timezone (e.g. {text}Z): {text!r}")
    return moment


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str = "fake-key-id",
    api_secret: str = "fake-secret-key",
    now: datetime | None = None,
    cash: float = 100_000.0,
    stop: threading.Event | None = None,
) -> None:
    """Serve the fake with trading enabled until ``stop`` is set (SIGTERM/SIGINT from :func:`main`)."""
    stop = stop or threading.Event()
    server = FakeAlpacaServer(api_key=api_key, api_secret=api_secret, host=host, port=port)
    trading = server.enable_trading(cash=cash, now=now)

    def health(_request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        return FakeResponse(200, {"status": "ok", "now": _utc_iso(trading.now())})

    def orders(_request: RecordedRequest, _params: dict[str, str]) -> FakeResponse:
        posts = len(server.requests_to("/v2/orders", "POST"))
        return FakeResponse(200, {"orders": trading.orders, "order_posts": posts})

    server.route("GET", "/__fake/health", health, public=True)
    server.route("GET", "/__fake/orders", orders, public=True)
    with server:
        print(f"fake alpaca listening on {host}:{server.base_url.rsplit(':', 1)[1]}", flush=True)
        while not stop.wait(0.5):  # short waits: the signal handler runs promptly
            pass
    print("fake alpaca stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m unit_tests.fakes.alpaca_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default="fake-key-id")
    parser.add_argument("--api-secret", default="fake-secret-key")
    parser.add_argument(
        "--now", type=_parse_now, help="the trading clock, fixed (ISO 8601 with a zone); else real time"
    )
    parser.add_argument("--cash", type=float, default=100_000.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(
        host=args.host, port=args.port, api_key=args.api_key, api_secret=args.api_secret, now=args.now,
        cash=args.cash, stop=stop,
    )  # fmt: skip


if __name__ == "__main__":
    main()
