"""edge-serve against a real wyoming client: a real ``edge-serve`` subprocess on 127.0.0.1,
``wyoming.client.AsyncTcpClient``, the shipped TFLite model (and a copy of it under another
word), the real dev clips, and ``edge-run --input`` as the reference for detection times."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.wake import Detect, Detection, NotDetected

from edge.audio import SAMPLE_RATE, read_audio, resample, to_int16

from .shipped import shipped_model_as
from .conftest import LOOPBACK, free_port, wait_for_port
from .paths import DATA, DEV

REPO = Path(__file__).resolve().parents[1]
CLIP = DEV / "coursera__1.wav"
NEGATIVE = sorted((DATA / "speech_commands").glob("*/*.wav"))[0] if (DATA / "speech_commands").is_dir() else None
CHUNK_MS = 20
HIGH_RATE = 48000
STEP_MS = 40
"""One model output step: a resampled stream may move a detection by at most this."""
SECOND_WORD = "computer"
START_SECONDS = 60
READ_SECONDS = 10
PROCESS_SECONDS = 60

pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason=f"{CLIP} missing (shared data)")


def edge_command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"edge.{name}", *args]


def edge_run_times(wav: Path, model: Path | None = None) -> list[tuple[str, int]]:
    """(word, time in ms) of ``edge-run --input wav --json``: the reference."""
    args = ["--input", str(wav), "--json"] + (["--model", str(model)] if model else [])
    result = subprocess.run(edge_command("cli", *args), cwd=REPO, capture_output=True, text=True, timeout=PROCESS_SECONDS)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [(d["model"], round(d["sample"] * 1000 / SAMPLE_RATE)) for d in lines]


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> Path:
    """The shipped model under another word (a real, different model file for the service)."""
    return shipped_model_as(SECOND_WORD, tmp_path_factory.mktemp("models"))


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(second_model, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "edge-serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            edge_command("serve", "--uri", f"tcp://{LOOPBACK}:{port}", "--model", "activate", "--model", str(second_model)),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for_port(port, START_SECONDS), f"edge-serve did not start: {log.read_text()[-2000:]}"
        yield Server(process, port, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=READ_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        assert code == 0, log.read_text()[-2000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def pcm16(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def stereo48k(samples: np.ndarray) -> np.ndarray:
    """The same audio at 48 kHz stereo (frames x 2 int16)."""
    high = resample(samples.astype(np.float64) / 32768.0, SAMPLE_RATE, HIGH_RATE)
    return np.stack([to_int16(high), to_int16(high)], axis=1)


async def stream(port: int, audio: bytes, rate: int, width: int, channels: int, names: list[str] | None) -> list:
    """Detect ``names`` in ``audio`` sent in 20 ms chunks; the events answered (up to
    not-detected, or the last detection once the server is quiet)."""
    async with AsyncTcpClient(LOOPBACK, port) as client:
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = rate * CHUNK_MS // 1000 * width * channels
        for offset in range(0, len(audio), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=audio[offset : offset + step]).event())
        await client.write_event(AudioStop().event())
        events = []
        while True:
            try:
                event = await asyncio.wait_for(client.read_event(), 2.0)
            except asyncio.TimeoutError:
                break
            if event is None:
                break
            events.append(event)
            if NotDetected.is_type(event.type):
                break
        return events


def detections(events: list) -> list[tuple[str, int]]:
    return [(d.name, d.timestamp) for d in (Detection.from_event(e) for e in events if Detection.is_type(e.type))]


def test_describe_answers_info_with_every_word(server):
    async def ask():
        async with AsyncTcpClient(LOOPBACK, server.port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), READ_SECONDS))

    info = asyncio.run(ask())
    (program,) = info.wake
    assert program.name == "trigger-edge" and program.installed and program.version and program.attribution.name
    by_name = {m.name: m for m in program.models}
    assert set(by_name) == {"activate", SECOND_WORD}
    for name, model in by_name.items():
        assert model.phrase == name and model.languages == ["en"] and model.version and model.installed
        assert model.attribution.name == "trigger-edge"


def test_16k_stream_in_20ms_chunks_detects_at_edge_run_times(server):
    expected = edge_run_times(CLIP)
    assert expected, "the reference run found no detection in the dev clip"
    events = asyncio.run(stream(server.port, pcm16(read_audio(CLIP)), SAMPLE_RATE, 2, 1, ["activate"]))
    assert detections(events) == expected
    assert not any(NotDetected.is_type(e.type) for e in events)


def test_48k_stereo_stream_detects_at_the_same_times(server, tmp_path):
    samples = read_audio(CLIP)
    high = stereo48k(samples)
    wav = tmp_path / "clip48k.wav"
    import soundfile as sf

    sf.write(str(wav), high, HIGH_RATE, subtype="PCM_16")
    events = asyncio.run(stream(server.port, high.astype("<i2").tobytes(), HIGH_RATE, 2, 2, ["activate"]))
    found = detections(events)
    assert found == edge_run_times(wav)  # the same 48 kHz stereo file through edge-run --input
    reference = edge_run_times(CLIP)
    assert [w for w, _ in found] == [w for w, _ in reference]
    assert all(abs(a - b) <= STEP_MS for (_, a), (_, b) in zip(found, reference)), (found, reference)


@pytest.mark.skipif(NEGATIVE is None, reason="speech_commands missing")
def test_clip_without_the_word_answers_not_detected(server):
    events = asyncio.run(stream(server.port, pcm16(read_audio(NEGATIVE)), SAMPLE_RATE, 2, 1, None))
    assert [e.type for e in events] == ["not-detected"]


def test_two_clients_at_once_with_different_models(server, second_model):
    audio = pcm16(read_audio(CLIP))

    async def both():
        return await asyncio.gather(
            stream(server.port, audio, SAMPLE_RATE, 2, 1, ["activate"]),
            stream(server.port, audio, SAMPLE_RATE, 2, 1, [SECOND_WORD]),
        )

    first, second = asyncio.run(both())
    assert detections(first) == edge_run_times(CLIP)
    assert detections(second) == edge_run_times(CLIP, second_model)
    assert {w for w, _ in detections(second)} == {SECOND_WORD}


def test_state_is_reset_at_every_audio_start(server):
    audio = pcm16(read_audio(CLIP))

    async def twice():
        async with AsyncTcpClient(LOOPBACK, server.port) as client:
            rounds = []
            for _ in range(2):
                await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=audio).event())
                await client.write_event(AudioStop().event())
                events = []
                while not events or Detection.is_type(events[-1].type):
                    try:
                        events.append(await asyncio.wait_for(client.read_event(), 2.0))
                    except asyncio.TimeoutError:
                        break
                rounds.append(detections(events))
            return rounds

    first, second = asyncio.run(twice())
    assert first and first == second  # times count from each audio-start


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection((LOOPBACK, port), timeout=READ_SECONDS)


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF after any answer it sent)."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def still_serves(port: int) -> bool:
    events = asyncio.run(stream(port, pcm16(read_audio(CLIP)), SAMPLE_RATE, 2, 1, ["activate"]))
    return detections(events) == edge_run_times(CLIP)


def test_garbage_line_closes_only_that_connection(server):
    with raw_connection(server.port) as sock:
        sock.sendall(b"this is not a wyoming event\n")
        assert closed_by_server(sock)
    assert "not a Wyoming event; connection closed" in server.log_text()
    assert still_serves(server.port)


def test_client_killed_mid_stream(server):
    script = (
        "import socket, sys, json\n"
        f"s = socket.create_connection(('{LOOPBACK}', {server.port}))\n"
        "start = {'type': 'audio-start', 'data': {'rate': 16000, 'width': 2, 'channels': 1}}\n"
        "s.sendall(json.dumps(start).encode() + b'\\n')\n"
        "head = {'type': 'audio-chunk', 'data': {'rate': 16000, 'width': 2, 'channels': 1}, 'payload_length': 64000}\n"
        "s.sendall(json.dumps(head).encode() + b'\\n' + bytes(1000))\n"
        "print('sent', flush=True)\n"
        "sys.stdin.read()\n"
    )
    client = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "sent"
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=READ_SECONDS)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert still_serves(server.port)
    assert "went away mid-event (IncompleteReadError); connection closed" in server.log_text()


def test_unsupported_audio_format_gets_an_error_and_a_closed_connection(server):
    async def bad():
        async with AsyncTcpClient(LOOPBACK, server.port) as client:
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=3, channels=1).event())
            return await asyncio.wait_for(client.read_event(), READ_SECONDS), await asyncio.wait_for(client.read_event(), READ_SECONDS)

    answer, after = asyncio.run(bad())
    assert Error.is_type(answer.type) and "sample width 3 bytes is not supported" in Error.from_event(answer).text
    assert after is None  # closed
    assert "sent something unusable" in server.log_text()
    assert still_serves(server.port)


def test_unknown_wake_word_is_an_error_event(server):
    async def ask():
        async with AsyncTcpClient(LOOPBACK, server.port) as client:
            await client.write_event(Detect(names=["no-such-word"]).event())
            return await asyncio.wait_for(client.read_event(), READ_SECONDS)

    answer = asyncio.run(ask())
    assert Error.is_type(answer.type) and Error.from_event(answer).code == "unknown-wake-word"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--uri", "http://127.0.0.1:1"], "--uri must be tcp://HOST:PORT"),
        (["--model", "/nonexistent/x.tflite"], "model file not found"),
        (["--model-dir", "/nonexistent"], "no such folder"),
    ],
)
def test_bad_settings_are_one_line_errors(args, message):
    uri = ["--uri", f"tcp://{LOOPBACK}:{free_port()}"] if "--uri" not in args else []
    result = subprocess.run(edge_command("serve", *uri, *args), cwd=REPO, capture_output=True, text=True, timeout=PROCESS_SECONDS)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("edge-serve: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr


def test_port_in_use_is_a_one_line_error(server):
    result = subprocess.run(
        edge_command("serve", "--uri", f"tcp://{LOOPBACK}:{server.port}"), cwd=REPO, capture_output=True, text=True,
        timeout=PROCESS_SECONDS,
    )
    assert result.returncode == 2 and "edge-serve: error: cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


def test_zeroconf_without_the_package_is_a_one_line_error():
    try:
        import zeroconf  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("zeroconf is installed: the test would announce on the network")
    result = subprocess.run(
        edge_command("serve", "--uri", f"tcp://{LOOPBACK}:{free_port()}", "--zeroconf"), cwd=REPO, capture_output=True,
        text=True, timeout=PROCESS_SECONDS,
    )
    assert result.returncode == 2 and "edge-serve: error: --zeroconf needs the zeroconf package" in result.stderr
    assert "Traceback" not in result.stderr
