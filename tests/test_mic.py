"""Audio sources: a real PortAudio/ALSA capture stream (ALSA file plugin as the sound card),
an injected pyaudio stand-in for device failures, files and pipes."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, write_wav
from edge.errors import AudioDeviceError
from edge.mic import (
    DeviceInfo,
    FileSource,
    MicConfig,
    MicrophoneSource,
    StdinSource,
    backoff_delays,
    list_devices,
)

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1280
TONE_HZ = 440.0
FAST_BACKOFF = {"backoff_seconds": 0.01, "backoff_max_seconds": 0.04}


def take(source, count: int) -> list[np.ndarray]:
    out = []
    for chunk in source:
        out.append(chunk)
        if len(out) == count:
            break
    return out


def peak_hz(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


# --- real PortAudio stream over ALSA's file plugin ---------------------------------------------

MIC_SCRIPT = """
import json, sys
import numpy as np
from edge.mic import MicConfig, MicrophoneSource, list_devices
out = {"devices": [list(d) for d in list_devices()]}
for name, rate, device, chunks in [("native", 16000, None, 8), ("resampled", 48000, "fake_capture", 8)]:
    source = MicrophoneSource(MicConfig(device=device, chunk_samples=1280, rate=rate))
    got = []
    for chunk in source:
        got.append(chunk)
        if len(got) == chunks:
            source.stop()
    source.close()
    np.save(sys.argv[1] + "/" + name + ".npy", np.concatenate(got))
    out[name] = {"rate": source.capture_rate, "channels": source.channels, "opens": source.opens,
                 "device": source.device.name, "sizes": sorted({len(c) for c in got}),
                 "dtypes": sorted({str(c.dtype) for c in got})}
print(json.dumps(out))
"""


def test_real_pyaudio_stream_reads_the_fake_sound_card(tmp_path, alsa_env):
    pytest.importorskip("pyaudio")
    rng = np.random.default_rng(0)
    # distinctive content: random int16 samples (any reordering or loss would show)
    content = rng.integers(-20000, 20000, size=SAMPLE_RATE * 3, dtype=np.int16)
    raw = tmp_path / "mic.raw"
    content.astype("<i2").tofile(raw)
    env = alsa_env(infile=raw)
    result = subprocess.run(
        [sys.executable, "-c", MIC_SCRIPT, str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(name == "default" and channels > 0 for _, name, channels, _ in report["devices"])

    native = np.load(tmp_path / "native.npy")
    assert report["native"] == {"rate": 16000, "channels": 1, "opens": 1, "device": "default",
                                "sizes": [CHUNK], "dtypes": ["int16"]}
    assert np.array_equal(native, content[: len(native)])  # bit-exact through plug + file

    # the same file captured "at 48 kHz" (the plug passes it through) and resampled to 16 kHz:
    # a stream of 48 kHz samples is what soxr turns into 1/3 as many 16 kHz samples
    resampled = np.load(tmp_path / "resampled.npy")
    assert report["resampled"]["rate"] == 48000 and report["resampled"]["device"] == "fake_capture"
    assert report["resampled"]["sizes"] == [CHUNK]
    import soxr

    expected = soxr.resample(content[: len(resampled) * 3 + 3000], 48000, 16000, quality="HQ")
    assert np.abs(resampled.astype(int) - expected[: len(resampled)].astype(int)).max() <= 2


# --- injected pyaudio stand-in ----------------------------------------------------------------


class FakeStream:
    def __init__(self, owner: "FakePyAudio", rate: int, channels: int, fail_on_read: int | None) -> None:
        self.owner, self.rate, self.channels = owner, rate, channels
        self.fail_on_read = fail_on_read
        self.reads = 0
        self.closed = False
        self.position = 0

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        assert exception_on_overflow is False
        if self.closed:
            raise OSError(-9988, "Stream closed")
        self.reads += 1
        if self.fail_on_read is not None and self.reads == self.fail_on_read:
            raise OSError(-9999, "Unanticipated host error")
        t = (np.arange(frames) + self.position) / self.rate
        self.position += frames
        tone = (np.sin(2 * np.pi * TONE_HZ * t) * 8000).astype("<i2")
        return np.repeat(tone, self.channels).tobytes()

    def stop_stream(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakePyAudio:
    """Stands in for ``pyaudio.PyAudio``; class attributes script the 'hardware'."""

    devices: list[dict] = []
    rates: tuple[int, ...] = (16000,)
    channels: tuple[int, ...] = (1,)
    fail_reads: list[int | None] = []
    instances: list["FakePyAudio"] = []
    unplugged_for: int = 0

    @classmethod
    def script(cls, **attrs):
        defaults = {
            "devices": [
                {"index": 0, "name": "bcm2835 Headphones", "maxInputChannels": 0, "defaultSampleRate": 44100.0},
                {"index": 1, "name": "USB PnP Sound Device: Audio (hw:2,0)", "maxInputChannels": 1, "defaultSampleRate": 44100.0},
            ],
            "rates": (16000,), "channels": (1,), "fail_reads": [], "instances": [], "unplugged_for": 0,
        }
        for key, value in {**defaults, **attrs}.items():
            setattr(cls, key, value)
        return cls

    def __init__(self) -> None:
        cls = type(self)
        self.streams: list[FakeStream] = []
        self.terminated = False
        self.visible = True
        if cls.instances and cls.unplugged_for > 0:  # a reopen while the USB device is gone
            cls.unplugged_for -= 1
            self.visible = False
        cls.instances.append(self)

    def _devices(self) -> list[dict]:
        return [d for d in type(self).devices if self.visible or d["maxInputChannels"] == 0]

    def get_device_count(self) -> int:
        return len(self._devices())

    def get_device_info_by_index(self, index: int) -> dict:
        return self._devices()[index]

    def get_default_input_device_info(self) -> dict:
        for device in self._devices():
            if device["maxInputChannels"] > 0:
                return device
        raise OSError(-9996, "No Default Input Device Available")

    def get_format_from_width(self, width: int) -> int:
        return 8

    def is_format_supported(self, rate, input_device=None, input_channels=None, input_format=None) -> bool:
        if rate not in type(self).rates or input_channels not in type(self).channels:
            raise ValueError(("Invalid sample rate", -9997))
        return True

    def open(self, format, channels, rate, input, input_device_index, frames_per_buffer) -> FakeStream:
        cls = type(self)
        fail = cls.fail_reads.pop(0) if cls.fail_reads else None
        stream = FakeStream(self, rate, channels, fail)
        self.streams.append(stream)
        return stream

    def terminate(self) -> None:
        self.terminated = True


def test_list_devices_and_selection_by_name_or_index():
    factory = FakePyAudio.script()
    assert list_devices(factory) == [DeviceInfo(1, "USB PnP Sound Device: Audio (hw:2,0)", 1, 44100.0)]
    for device in (None, 1, "1", "usb pnp"):
        source = MicrophoneSource(MicConfig(device=device), pyaudio_factory=factory)
        source.open()
        assert source.device.index == 1
        source.close()


def test_unknown_device_lists_what_is_available():
    factory = FakePyAudio.script()
    for device, reason in [("Blue Yeti", "no input device matching 'Blue Yeti'"), (0, "no input device with index 0")]:
        with pytest.raises(AudioDeviceError, match=reason) as error:
            MicrophoneSource(MicConfig(device=device), pyaudio_factory=factory).open()
        assert "1: USB PnP Sound Device" in str(error.value)
        assert FakePyAudio.instances[-1].terminated


def test_device_without_16k_is_captured_at_48k_and_resampled():
    factory = FakePyAudio.script(rates=(48000, 44100))
    source = MicrophoneSource(MicConfig(device="USB"), pyaudio_factory=factory)
    chunks = take(source, 10)
    assert source.capture_rate == 48000
    assert all(len(c) == CHUNK and c.dtype == np.int16 for c in chunks)
    audio = np.concatenate(chunks)
    assert abs(peak_hz(audio[CHUNK:]) - TONE_HZ) < 5
    assert 7000 < np.abs(audio[CHUNK:]).max() < 8500  # amplitude kept
    source.close()


def test_stereo_only_device_is_mixed_down():
    FakePyAudio.script(channels=(2,))
    FakePyAudio.devices[1]["maxInputChannels"] = 2
    source = MicrophoneSource(MicConfig(), pyaudio_factory=FakePyAudio)
    audio = np.concatenate(take(source, 3))
    assert source.channels == 2 and abs(peak_hz(audio) - TONE_HZ) < 10
    source.close()


def test_read_error_closes_and_reopens(caplog):
    caplog.set_level(logging.INFO, logger="edge.mic")
    factory = FakePyAudio.script(fail_reads=[3, None])
    source = MicrophoneSource(MicConfig(**FAST_BACKOFF), pyaudio_factory=factory)
    chunks = take(source, 6)
    assert len(chunks) == 6 and all(len(c) == CHUNK for c in chunks)
    assert (source.opens, source.errors) == (2, 1)
    first, second = FakePyAudio.instances
    assert first.streams[0].closed and first.terminated  # fully released before reopening
    assert not second.terminated and not second.streams[0].closed
    assert "failed (" in caplog.text and "Unanticipated host error" in caplog.text
    assert "microphone reopened" in caplog.text
    source.close()
    assert second.terminated


def test_unplugged_device_is_retried_until_it_comes_back(caplog):
    caplog.set_level(logging.WARNING)
    factory = FakePyAudio.script(fail_reads=[2, None], unplugged_for=3)
    source = MicrophoneSource(MicConfig(device="USB", **FAST_BACKOFF), pyaudio_factory=factory)
    chunks = take(source, 4)
    assert len(chunks) == 4 and source.opens == 2
    assert caplog.text.count("still unavailable") == 3
    assert "no input device matching 'USB'" in caplog.text
    assert all(p.terminated for p in FakePyAudio.instances[:-1])  # no leaked PortAudio instances
    source.close()


def test_backoff_doubles_to_the_cap():
    delays = backoff_delays(0.5, 10.0)
    assert [next(delays) for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_stop_ends_iteration_quickly_even_while_waiting_to_reopen():
    factory = FakePyAudio.script(fail_reads=[1], unplugged_for=100)
    source = MicrophoneSource(MicConfig(backoff_seconds=5.0, backoff_max_seconds=10.0), pyaudio_factory=factory)
    done = threading.Event()

    def run() -> None:
        for _ in source:
            pass
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.1)  # now in the 5 s backoff after the first read failed
    started = time.monotonic()
    source.stop()
    assert done.wait(1.0)
    assert time.monotonic() - started < 1.0


def test_stop_from_a_signal_handler_during_backoff():
    factory = FakePyAudio.script(fail_reads=[1], unplugged_for=100)
    source = MicrophoneSource(MicConfig(backoff_seconds=5.0, backoff_max_seconds=10.0), pyaudio_factory=factory)
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: source.stop())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        assert list(source) == []
        assert time.monotonic() - started < 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_stop_ends_streaming_iteration():
    factory = FakePyAudio.script()
    source = MicrophoneSource(MicConfig(), pyaudio_factory=factory)
    count = 0
    for _ in source:
        count += 1
        if count == 3:
            source.stop()
    assert count == 3


def test_missing_pyaudio_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)
    with pytest.raises(AudioDeviceError, match="needs pyaudio.*portaudio19-dev"):
        list_devices()
    with pytest.raises(AudioDeviceError, match="needs pyaudio"):
        MicrophoneSource(MicConfig()).open()


def test_mic_config_validation():
    with pytest.raises(ValueError, match="chunk_samples"):
        MicConfig(chunk_samples=0)
    with pytest.raises(ValueError, match="rate"):
        MicConfig(rate=96000)


# --- files and pipes --------------------------------------------------------------------------


def test_file_source_chunks_a_converted_file(tmp_path):
    samples = (np.sin(np.arange(SAMPLE_RATE) * 0.05) * 9000).astype(np.int16)
    path = tmp_path / "clip.wav"
    write_wav(path, samples)
    chunks = list(FileSource(path, chunk_samples=CHUNK))
    assert [len(c) for c in chunks[:-1]] == [CHUNK] * (len(chunks) - 1) and len(chunks[-1]) == SAMPLE_RATE % CHUNK
    assert np.array_equal(np.concatenate(chunks), samples)
    stereo_44k = tmp_path / "stereo.wav"
    import soundfile as sf

    sf.write(stereo_44k, np.zeros((44100, 2), dtype=np.int16), 44100, subtype="PCM_16")
    assert sum(len(c) for c in FileSource(stereo_44k)) == SAMPLE_RATE


class Trickle(io.RawIOBase):
    """A pipe that hands out at most ``step`` bytes per read (odd sizes split samples)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def read(self, size: int = -1) -> bytes:
        size = self.step if size < 0 else min(size, self.step)
        out = self.data[self.pos : self.pos + size]
        self.pos += len(out)
        return out


def test_stdin_source_reassembles_split_samples_and_drops_odd_tail(caplog):
    samples = np.arange(-3000, 3000, 3, dtype=np.int16)
    data = samples.astype("<i2").tobytes() + b"\x01"  # odd trailing byte
    chunks = list(StdinSource(Trickle(data, step=333), chunk_samples=256))
    assert np.array_equal(np.concatenate(chunks), samples)
    assert all(len(c) == 256 for c in chunks[:-1]) and all(c.dtype == np.int16 for c in chunks)
    assert "odd byte" in caplog.text


def test_stdin_source_from_a_real_pipe(tmp_path):
    samples = np.random.default_rng(1).integers(-32768, 32767, size=5000, dtype=np.int16)
    raw = tmp_path / "audio.raw"
    samples.astype("<i2").tofile(raw)
    with subprocess.Popen(["cat", str(raw)], stdout=subprocess.PIPE) as process:
        chunks = list(StdinSource(process.stdout, chunk_samples=CHUNK))
    assert np.array_equal(np.concatenate(chunks), samples)
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 5000 - 3 * CHUNK]
