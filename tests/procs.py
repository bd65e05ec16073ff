"""Processes of a test's command, seen through /proc (a shell may exit before its children)."""

import time
from pathlib import Path

POLL_SECONDS = 0.05


def session_pids(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (the command and anything it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def wait_group_gone(pgid: int, seconds: float) -> list[int]:
    """Wait up to ``seconds`` for every process of group ``pgid`` to end; returns those left."""
    deadline = time.monotonic() + seconds
    while (left := session_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return left
