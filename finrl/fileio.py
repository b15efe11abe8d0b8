"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are shared with other readers (containers)
    try:
        yield tmp
        _fsync_file(tmp)
        tmp.replace(target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: Path, write: Callable[[IO[Any]], object], *, binary: bool = False) -> None:
    with (
        atomic_path(target) as tmp,
        tmp.open("wb" if binary else "w", encoding=None if binary else "utf-8") as f,
    ):
        write(f)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write(target, lambda f: f.write(text))


def atomic_write_json(target: Path, data: Any) -> None:
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_directory(directory: Path, fill: Callable[[Path], object]) -> Path:
    """Build a folder aside with ``fill(staging)``, fsync its files, then swap it in whole.

    Readers see the old folder or the new one, never a mix; a failure in ``fill`` leaves the old
    folder untouched and removes the staging folder.
    """
    import shutil

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".staging-{directory.name}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fill(staging)
        for path in staging.rglob("*"):
            if path.is_file():
                _fsync_file(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = directory.with_name(f".retired-{directory.name}")
    shutil.rmtree(retired, ignore_errors=True)
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    fsync_dir(directory.parent)
    shutil.rmtree(retired, ignore_errors=True)
    return directory
