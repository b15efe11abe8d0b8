"""The secrets of this process (API keys, passwords), and their removal from any text shown or written.

Kept apart from :mod:`finrl.log` (structlog) so that every command masks its one-line errors, even
those that never set up logging. A secret is also masked as it appears URL-encoded or JSON-escaped
(an error body echoing a request, a URL in an exception).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MASK = "**********"
_secrets: set[str] = set()


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these strings wherever this process would show them (log lines, error lines)."""
    _secrets.update(form for v in values if v and len(v) >= 4 for form in _forms(v))


def mask_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` replaced by :data:`MASK`: for error messages, which no log
    processor sees (the clients mask their own keys before raising)."""
    for secret in sorted({form for s in secrets if s for form in _forms(s)}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_registered(text: str) -> str:
    """``text`` without any registered secret."""
    return mask_text(text, _secrets) if _secrets else text


def mask_strings(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with registered secrets masked inside its
    strings only: masking a serialized document could cut a number or the syntax (a secret of digits)."""
    if isinstance(value, str):
        return mask_registered(value)
    if isinstance(value, dict):
        return {key: mask_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_strings(item) for item in value]
    return value


def has_registered(text: str) -> bool:
    return any(secret in text for secret in _secrets)
