"""Progress of a long job: one updating line on a terminal, whole lines in a log.

On a terminal the line is rewritten in place (``\\r``). Anywhere else (a pipe, a file, the
journal) each update is a line of its own, written at most every
``LINE_INTERVAL_SECONDS`` of wall time (plus the first and the last), so a log never
holds one giant ``\\r`` line nor thousands of short ones.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LINE_INTERVAL_SECONDS = 10.0


class Progress:
    """``update(done)`` as work finishes; ``close()`` ends the line on a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, interval: float = LINE_INTERVAL_SECONDS) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line = None

    def update(self, done: int) -> None:
        text = f"{self.label}: {done}/{self.total}"
        if self.tty:
            print(f"\r{text}", end="", file=self.stream, flush=True)
            return
        now = time.monotonic()
        if self._last_line is None or done >= self.total or now - self._last_line >= self.interval:
            print(text, file=self.stream, flush=True)
            self._last_line = now

    def close(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)
