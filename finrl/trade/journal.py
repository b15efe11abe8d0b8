"""An append-only, fsync'd JSON-lines journal of decisions, orders, fills and errors.

A crash mid-write can leave the last line torn (no newline). The reader skips a line that is not
JSON (such a torn line, or one an older version glued an entry onto); the writer starts on a fresh
line after one, so the next entry stays readable. A line that is JSON but not an entry (no event)
is refused in one line naming it: the journal is the trader's record of halts and orders.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finrl.errors import DataError
from finrl.masking import mask_strings
from finrl.schemas import JournalEntry, describe


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"ts": datetime.now(UTC).isoformat(), "event": event, **fields}
        # an error may quote a key: masked in the (JSON-ready) strings, never across numbers or syntax
        document = mask_strings(json.loads(json.dumps(entry, default=str)))
        line = json.dumps(document, sort_keys=True) + "\n"
        # one write of a whole line in append mode, then fsync: a crash loses at most this line
        with self.path.open("a+b") as f:
            if f.tell() > 0:  # append mode: at the end
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line: end it, or this entry would be glued onto it
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                document = json.loads(line)
            except json.JSONDecodeError:  # a torn line from a crash mid-write
                continue
            if not isinstance(document, dict):
                raise DataError(f"corrupt {self.path}: line {number}: expected a JSON object")
            try:
                JournalEntry.model_validate(document)
            except ValidationError as exc:
                raise DataError(describe(exc, f"{self.path}: line {number}")) from None
            out.append(document)
        return out
