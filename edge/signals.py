"""Stop signals (SIGINT, SIGTERM), scoped to one command run.

A command installs its handlers with ``handling(handler)`` and the previous handlers come
back when the block ends, so calling a command's ``main()`` inside another process (a
test, a service) leaves that process as it found it. Handlers can only be set from the
main thread; elsewhere ``handling`` changes nothing (a caller in a thread keeps the
process's handlers).

``interruptible()`` is what batch jobs use: both signals raise ``Interrupted`` (a
``KeyboardInterrupt``) in the main thread, so ``finally`` blocks and worker pools clean
up, and the exit status tells which signal ended the job (128 + signal number).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_EXIT_BASE = 128
"""Shell convention: a job ended by signal N exits with 128 + N (130 for Ctrl-C)."""


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT_BASE + self.signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the job (a bare KeyboardInterrupt counts as SIGINT)."""
    return SIGNAL_EXIT_BASE + getattr(exc, "signum", int(signal.SIGINT))


def raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


@contextmanager
def handling(handler: Callable, signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Install ``handler`` for ``signals`` for the duration of the block, then restore
    exactly what was there before (a Python callable, SIG_DFL or SIG_IGN)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        for sig in signals:
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            # None: a handler installed outside Python; the default is the closest we can restore
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def interruptible(signals: tuple[int, ...] = STOP_SIGNALS):
    """Both stop signals raise ``Interrupted`` inside the block."""
    return handling(raise_interrupted, signals)
