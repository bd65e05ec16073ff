"""A hanging test fails fast and loudly, and pytest still exits: run pytest itself on a test
that waits forever for a worker process, with this project's configuration."""

from __future__ import annotations

import subprocess
import sys

from .paths import REPO

HANGING_TEST = '''
import multiprocessing
import time


def test_waits_forever_for_a_worker():
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(3600,))
    worker.start()
    worker.join()


def test_after_the_hang_runs():
    assert True
'''
LIMIT_SECONDS = 4
OUTER_SECONDS = 120
"""Far above the limit: if pytest itself hung, this test fails instead of hanging too."""


def test_a_hanging_test_times_out_dumps_threads_and_pytest_exits(tmp_path):
    test_file = tmp_path / "test_hang.py"
    test_file.write_text(HANGING_TEST)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-c", str(REPO / "pyproject.toml"),
           "--rootdir", str(REPO), "-o", f"timeout={LIMIT_SECONDS}", "-p", "no:cacheprovider", str(test_file)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=OUTER_SECONDS)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert f"Timeout (>{LIMIT_SECONDS:.1f}s)" in out, out[-3000:]
    assert "Thread 0x" in out and "most recent call first" in out, out[-3000:]  # faulthandler, all threads
    assert "worker process(es) still running after the test" in out, out[-3000:]
    assert "1 passed" in out and "1 failed" in out, out[-3000:]
