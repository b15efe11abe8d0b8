"""One paper trader per state folder, enforced by the operating system.

Two traders on one folder would both decide the same session and, between one's order lookup and
its submit, the other can submit too: two orders with the same intent. An ``flock`` on a file in
the folder is released by the kernel when the holder exits, however it exits, so a crash never
leaves a stale lock behind and no lock file ever needs deleting by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from finrl.errors import FinRLError
from finrl.trade.exit_codes import CycleExit

LOCK_NAME = "paper.lock"


class InstanceLockedError(FinRLError):
    """Another paper trader already works in this state folder."""

    exit_code = int(CycleExit.LOCKED)


@contextmanager
def instance_lock(folder: Path) -> Iterator[Path]:
    """Hold the folder's lock for the ``with`` block, or raise at once if another process holds it.

    The holder writes its pid into the file so that the refused instance can name it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"pid {holder}" if holder.isdigit() else "pid unknown"
            raise InstanceLockedError(
                f"another paper trader ({who}) holds the state folder {folder}; run one instance per folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
