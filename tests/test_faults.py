"""Faults with real parts (issue 15, part 3): a microphone that vanishes mid-stream and comes
back (real PortAudio over ALSA's file plugin, unplugged at the PyAudio boundary), and a stop
signal while an action is in flight (gpiozero's MockFactory, a real shell command)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio

from .paths import DEV, REPO

CLIP = DEV / "coursera__1.wav"  # "activate" ends near 2.6 s; the shipped model detects it
LEAD_SILENCE_SECONDS = 1.0
TAIL_SILENCE_SECONDS = 4.0
HANG_BOUND_SECONDS = 60.0
"""Generous: how long a step may take before the test calls it a hang (not a speed limit)."""
STOP_BOUND_SECONDS = 10.0
POLL_SECONDS = 0.05
DETECTED = '"model": "activate"'


class Lines:
    """Lines of a child's pipe, collected by a thread; ``wait_for`` polls them."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, text: str, times: int = 1, timeout: float = HANG_BOUND_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        while self.count(text) < times and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return self.count(text) >= times

    @property
    def text(self) -> str:
        return "".join(self.lines)


def start(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.fault_runner", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_BOUND_SECONDS)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(240)
def test_microphone_vanishes_mid_stream_comes_back_and_the_word_after_is_detected(tmp_path, alsa_env):
    pytest.importorskip("pyaudio")
    silence = lambda seconds: np.zeros(int(seconds * SAMPLE_RATE), np.int16)  # noqa: E731
    infile = tmp_path / "mic.raw"
    np.concatenate([silence(LEAD_SILENCE_SECONDS), read_audio(CLIP), silence(TAIL_SILENCE_SECONDS)]).astype("<i2").tofile(infile)
    marker = tmp_path / "unplugged"
    env = {**alsa_env(infile), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = start(["flaky-mic", str(marker), "--", "--json"], env)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert out.wait_for(DETECTED), f"no detection before the unplug:\n{err.text[-2000:]}"
        marker.touch()  # unplugged: the open stream fails, and so does every reopen
        assert err.wait_for("reopening"), err.text[-2000:]
        assert err.wait_for("still unavailable"), err.text[-2000:]  # retried with back-off while gone
        marker.unlink()  # plugged back in: the file plugin plays the recording from its start
        assert err.wait_for("microphone reopened"), err.text[-2000:]
        assert out.wait_for(DETECTED, times=2), f"the word said after the return was missed:\n{err.text[-2000:]}"
    finally:
        code = stop(proc)
    assert code == 0 and "Traceback" not in err.text, err.text[-2000:]
    assert err.count("open: 16000 Hz") >= 2  # really opened again


@pytest.mark.timeout(240)
def test_sigterm_while_an_action_is_in_flight_switches_pins_off_and_ends(tmp_path):
    states = tmp_path / "pins.json"
    started = tmp_path / "exec-started"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("GPIOZERO_PIN_FACTORY", None)
    action = f"echo $$ > {started}.tmp && mv {started}.tmp {started} && exec sleep 300"
    proc = start(["mock-gpio", str(states), "--", "--input", "-", "--json", "--gpio", "17", "--gpio-mode", "hold",
                  "--exec", action], env, stdin=subprocess.PIPE)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        proc.stdin.buffer.write(read_audio(CLIP).astype("<i2").tobytes())
        proc.stdin.buffer.flush()  # stdin stays open: the runner keeps listening
        assert out.wait_for(DETECTED), err.text[-2000:]
        deadline = time.monotonic() + HANG_BOUND_SECONDS
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        assert started.exists(), f"the exec action never started:\n{err.text[-2000:]}"
        code = stop(proc)  # the exec action is still running (sleep 300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, err.text[-2000:]
    assert "Traceback" not in err.text
    pin = json.loads(states.read_text())["GPIO17"]
    assert True in pin and pin[-1] is False, pin  # switched on by the detection, off at the stop
    action_pid = int(started.read_text())
    deadline = time.monotonic() + STOP_BOUND_SECONDS
    while _alive(action_pid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    assert not _alive(action_pid), "the action's command outlived the runner"


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
