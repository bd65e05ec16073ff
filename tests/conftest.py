"""Shared fixtures: a real MQTT broker, real HTTP servers, a fake ALSA sound card; and the
guards that make a hang fail fast.

Nothing here mocks the code under test: mosquitto, http.server and ALSA's file plugin are
the real things, started on 127.0.0.1 / in a temp dir and stopped after each test.

Hangs: every test has a pytest-timeout limit (``timeout`` in pyproject.toml; tests marked
``slow`` get ``SLOW_TEST_TIMEOUT_SECONDS`` unless they set their own). Shortly before the
limit, ``faulthandler`` writes the tracebacks of all threads to stderr; at the limit the
test fails (signal method: the session goes on). Worker processes a test leaves behind are
killed after it and fail it, so a stuck pool can never keep pytest from exiting. SIGUSR1
(what ``.ci/run``'s outer ``timeout`` sends) dumps all threads too.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import sys
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from train.workers import kill_children

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = START_TIMEOUT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=POLL_SECONDS * 10):
                return True
        except OSError:
            time.sleep(POLL_SECONDS)
    return False


SLOW_TEST_TIMEOUT_SECONDS = 900
FAULTHANDLER_LEAD_SECONDS = 5
FAULTHANDLER_EARLIEST = 0.8
"""Tracebacks are dumped this long before a test's timeout fails it (for short limits: at
this fraction of the limit)."""

faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_SECONDS))


def _timeout_of(item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


@pytest.fixture(autouse=True)
def hang_guard(request):
    """All-thread tracebacks just before the timeout; no worker process outlives its test."""
    limit = _timeout_of(request.node)
    if limit > 0:
        faulthandler.dump_traceback_later(max(limit - FAULTHANDLER_LEAD_SECONDS, limit * FAULTHANDLER_EARLIEST), file=sys.stderr)
    before = set(multiprocessing.active_children())
    yield
    faulthandler.cancel_dump_traceback_later()
    stray = kill_children(before)
    if stray:
        pytest.fail(f"{len(stray)} worker process(es) still running after the test: {sorted(c.name for c in stray)}")


# --- MQTT -----------------------------------------------------------------------------------


class Broker:
    """A mosquitto process on 127.0.0.1:``port`` (stop/start keep the port)."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.users = dict(users or {})
        self.process: subprocess.Popen[bytes] | None = None
        lines = [f"listener {self.port} {LOOPBACK}", "persistence false", "log_dest stderr"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot read tmp files
        if self.users:
            passwd = directory / "passwd"
            passwd.touch(mode=0o600)
            for name, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), name, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = directory / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def broker_factory(tmp_path):
    """``make(users=None, start=True) -> Broker``; every broker is stopped after the test."""
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"{MOSQUITTO} is not installed (apt install mosquitto)")
    brokers: list[Broker] = []

    def make(users: dict[str, str] | None = None, start: bool = True) -> Broker:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = Broker(directory, users)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mqtt_broker(broker_factory):
    """A running anonymous mosquitto on a free loopback port."""
    return broker_factory()


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RecordingServer:
    """A real ``http.server`` on 127.0.0.1 that records requests; ``status`` maps a path
    (without query) to the status code to answer (default 200)."""

    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    received: threading.Event = field(default_factory=threading.Event)

    def wait(self, count: int = 1, timeout: float = START_TIMEOUT_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return len(self.requests) >= count


@pytest.fixture
def http_server():
    server_state: list[RecordingServer] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            state = server_state[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(RecordedRequest(self.command, self.path, body, dict(self.headers.items())))
            code = state.status.get(self.path.split("?")[0], 200)
            payload = b"ok"
            self.send_response(code)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            state.received.set()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    httpd.daemon_threads = True
    server_state.append(RecordingServer(url=f"http://{LOOPBACK}:{httpd.server_address[1]}"))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server_state[0]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=START_TIMEOUT_SECONDS)


@pytest.fixture
def silent_server():
    """URL of a port that accepts TCP connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(16)
    yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def closed_port_url():
    """URL of a loopback port with nothing listening (connection refused)."""
    return f"http://{LOOPBACK}:{free_port()}"


# --- ALSA -----------------------------------------------------------------------------------

ALSA_CONFIG_TEMPLATE = """
pcm.null {{ type null }}
pcm.!default {{
  type asym
  capture.pcm "fake_capture"
  playback.pcm "fake_playback"
}}
pcm.fake_capture {{
  type plug
  slave.pcm "fake_capture_file"
}}
pcm.fake_capture_file {{
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "{infile}"
  format "raw"
}}
pcm.fake_playback {{
  type plug
  slave.pcm "fake_playback_file"
}}
pcm.fake_playback_file {{
  type file
  slave.pcm "null"
  file "{outfile}"
  format "raw"
}}
"""


@pytest.fixture
def alsa_env(tmp_path):
    """``make(infile, outfile) -> env``: an environment whose ALSA default device captures
    from the raw s16le ``infile`` and plays into ``outfile`` (real ALSA, real PortAudio:
    only processes started with this env see it, because PortAudio reads the ALSA config
    once per process)."""
    def make(infile: Path, outfile: Path | None = None) -> dict[str, str]:
        config = tmp_path / "asound.conf"
        outfile = outfile or tmp_path / "playback.raw"
        config.write_text(ALSA_CONFIG_TEMPLATE.format(infile=infile, outfile=outfile))
        env = dict(os.environ)
        env["ALSA_CONFIG_PATH"] = str(config)
        env["JACK_NO_START_SERVER"] = "1"
        return env

    return make
