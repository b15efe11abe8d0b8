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
(:meth:`FakeAlpacaServer.fail_next`). Further endpoints (the trading API's account, clock,
calendar, positions, orders) plug in with :meth:`FakeAlpacaServer.route`, whose path templates may
hold ``{name}`` segments (e.g. ``/v2/orders/{order_id}``).

Usage::

    with FakeAlpacaServer(bars={"SPY": frame}) as server:
        client = StockHistoricalDataClient(server.api_key, server.api_secret, url_override=server.base_url)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

__all__ = ["FakeAlpacaServer", "FakeResponse", "Handler", "RecordedRequest", "alpaca_error"]

DATA_MAX_LIMIT = 10_000  # Alpaca's largest page
ADJUSTMENTS = ("raw", "split", "dividend", "all")
FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
_MARKET_TZ = "America/New_York"


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
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


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
    below the client's ``limit`` so that tests can exercise pagination with a few bars.
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-key-id",
        api_secret: str = "fake-secret-key",
        bars: Mapping[str, pd.DataFrame] | None = None,
        max_page_size: int = DATA_MAX_LIMIT,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        self.api_key = api_key
        self.api_secret = api_secret
        self.max_page_size = max_page_size
        self._bars: dict[str, pd.DataFrame] = {}
        for symbol, frame in (bars or {}).items():
            self.set_bars(symbol, frame)
        self._routes: list[_Route] = []
        self._requests: list[RecordedRequest] = []
        self._failures: deque[tuple[FakeResponse, str | None]] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.route("GET", "/v2/stocks/bars", self._stock_bars)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAlpacaServer:
        if self._httpd is not None:
            raise RuntimeError("the fake Alpaca server is already running")
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-alpaca", daemon=True)
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

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Serve ``method template`` with ``handler``; a later route for the same key replaces it."""
        method = method.upper()
        with self._lock:
            self._routes = [r for r in self._routes if (r.method, r.template) != (method, template)]
            self._routes.append(_Route(method, template, _compile_template(template), handler))

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
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` only, when given) with ``status``.

        The body defaults to Alpaca's ``{"message": ...}`` error shape. Scripted failures are
        answered before authentication, as a proxy or an overloaded server would.
        """
        response = FakeResponse(
            status, body if body is not None else {"message": f"scripted failure {status}"}, dict(headers or {})
        )
        with self._lock:
            self._failures.extend([(response, path)] * count)

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
            scripted = self._take_failure(request.path)
            routes = list(self._routes)
        if scripted is not None:
            return scripted
        if (
            request.header("APCA-API-KEY-ID") != self.api_key
            or request.header("APCA-API-SECRET-KEY") != self.api_secret
        ):
            return FakeResponse(401, {"message": "unauthorized."})
        path_known = False
        for route in routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            path_known = True
            if route.method == request.method:
                return route.handler(request, match.groupdict())
        if path_known:
            return alpaca_error(405, "method not allowed")
        return alpaca_error(404, "Not Found")

    def _take_failure(self, path: str) -> FakeResponse | None:
        for i, (response, only_path) in enumerate(self._failures):
            if only_path is None or only_path == path:
                del self._failures[i]
                return response
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
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
            pass

    return _Handler
