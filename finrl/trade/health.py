"""The paper-trading service's heartbeat file, and the check the container probes run on it.

Kept apart from the Prometheus metrics: ``spy-rl health`` runs every 30 s and imports only this.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finrl.errors import DataError
from finrl.fileio import atomic_write_json
from finrl.masking import mask_registered
from finrl.schemas import HealthFile, validate_file


def write_health(path: Path, status: str, **detail: Any) -> None:
    detail = {key: mask_registered(value) if isinstance(value, str) else value for key, value in detail.items()}
    atomic_write_json(Path(path), {"status": status, "heartbeat": datetime.now(UTC).isoformat(), **detail})


def health_ok(path: Path, max_age_seconds: float) -> tuple[bool, str]:
    """For the container health check: a fresh heartbeat and no fatal status."""
    try:
        health = validate_file(HealthFile, json.loads(Path(path).read_text()), path)
    except (OSError, ValueError) as exc:  # JSON and decoding errors are ValueErrors
        return False, f"no readable health file {path}: {exc}"
    except DataError as exc:
        return False, str(exc)
    age = (datetime.now(UTC) - health.heartbeat).total_seconds()
    if health.status == "fatal":
        return False, f"fatal: {health.error or '?'}"
    if age > max_age_seconds:
        return False, f"stale heartbeat ({age:.0f} s old)"
    return True, f"{health.status} ({age:.0f} s ago)"
