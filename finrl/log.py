"""Structured logging for every entry point.

``configure_logging(json=True)`` emits one JSON object per line with ``timestamp``, ``level``
(lower-case), ``event`` and ``logger``, so ``jq 'select(.level == "error")'`` works on container
logs. Standard-library loggers (stable-baselines3, alpaca-py, urllib3) go through the same
renderer; below ``DEBUG`` only their errors show (yfinance's not even those: it logs each failed
download, which the project reports in one line), and Python warnings raised inside dependencies
are hidden. Registered secrets are masked in every line, whatever field they hide in.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import MutableMapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog

from finrl.masking import MASK, _secrets, mask_registered, mask_text, register_secrets

__all__ = ["MASK", "configure_logging", "get_logger", "mask_text", "register_secrets"]


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_registered(value)
    if isinstance(value, dict):
        return {_mask(k): _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(_mask(v) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = repr(value)  # an object whose repr carries a secret (a credentials dataclass, say)
    return _mask(text) if any(s in text for s in _secrets) else value


def _mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets:
        return event_dict
    for key, value in event_dict.items():
        event_dict[key] = _mask(value)
    return event_dict


def _json_value(value: Any) -> Any:
    """Dates and times as ISO 8601 (not their repr), anything else as its string."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def configure_logging(level: str = "INFO", *, json: bool = False, stream: Any = None) -> None:
    """Route structlog and the standard library through one renderer on ``stream`` (stderr)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(default=_json_value)
        if json
        else structlog.dev.ConsoleRenderer(colors=_is_tty(stream or sys.stderr))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # render tracebacks to text before masking
            _mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    debug = root.level <= logging.DEBUG
    for noisy in NOISY_LOGGERS:  # their debug chatter is not even formatted, unless asked for
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:  # what a dependency says, the project says better in its own line: DEBUG shows it
        handler.addFilter(_own_or_severe)
        _hide_dependency_warnings()
    elif hasattr(warnings.showwarning, "_finrl_shows"):  # configured again, at DEBUG: every warning again
        warnings.showwarning = warnings.showwarning._finrl_shows

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


# third-party loggers that talk at INFO or DEBUG on every request; all others are filtered alike
NOISY_LOGGERS = ("urllib3", "matplotlib", "PIL", "peewee", "yfinance", "curl_cffi", "alpaca", "websockets")
# libraries that log each failure at ERROR and then return nothing: the project reports it, with what to do
SILENT_UNLESS_DEBUG = ("yfinance",)
OWN_LOGGERS = ("finrl", "__main__", "unit_tests")


def _own_or_severe(record: logging.LogRecord) -> bool:
    """A log record the user sees below DEBUG: the project's own, or a dependency's ERROR or worse."""
    top = record.name.split(".")[0]
    if top in OWN_LOGGERS:
        return True
    return top not in SILENT_UNLESS_DEBUG and record.levelno >= logging.ERROR


def _hide_dependency_warnings() -> None:
    """Python warnings raised inside dependencies (a pandas deprecation in yfinance, say) are theirs to fix;
    the project's own warnings, and those its calls cause, still show.

    The display hook, not a filter: a library adds its own filters when it is imported, later.
    """
    if hasattr(warnings.showwarning, "_finrl_shows"):
        return
    show = warnings.showwarning

    def show_own(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if Path(filename).resolve().is_relative_to(_PACKAGE):
            show(message, category, filename, lineno, file, line)

    show_own._finrl_shows = show  # type: ignore[attr-defined]  # installed once; DEBUG puts ``show`` back
    warnings.showwarning = show_own


_PACKAGE = Path(__file__).resolve().parent


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
