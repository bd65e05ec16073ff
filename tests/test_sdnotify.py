"""systemd notify/watchdog: real AF_UNIX datagram sockets, a real edge-run process, and the
microphone's reopen loop keeping the watchdog fed (edge/sdnotify.py)."""

import logging
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.mic import MicConfig, MicrophoneSource
from edge.sdnotify import Notifier

from .paths import DEV, REPO
from .test_mic import FAST_BACKOFF, FakePyAudio, take

WATCHDOG_USEC = 2_000_000  # 2 s: a ping for every 1 s of audio = 16000 samples


@pytest.fixture
def listener(tmp_path):
    """A datagram socket standing where systemd's NOTIFY_SOCKET would be, read by a thread
    (as systemd does) so that the kernel's small datagram queue never fills."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    received: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    thread = threading.Thread(target=read, daemon=True)
    thread.start()

    def messages() -> list[str]:
        time.sleep(0.2)  # what was sent has arrived
        out = received[:]
        del received[: len(out)]
        return out

    yield str(path), messages
    done.set()
    thread.join(timeout=1.0)
    sock.close()


def test_outside_systemd_nothing_is_sent():
    notifier = Notifier(env={})
    assert not notifier.enabled and notifier.ping_samples is None
    notifier.ready()
    notifier.alive(123)
    notifier.waiting()
    notifier.stopping()


def test_watchdog_pings_follow_audio_samples(listener):
    path, messages = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    assert notifier.ping_samples == 16000
    notifier.ready("listening")
    for samples in (640, 8000, 16639, 16640, 20000, 32640):
        notifier.alive(samples)
    notifier.waiting()
    notifier.stopping()
    assert messages() == ["READY=1\nSTATUS=listening", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    notifier.reset()
    notifier.alive(32641)
    assert messages() == ["WATCHDOG=1"]


def test_watchdog_meant_for_another_process_is_not_fed(listener):
    path, messages = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC), "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.enabled and notifier.ping_samples is None
    notifier.alive(10**6)
    notifier.ready()
    assert messages() == ["READY=1"]


def test_abstract_socket_address():
    name = f"trigger-edge-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1.0)
    try:
        Notifier(env={"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_a_full_socket_queue_never_blocks(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edge.sdnotify")
    path = tmp_path / "unread.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))  # bound, never read: the kernel queue fills after a few datagrams
    try:
        notifier = Notifier(env={"NOTIFY_SOCKET": str(path)})
        for _ in range(2000):
            notifier.ready()
        assert caplog.text.count("systemd notification failed") == 1
    finally:
        sock.close()


def test_a_failing_socket_is_logged_once_and_never_raised(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edge.sdnotify")
    notifier = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens"), "WATCHDOG_USEC": "1000000"})
    notifier.ready()
    notifier.alive(0)
    notifier.alive(10**6)
    assert caplog.text.count("systemd notification failed") == 1


def test_edge_run_tells_systemd_ready_pings_per_second_of_audio_and_stopping(listener):
    path, messages = listener
    clip = DEV / "coursera__1.wav"
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    res = subprocess.run([sys.executable, "-m", "edge.cli", "--input", str(clip)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1500:]
    got = messages()
    seconds = read_audio(clip).size / SAMPLE_RATE
    assert got[0] == "READY=1\nSTATUS=listening for 'activate'" and got[-1] == "STOPPING=1"
    assert got[1:-1] == ["WATCHDOG=1"] * len(got[1:-1])
    assert int(seconds) <= len(got) - 2 <= int(seconds) + 1


def test_microphone_reopen_keeps_the_watchdog_fed():
    waits = []
    factory = FakePyAudio.script(fail_reads=[2, None], unplugged_for=3)
    source = MicrophoneSource(MicConfig(device="USB", **FAST_BACKOFF), pyaudio_factory=factory, on_wait=lambda: waits.append(1))
    assert len(take(source, 4)) == 4
    source.close()
    assert len(waits) == 4  # one before each of the 4 tries: 3 while unplugged, 1 that succeeds
