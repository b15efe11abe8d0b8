"""One timeout and retry policy for every HTTP client the project drives (Alpaca trading and data).

Why one place: the trader must neither hang on a stalled API nor give up on one transient
failure, and it must behave the same whether the stall is on the trading or the market-data
endpoint. ``requests`` (under alpaca-py) has no default timeout, and alpaca-py's own retries cover
only 429 and 504 with fixed 3 s sleeps, so both clients get :class:`TimeoutAdapter` on their
session, alpaca-py's retries turned off, and these retries instead:

* timeouts, connection errors, 408, 429 and 5xx are transient: retried up to
  :attr:`RetryPolicy.attempts` tries in all, waiting ``backoff`` seconds, doubling, up to
  ``max_backoff`` (a 429's ``Retry-After`` is honoured, capped at :data:`MAX_RETRY_AFTER`);
* everything else (401, 403, 422, ...) is final at once: asking again cannot help.

Callers map a :class:`TransientError` and the final failure onto their own error types.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import requests
from requests.adapters import HTTPAdapter

from finrl.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = (5.0, 15.0)
"""(connect, read) seconds per HTTP request: Alpaca answers in well under a second when healthy."""
DEFAULT_ATTEMPTS = 4
"""Tries per call in all (so three retries): with the backoff below, about 4 s of waiting at most."""
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
"""A server's ``Retry-After`` is honoured up to this many seconds, so one answer cannot park a cycle."""

Timeout: TypeAlias = float | tuple[float, float]


@dataclass(frozen=True)
class RetryPolicy:
    """How long one request may take and how often a transiently failing call is tried.

    ``attempts`` counts every try (so ``attempts - 1`` retries); waits grow from ``backoff``
    seconds, doubling, up to ``max_backoff``.
    """

    timeout: Timeout = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    @classmethod
    def from_settings(cls, timeout: float | None, retries: int | None) -> RetryPolicy:
        """The shared policy with a read timeout of ``timeout`` s and ``retries`` retries (None: default)."""
        policy = cls()
        if timeout is not None:
            connect = policy.timeout[0] if isinstance(policy.timeout, tuple) else policy.timeout
            policy = cls(timeout=(min(connect, timeout), timeout))
        if retries is not None:
            policy = cls(timeout=policy.timeout, attempts=retries + 1)
        return policy

    @property
    def read_timeout(self) -> float:
        """The read part of :attr:`timeout` (for clients that take a single number)."""
        return self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based), given the server's wish."""
        wait: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return wait


class TransientError(Exception):
    """A failure worth retrying: its text, and how long the server asked us to wait."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class RetriesExhaustedError(Exception):
    """Every try failed transiently; ``detail`` is the last failure (e.g. ``HTTP 500: ...``)."""

    def __init__(self, detail: str, attempts: int) -> None:
        super().__init__(f"failed after {attempts} attempts: {detail}")
        self.detail = detail
        self.attempts = attempts

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # a pool worker's error reaches its parent whole
        return type(self), (self.detail, self.attempts)


class TimeoutAdapter(HTTPAdapter):
    """requests' adapter with a default timeout: requests has none, and alpaca-py passes none."""

    def __init__(self, timeout: Timeout) -> None:
        self.timeout = timeout
        super().__init__()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def configure_alpaca_client(client: Any, timeout: Timeout) -> bool:
    """Give an alpaca-py REST client a request timeout and turn off its own retries.

    Returns False when alpaca-py's session is not where expected (a changed alpaca-py): the
    caller must then refuse to run rather than run without timeouts.
    """
    session = getattr(client, "_session", None)
    if not isinstance(session, requests.Session):
        return False
    adapter = TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # alpaca-py would retry 429/504 itself with 3 s sleeps; call_with_retries covers every transient failure
    if hasattr(client, "_retry"):
        client._retry = 0
    if hasattr(client, "_retry_codes"):
        client._retry_codes = []
    return True


def is_transient_status(status: int | None) -> bool:
    """True for an HTTP status worth asking again about (408, 429 and any 5xx)."""
    return status in RETRY_STATUSES or (status or 0) >= 500


def retry_after(exc: Any) -> float | None:
    """The ``Retry-After`` seconds of the response an exception carries, if any."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def transient_from_requests(exc: requests.Timeout | requests.ConnectionError) -> TransientError:
    """The :class:`TransientError` for one of requests' timeouts or connection errors."""
    if isinstance(exc, requests.Timeout):  # ConnectTimeout is both: a timeout first
        return TransientError(f"timed out ({type(exc).__name__})")
    return TransientError(f"connection failed: {short(exc)}")


def pause(
    policy: RetryPolicy,
    attempt: int,
    exc: TransientError,
    *,
    event: str,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    scrub: Callable[[str], str] = str,
) -> None:
    """After failed try ``attempt``: log one warning and wait, unless it was the last try."""
    if attempt >= policy.attempts:
        return
    delay = policy.delay(attempt, exc.retry_after)
    log.warning(event, call=what, attempt=attempt, error=scrub(exc.detail), wait_s=delay)
    sleep(delay)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    event: str,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    scrub: Callable[[str], str] = str,
) -> T:
    """``fn()`` until it returns or raises anything but :class:`TransientError`.

    ``fn`` maps its client's failures: transient ones to :class:`TransientError`, final ones to
    the caller's own errors (which pass straight through). After the last transient failure,
    :class:`RetriesExhaustedError` carries its text.
    """
    failure = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except TransientError as exc:
            failure = exc.detail
            pause(policy, attempt, exc, event=event, what=what, sleep=sleep, scrub=scrub)
    raise RetriesExhaustedError(scrub(failure), policy.attempts)


def api_message(exc: Any) -> str:
    """Alpaca's ``message`` from an alpaca-py ``APIError`` body, or the body's text (short, one line)."""
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return short(text) or "no message"
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return short(text)


def short(value: Any, limit: int = 300) -> str:
    """``value`` as one line of at most ``limit`` characters (error bodies can be whole pages)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
