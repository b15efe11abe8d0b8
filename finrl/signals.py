"""Graceful stops: SIGTERM (``docker stop``, Kubernetes) and SIGINT (Ctrl-C) call back instead of killing."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def on_stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """Route SIGTERM and SIGINT to ``callback(signum)`` for the duration; restore the old handlers after.

    Signals reach only the main thread, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, _frame: callback(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
