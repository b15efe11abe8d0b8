"""How a tune worker stops on SIGTERM (``docker stop``, Kubernetes) or SIGINT (Ctrl-C).

The first signal is recorded. While a fold trains it ends the training at once: PPO's learning loop
catches the signal itself and stops after its current step, and anywhere else in the training code
the signal raises, as Ctrl-C raises KeyboardInterrupt (a flag checked before each training would miss
a signal that arrives after the check and before the loop installs its own handler). Elsewhere
(scoring a fold, talking to the storage) it is honoured at the next check: after the fold, between
trials. The trial in progress is then failed with the reason, so none is left RUNNING, and the worker
exits 143 (130). A second signal means "now": it restores the signal's default action and re-raises
it, and the process ends at once; its trial is then failed after the grace period, like a killed
worker's.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from finrl.errors import FinRLError
from finrl.signals import on_stop_signals


class TuneInterruptedError(FinRLError):
    """A worker stopped on SIGTERM/SIGINT; its trial in progress (if any) was failed with the reason."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.message, self.signum = message, signum
        self.exit_code = 128 + signum  # 143 for SIGTERM (docker stop, Kubernetes), 130 for Ctrl-C

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # a pool worker's error reaches its parent whole
        return type(self), (self.message, self.signum)


class StopRequest:
    """Set by the first SIGTERM/SIGINT (or by a training that caught one); checked by the trial and the worker."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._event = threading.Event()
        self._raising: str | None = None  # inside raising(): what is being done

    def set(self, signum: int) -> None:
        self.signal = signum
        self._event.set()

    def check(self, doing: str) -> None:
        """Raise :class:`TuneInterruptedError` ("<doing>: stopped by SIGTERM") once a stop was requested."""
        if self.signal is not None:
            raise TuneInterruptedError(f"{doing}: stopped by {signal.Signals(self.signal).name}", self.signal)

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)

    @contextmanager
    def raising(self, doing: str) -> Iterator[None]:
        """For the duration, a stop ends ``doing`` at once: one already requested raises on entry, and a first
        signal raises :class:`TuneInterruptedError` wherever the main thread is. Only for code that cleans up
        after any exception (training does: its staging folders are removed)."""
        self.check(doing)
        self._raising = doing
        try:
            yield
        finally:
            self._raising = None

    def _on_signal(self, signum: int) -> None:
        if self.signal is not None:  # the second signal: end now, as if no handler were installed
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.set(signum)
        if self._raising is not None:
            self.check(self._raising)

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        with on_stop_signals(self._on_signal):
            yield self
