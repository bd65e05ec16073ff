"""Worker process pools that end by closing and joining, never by signalling workers.

Why: ``multiprocessing.Pool``'s context manager ends with ``terminate()``, which relies on
SIGTERM reaching forked workers. A worker that inherited a handler swallowing SIGTERM (as
``edge-run``'s used to be, installed in a test process) never dies, ``join()`` waits on it
forever, and so did the test suite.

``worker_pool`` gives a ``concurrent.futures.ProcessPoolExecutor`` (fork context: workers
share the parent's loaded modules) whose workers

- reset SIGTERM to its default and ignore SIGINT before anything else (Ctrl-C in a
  terminal reaches the whole process group; the parent alone decides what happens);
- ask the kernel for SIGKILL when their parent dies (Linux ``PR_SET_PDEATHSIG``), so a
  parent killed with SIGKILL leaves no orphans either.

On normal exit the pool shuts down by sentinel (close + join). If the block raises (an
error, or ``Interrupted`` from Ctrl-C/SIGTERM in the parent), the pool's workers are
killed at once and then reaped: busy workers do not delay the stop.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

PR_SET_PDEATHSIG = 1
"""prctl(2) option: signal this process when its parent thread dies."""
START_METHOD = "fork"


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: the parent's own clean-up still reaps the workers


def _start_worker(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if initializer is not None:
        initializer(*initargs)


class WorkerPool:
    """The two ways our jobs hand out work. Futures are never cancelled: on an error the
    workers are killed and the executor fails the pending futures itself (cancelling them
    as well races with that in Python 3.11 and prints a thread traceback)."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self.executor = executor

    def map(self, func: Callable, *iterables: Iterable) -> Iterator:
        """Results in input order, each as soon as it and those before it are done."""
        futures = [self.executor.submit(func, *args) for args in zip(*iterables)]
        for future in futures:
            yield future.result()

    def unordered(self, func: Callable, items: Iterable) -> Iterator:
        """Results in the order they finish."""
        for future in as_completed([self.executor.submit(func, item) for item in items]):
            yield future.result()


@contextmanager
def worker_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> Iterator[WorkerPool]:
    """A pool of ``workers`` processes; see the module docstring for how it ends."""
    before = set(mp.active_children())
    executor = ProcessPoolExecutor(
        max(1, int(workers)), mp_context=mp.get_context(START_METHOD),
        initializer=_start_worker, initargs=(initializer, tuple(initargs)),
    )
    try:
        yield WorkerPool(executor)
    except BaseException:
        kill_children(before)
        executor.shutdown(wait=True)
        raise
    executor.shutdown(wait=True)


def kill_children(keep: set) -> list:
    """SIGKILL and reap every live child process of this one that is not in ``keep``; returns them."""
    stray = sorted(set(mp.active_children()) - keep, key=lambda child: child.pid)
    for child in stray:
        child.kill()
        child.join()
    return stray
