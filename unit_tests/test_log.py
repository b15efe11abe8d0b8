"""Structured logging: one JSON object per line, stdlib loggers routed through it, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import structlog

from finrl import log as flog
from finrl.log import MASK, configure_logging, get_logger, register_secrets

pytestmark = pytest.mark.unit

SECRET = "PKTESTKEY123456"
KEYS = {"timestamp", "level", "event", "logger"}


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    flog._secrets.clear()
    yield
    flog._secrets.clear()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # fails if any line is not JSON


def json_logging(level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, json=True, stream=stream)
    return stream


def test_json_lines_have_the_four_keys_and_lower_case_levels() -> None:
    stream = json_logging()
    log = get_logger("finrl.test.component")
    log.info("started", step=3)
    log.warning("slow")
    log.error("failed")
    records = json_lines(stream)
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    assert [r["event"] for r in records] == ["started", "slow", "failed"]
    for record in records:
        assert record.keys() >= KEYS
        assert record["logger"] == "finrl.test.component"
        assert isinstance(record["timestamp"], str) and record["timestamp"]
    assert records[0]["step"] == 3


def test_dates_render_as_iso_8601_not_their_repr() -> None:
    stream = json_logging()
    get_logger("finrl.test").info("fetch", end=date(2024, 12, 24), at=datetime(2024, 12, 26, 17, 0, tzinfo=UTC))
    (record,) = json_lines(stream)
    assert (record["end"], record["at"]) == ("2024-12-24", "2024-12-26T17:00:00+00:00")


def test_stdlib_logger_goes_through_json_renderer() -> None:
    stream = json_logging("debug")
    logging.getLogger("some.lib").error("connection %s refused", "db")
    logging.getLogger("some.lib").warning("retrying")
    records = json_lines(stream)
    assert len(records) == 2
    assert records[0]["event"] == "connection db refused"
    assert records[0]["level"] == "error"
    assert records[0]["logger"] == "some.lib"
    assert records[1]["level"] == "warning"
    assert all(r.keys() >= KEYS for r in records)


def test_dependencies_show_only_their_errors_below_debug() -> None:
    """yfinance logs each failed download (DNS, HTTP) and returns nothing: the project says it in one line."""
    stream = json_logging("INFO")
    logging.getLogger("some.lib").warning("retrying")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=2))")
    logging.getLogger("yfinance").error("1 Failed download: DNSError")
    logging.getLogger("some.lib").error("connection refused")
    get_logger("finrl.meta.data").info("data_fetch")
    get_logger("finrl.meta.data").warning("data_warning")
    assert [r["event"] for r in json_lines(stream)] == ["connection refused", "data_fetch", "data_warning"]


def test_debug_shows_the_dependencies_too() -> None:
    stream = json_logging("DEBUG")
    logging.getLogger("yfinance").error("1 Failed download: DNSError")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
    assert [r["event"] for r in json_lines(stream)] == ["1 Failed download: DNSError", "Starting new HTTPS connection"]


def test_python_warnings_of_dependencies_are_hidden_ours_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown.append(str(message)))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        json_logging("INFO")
        warnings.warn_explicit("inplace is deprecated", FutureWarning, "/site-packages/yfinance/multi.py", 220)
        warnings.warn_explicit("our own", UserWarning, flog.__file__, 1)
        json_logging("DEBUG")
        warnings.warn_explicit("inplace is deprecated", FutureWarning, "/site-packages/yfinance/multi.py", 220)
    assert shown == ["our own", "inplace is deprecated"]


# ---------------------------------------------------------------- secret masking


def assert_masked(output: str) -> None:
    assert SECRET not in output
    assert MASK in output


def test_secret_masked_in_event_and_kwargs() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    get_logger("finrl.test").info(f"using key {SECRET}", key=SECRET, header=f"Bearer {SECRET}")
    assert_masked(stream.getvalue())
    (record,) = json_lines(stream)
    assert record["event"] == f"using key {MASK}"
    assert record["key"] == MASK
    assert record["header"] == f"Bearer {MASK}"


def test_secret_masked_in_nested_dicts_and_lists() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    get_logger("finrl.test").info("config", config={"alpaca": {"key": SECRET, "keys": [SECRET, ("x", SECRET)]}})
    assert_masked(stream.getvalue())
    (record,) = json_lines(stream)
    assert record["config"]["alpaca"]["key"] == MASK


class Holder:
    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Holder(value={self.value!r})"

    __str__ = __repr__


def test_secret_masked_in_object_values() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    get_logger("finrl.test").info("object", holder=Holder(SECRET))
    assert_masked(stream.getvalue())


def test_secret_masked_in_object_nested_in_dict() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    get_logger("finrl.test").info("nested object", ctx={"holder": Holder(SECRET)})
    assert_masked(stream.getvalue())


def test_secret_masked_in_stdlib_message() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    logging.getLogger("alpaca.client").error("auth failed for %s", SECRET)
    logging.getLogger("alpaca.client").error(f"literal {SECRET}")
    assert_masked(stream.getvalue())
    assert all(r["logger"] == "alpaca.client" for r in json_lines(stream))


def test_secret_masked_in_exception_text_json() -> None:
    stream = json_logging()
    register_secrets([SECRET])
    log = get_logger("finrl.test")
    try:
        raise RuntimeError(f"bad key {SECRET}")
    except RuntimeError:
        log.exception("request failed")
    try:
        raise ValueError(f"stdlib {SECRET}")
    except ValueError:
        logging.getLogger("some.lib").exception("lib failed")
    assert_masked(stream.getvalue())
    records = json_lines(stream)
    assert len(records) == 2
    assert all(r["level"] == "error" for r in records)
    assert "RuntimeError" in records[0]["exception"]
    assert "ValueError" in records[1]["exception"]


def test_secret_masked_in_exception_text_console() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=False, stream=stream)
    register_secrets([SECRET])
    try:
        raise RuntimeError(f"bad key {SECRET}")
    except RuntimeError:
        get_logger("finrl.test").exception("request failed")
    output = stream.getvalue()
    assert "request failed" in output
    assert "RuntimeError" in output
    assert SECRET not in output


def test_secret_masked_in_console_mode_kwargs() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=False, stream=stream)
    register_secrets([SECRET])
    get_logger("finrl.test").info(f"key {SECRET}", key=SECRET, nested={"k": SECRET})
    logging.getLogger("some.lib").warning("stdlib %s", SECRET)
    assert_masked(stream.getvalue())


def test_short_and_empty_secrets_ignored() -> None:
    register_secrets([None, "", "abc", SECRET])
    assert flog._secrets == {SECRET}


def test_nothing_masked_without_registered_secrets() -> None:
    stream = json_logging()
    get_logger("finrl.test").info(f"value {SECRET}")
    assert SECRET in stream.getvalue()


# ---------------------------------------------------------------- console mode


def test_console_mode_is_human_readable() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=False, stream=stream)
    get_logger("finrl.test.console").info("model_saved", path="x.zip")
    logging.getLogger("some.lib").error("stdlib_error")
    output = stream.getvalue()
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "model_saved" in lines[0]
    assert "finrl.test.console" in lines[0]
    assert "path=x.zip" in lines[0]
    assert "stdlib_error" in lines[1]
    assert "\x1b[" not in output  # no colour codes on a non-tty stream


def test_configure_logging_replaces_root_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", json=True, stream=first)
    configure_logging("INFO", json=True, stream=second)
    assert len(logging.getLogger().handlers) == 1
    get_logger("finrl.test").info("once")
    assert first.getvalue() == ""
    assert [r["event"] for r in json_lines(second)] == ["once"]
