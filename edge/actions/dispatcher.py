"""The dispatcher: every action on its own worker thread with a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..detector import Detection
from ..errors import ActionError
from .base import Action, PermanentActionError, _short

logger = logging.getLogger(__name__)


DISPATCH_QUEUE_SIZE = 4
"""Detections waiting per action; more are dropped (and counted)."""
RETRY_BACKOFF_SECONDS = 0.2
"""First wait before a retry; doubles with every further retry."""
CLOSE_TIMEOUT_SECONDS = 1.0
"""``ActionDispatcher.close`` waits at most this long for busy workers."""



@dataclass
class ActionStats:
    """Counters of one action (mutable state, read by the runner / tests)."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


_STOP = object()


class ActionDispatcher:
    """Fan detections out to actions, each on its own worker thread with a bounded queue.

    ``dispatch`` never blocks. A failing action is retried ``action.retries`` times with
    ``backoff_seconds`` doubling; detections arriving while an action's queue is full are
    dropped and counted in ``stats``. ``close`` drops what is still queued, waits at most
    ``CLOSE_TIMEOUT_SECONDS`` for running actions (a stuck one is left to its daemon
    thread) and closes every action.
    """

    def __init__(
        self,
        actions: Sequence[Action],
        queue_size: int = DISPATCH_QUEUE_SIZE,
        backoff_seconds: float = RETRY_BACKOFF_SECONDS,
        words: Sequence[str | None] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.actions = list(actions)
        self.words = list(words) if words is not None else [None] * len(self.actions)
        """Per action: the only word (model name) whose detections it gets, or ``None`` for all."""
        if len(self.words) != len(self.actions):
            raise ValueError(f"{len(self.actions)} actions but {len(self.words)} word bindings")
        self.backoff_seconds = backoff_seconds
        self.stats: dict[str, ActionStats] = {}
        self._stop = threading.Event()
        self._closed = False
        self._queues: list[queue.Queue[Any]] = []
        self._threads: list[threading.Thread] = []
        for index, action in enumerate(self.actions):
            key = action.name if action.name not in self.stats else f"{action.name} #{index}"
            self.stats[key] = ActionStats()
            q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
            thread = threading.Thread(
                target=self._work, args=(action, q, self.stats[key]), name=f"action-{index}", daemon=True
            )
            self._queues.append(q)
            self._threads.append(thread)
            thread.start()

    def dispatch(self, detection: Detection) -> None:
        """Queue ``detection`` for every action (non-blocking)."""
        if self._closed:
            return
        for q, action, stats, word in zip(self._queues, self.actions, self.stats.values(), self.words):
            if word is not None and word != detection.model:
                continue
            try:
                q.put_nowait(detection)
            except queue.Full:
                stats.dropped += 1
                logger.warning("%s is busy: detection at %.2f s dropped (%d so far)", action.name, detection.seconds, stats.dropped)

    @property
    def failures(self) -> int:
        """Detections an action finally failed on or dropped (file mode exits non-zero on any)."""
        return sum(s.failed + s.dropped for s in self.stats.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued detection has been handled (e.g. at the end of a file)."""
        deadline = None if timeout is None else _now() + timeout
        for q in self._queues:
            with q.all_tasks_done:
                remaining = None if deadline is None else max(0.0, deadline - _now())
                if not q.all_tasks_done.wait_for(lambda q=q: q.unfinished_tasks == 0, remaining):
                    return False
        return True

    def _work(self, action: Action, q: queue.Queue[Any], stats: ActionStats) -> None:
        while True:
            item = q.get()
            try:
                if item is _STOP:
                    return
                self._run(action, item, stats)
            finally:
                q.task_done()

    def _run(self, action: Action, detection: Detection, stats: ActionStats) -> None:
        attempts = 1 + max(0, action.retries)
        delay = self.backoff_seconds
        for attempt in range(1, attempts + 1):
            try:
                action.trigger(detection)
            except PermanentActionError as exc:
                stats.failed += 1
                logger.error("%s", exc)
                return
            except Exception as exc:
                reason = str(exc) if isinstance(exc, ActionError) else f"{action.name} failed: {_short(exc)}"
                if attempt == attempts or self._stop.is_set():
                    stats.failed += 1
                    logger.error("%s (gave up after %d attempt%s)", reason, attempt, "s" if attempt > 1 else "")
                    return
                stats.retried += 1
                logger.warning("%s (retry %d/%d in %.1f s)", reason, attempt, attempts - 1, delay)
                if self._stop.wait(delay):
                    stats.failed += 1
                    return
                delay *= 2
            else:
                stats.done += 1
                return

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for q, stats in zip(self._queues, self.stats.values()):
            while True:  # drop what is queued, then queue the stop marker
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    try:
                        q.put_nowait(_STOP)
                        break
                    except queue.Full:  # a dispatch() raced with close(): drain again
                        continue
                q.task_done()
                if item is not _STOP:
                    stats.dropped += 1
        deadline = _now() + timeout
        for action, thread in zip(self.actions, self._threads):
            thread.join(max(0.0, deadline - _now()))
            if thread.is_alive():
                logger.warning("%s still busy at shutdown; not waiting for it", action.name)
        for action in self.actions:
            try:
                action.close()
            except Exception as exc:  # closing must not hide the others
                logger.warning("%s: close failed: %s", action.name, _short(exc))
        for name, stats in self.stats.items():
            logger.info(
                "%s: %d done, %d failed, %d retried, %d dropped", name, stats.done, stats.failed, stats.retried, stats.dropped
            )

    def __enter__(self) -> ActionDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _now() -> float:
    return time.monotonic()

