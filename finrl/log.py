"""Structured logging for every entry point.

``configure_logging(json=True)`` emits one JSON object per line with ``timestamp``, ``level``
(lower-case), ``event`` and ``logger``, so ``jq 'select(.level == "error")'`` works on container
logs. Standard-library loggers (stable-baselines3, alpaca-py, urllib3) go through the same
renderer. Registered secrets are masked in every line, whatever field they hide in.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from datetime import date, datetime
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
    for noisy in ("urllib3", "matplotlib", "PIL", "peewee", "yfinance"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

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


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
