"""Stop signals: commands leave a process's handlers as they found them, worker pools end
without signalling their workers, and Ctrl-C / SIGTERM stop every long command quickly
with no orphan processes (real subprocesses, real workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.cli import main as run_main
from edge.signals import Interrupted, handling, interruptible
from train import tts
from train.workers import worker_pool

from .paths import ACTIVATE, DEV, DATA, REPO
from .procs import session_pids
from .tiny import tiny

CLIP = DEV / "coursera__1.wav"
STOP_SECONDS = 15.0
"""A stop signal ends the command, workers included, well before this. It is a hang bound, not a
speed claim: a stop that waits for busy work (a 60 s task, an epoch of 500) overruns it, while a
loaded 2-core CI machine (measured 2.2 s) stays far inside it. Stop latency itself is printed."""
READY_SECONDS = 240.0
LOOP_ROUNDS = 20
POLL_SECONDS = 0.05


def _swallow(_signum, _frame):
    """A handler that ignores the signal: what a forked worker inherited before the fix."""


def _handlers():
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


# --- handlers are scoped ------------------------------------------------------------------


def test_edge_run_main_restores_sigint_and_sigterm_handlers(capsys):
    outer = _handlers()  # default_int_handler/SIG_DFL, or SIG_IGN when pytest runs as a background job (cmd &)
    with handling(_swallow):
        before = _handlers()
        assert run_main(["--input", str(CLIP), "--json"]) == 0
        assert _handlers() == before
        assert run_main(["--input", str(DEV / "missing.wav")]) == 2  # the error path too
        assert _handlers() == before
    assert _handlers() == outer
    capsys.readouterr()


def test_batch_commands_restore_handlers(tmp_path, capsys):
    from train.synth_cli import main as synth_main

    before = _handlers()
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["build", "--positives", str(empty), "--negatives", str(empty), "--backgrounds", str(empty), "--out", str(tmp_path / "ds")]
    assert synth_main(args) == 2
    assert _handlers() == before
    capsys.readouterr()


def test_interruptible_raises_with_the_signal_and_restores():
    before = _handlers()
    with pytest.raises(Interrupted) as caught:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(STOP_SECONDS)  # the handler raises here, at once
    assert caught.value.signum == signal.SIGTERM and caught.value.exit_status == 143
    assert _handlers() == before


# --- pools do not depend on signals reaching workers -----------------------------------------


def _square(x: int) -> int:
    return x * x


def test_worker_pool_ends_even_when_the_parent_swallows_sigterm():
    """The old hang: a fork pool whose workers inherit a SIGTERM handler that does nothing."""
    with handling(_swallow):
        for _ in range(LOOP_ROUNDS):
            with worker_pool(2) as pool:
                assert list(pool.map(_square, range(8))) == [x * x for x in range(8)]


def _fail_after_a_while(seconds: float) -> None:
    time.sleep(seconds)
    if seconds < 1:
        raise RuntimeError("stop")


def test_worker_pool_kills_its_busy_workers_on_an_exception():
    import multiprocessing as mp

    before = set(mp.active_children())
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        with worker_pool(2) as pool:
            for _ in pool.unordered(_fail_after_a_while, [0.1, 60, 60]):
                pass
    assert time.monotonic() - started < STOP_SECONDS  # the 60 s tasks were killed, not awaited
    assert set(mp.active_children()) == before


@pytest.mark.timeout(600)
def test_edge_run_then_tts_pool_twenty_times(tmp_path, capsys):
    """The pair that hung 2 runs in 5: edge-run's main in-process, then a TTS worker pool."""
    engines = [e for e in ("espeak-ng", "flite") if e in tts.available_engines()]
    if not engines:
        pytest.skip("no fast TTS engine installed")
    for i in range(LOOP_ROUNDS):
        assert run_main(["--input", str(CLIP)]) == 0
        rows = tts.generate_clips(["activate"], 4, tmp_path / f"r{i}", seed=i, workers=2, engines=engines, progress=False)
        assert len(rows) == 4
    capsys.readouterr()


# --- real commands, real signals ------------------------------------------------------------


def _start(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _wait_ready(proc: subprocess.Popen, marker: str, min_processes: int) -> list[str]:
    """Read stderr until ``marker`` appears and the group has ``min_processes`` processes."""
    lines: list[str] = []
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"command ended before {marker!r}:\n{''.join(lines)[-2000:]}")
        lines.append(line)
        if marker in line:
            break
    while len(session_pids(proc.pid)) < min_processes and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    assert len(session_pids(proc.pid)) >= min_processes, "workers never started"
    return lines


def _stop_and_time(proc: subprocess.Popen, signum: int) -> tuple[float, str]:
    started = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C in a terminal reaches the whole foreground group
    else:
        os.kill(proc.pid, signum)  # `kill` / systemd's first signal: the main process
    try:
        proc.wait(timeout=READY_SECONDS)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    rest = proc.stderr.read()
    return elapsed, rest


def _assert_stopped(proc: subprocess.Popen, elapsed: float, err: str, code: int) -> None:
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    print(f"stopped in {elapsed:.2f} s")
    assert elapsed < STOP_SECONDS, f"took {elapsed:.2f} s to stop"
    deadline = time.monotonic() + STOP_SECONDS
    while session_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    assert session_pids(proc.pid) == [], "orphan processes left behind"


SIGNALS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm")]


@pytest.mark.parametrize("signum", SIGNALS)
def test_edge_run_stops_on_a_stalled_pipe(signum):
    """stdin that never delivers a byte: the read is interrupted, exit 0 (a requested stop)."""
    proc = _start(["-m", "edge.cli", "--input", "-"], stdin=subprocess.PIPE)
    try:
        _wait_ready(proc, "stop with Ctrl-C", 1)
        elapsed, err = _stop_and_time(proc, signum)
    finally:
        proc.stdin.close()
    _assert_stopped(proc, elapsed, err, 0)
    assert f"stopping (signal {int(signum)})" in err


@pytest.mark.parametrize("signum", SIGNALS)
def test_edge_synth_build_stops_with_busy_workers(tmp_path, signum):
    args = ["-m", "train.synth_cli", "build", "--positives", str(ACTIVATE / "positives"), "--negatives", str(ACTIVATE / "negatives"),
            "--backgrounds", str(ACTIVATE / "backgrounds"), "--out", str(tmp_path / "ds"), "--count", "4000",
            "--shard-size", "100", "--workers", "2"]
    proc = _start(args)
    _wait_ready(proc, "synth: 0/4000", 3)
    time.sleep(1.0)  # the workers are loading sources / synthesizing
    elapsed, err = _stop_and_time(proc, signum)
    _assert_stopped(proc, elapsed, err, 128 + int(signum))
    assert "interrupted; run the same command again to resume" in err


@pytest.mark.parametrize("signum", SIGNALS)
def test_edge_synth_tts_stops_with_busy_workers(tmp_path, signum):
    proc = _start(["-m", "train.tts", "--word", "activate", "--n", "400", "--out", str(tmp_path / "tts"), "--workers", "2",
                   "--engines", "espeak-ng,flite,festival"])
    _wait_ready(proc, "tts: clips: ", 3)
    elapsed, err = _stop_and_time(proc, signum)
    _assert_stopped(proc, elapsed, err, 128 + int(signum))


@pytest.mark.slow
@pytest.mark.parametrize("signum", SIGNALS)
def test_edge_train_stops_mid_epoch(tmp_path, signum):
    t = tiny()
    args = ["-m", "train.train", "--data", str(t.train_data), "--val", str(t.val_data), "--out", str(tmp_path / "run"),
            "--epochs", "500", "--filters", "16", "--units", "16", "--batch-size", "4"]
    proc = _start(args)
    _wait_ready(proc, "epoch 2/", 1)
    elapsed, err = _stop_and_time(proc, signum)
    _assert_stopped(proc, elapsed, err, 128 + int(signum))
    assert "interrupted; run the same command again to resume" in err


@pytest.mark.parametrize("signum", SIGNALS)
def test_edge_eval_stops_while_scoring(tmp_path, signum):
    args = ["-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--positives", str(ACTIVATE / "positives"),
            "--negatives", str(DATA / "speech" / "ljspeech"), "--out", str(tmp_path / "eval")]
    proc = _start(args)
    _wait_ready(proc, "scoring", 1)
    time.sleep(0.5)
    elapsed, err = _stop_and_time(proc, signum)
    _assert_stopped(proc, elapsed, err, 128 + int(signum))
