"""Helpers for installing the locked dependencies without the CUDA stack.

    python tools/export_requirements.py torch-version [poetry.lock]
        print the torch version pinned in the lock file

    python tools/export_requirements.py strip-torch IN OUT
        copy a requirements file exported by poetry-plugin-export with the
        `train` extra (`--extras train`), leaving out torch and its CUDA-only
        dependencies (triton, nvidia-*, cuda-*); torch itself is installed
        separately as a CPU build. An export without the extra has no torch
        at all (the inference install) and needs no stripping.

Standard library only, so it runs with any Python 3.11+.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_DROP_EXACT = {"torch", "triton"}
_DROP_PREFIXES = ("nvidia-", "cuda-")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_dropped(name: str) -> bool:
    name = _canonical(name)
    return name in _DROP_EXACT or name.startswith(_DROP_PREFIXES)


def torch_version(lock: Path) -> str:
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    versions = {p["version"] for p in data.get("package", []) if _canonical(p["name"]) == "torch"}
    if len(versions) != 1:
        raise SystemExit(f"error: expected exactly one torch version in {lock}, found {sorted(versions)}")
    return versions.pop()


def _entries(text: str) -> list[str]:
    """Split into logical entries: a line plus its backslash continuations."""
    entries: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        current.append(line)
        if not line.rstrip("\r\n").endswith("\\"):
            entries.append("".join(current))
            current = []
    if current:
        entries.append("".join(current))
    return entries


def strip_torch(src: Path, dst: Path) -> list[str]:
    kept: list[str] = []
    dropped: list[str] = []
    for entry in _entries(src.read_text(encoding="utf-8")):
        stripped = entry.lstrip()
        match = None if stripped.startswith(("#", "-")) else _NAME.match(entry)
        if match and is_dropped(match.group(1)):
            dropped.append(_canonical(match.group(1)))
        else:
            kept.append(entry)
    dst.write_text("".join(kept), encoding="utf-8")
    return dropped


def main(argv: list[str]) -> int:
    if len(argv) in (1, 2) and argv[0] == "torch-version":
        print(torch_version(Path(argv[1] if len(argv) == 2 else "poetry.lock")))
        return 0
    if len(argv) == 3 and argv[0] == "strip-torch":
        dropped = strip_torch(Path(argv[1]), Path(argv[2]))
        if "torch" not in dropped:
            print(f"error: no torch entry found in {argv[1]}", file=sys.stderr)
            return 1
        print(f"left out {len(dropped)} torch/CUDA entries: {' '.join(sorted(set(dropped)))}", file=sys.stderr)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
