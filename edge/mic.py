"""Audio sources: live microphone, WAV/FLAC file, raw s16le on stdin.

Every source yields 1-D ``int16`` numpy chunks of 16 kHz mono audio (``chunk_samples``
long, the last chunk of a file may be shorter) and has ``stop()`` and ``close()``.

``MicrophoneSource`` survives the things a USB microphone does on a Raspberry Pi: it asks
for 16 kHz and, when the device cannot do that, captures at 48 / 44.1 kHz and resamples in
a streaming-safe way (``soxr.ResampleStream``); when a read fails (unplugged, stream
closed) it logs, closes, and reopens with exponential backoff (0.5 s doubling to 10 s)
for as long as it takes. pyaudio is imported only when a microphone is opened and sits
behind an injectable ``pyaudio_factory`` (a ``pyaudio.PyAudio``-like class).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from .audio import MAX_INPUT_RATE, MIN_INPUT_RATE, SAMPLE_RATE, read_audio
from .errors import AudioDeviceError
from .native import quiet

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SAMPLES = 1280
"""80 ms at 16 kHz: 8 feature steps of 10 ms."""
FALLBACK_RATES = (48000, 44100)
"""Capture rates tried when the device cannot record at ``MicConfig.rate``."""
CHANNEL_OPTIONS = (1, 2)
"""Mono first; some USB microphones only record stereo (then the channels are averaged)."""
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
BYTES_PER_SAMPLE = 2
"""int16."""
INT16 = np.dtype("<i2")
RESAMPLE_QUALITY = "HQ"
STOP_POLL_SECONDS = 0.05
"""How often a waiting source checks whether ``stop()`` was called."""
MAX_REASON_CHARS = 200

PYAUDIO_HINT = "apt install portaudio19-dev; pip install pyaudio"


class DeviceInfo(NamedTuple):
    """One input device as pyaudio sees it."""

    index: int
    name: str
    max_input_channels: int
    default_rate: float


def _default_factory() -> Callable[[], Any]:
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioDeviceError(f"the microphone needs pyaudio ({exc}): {PYAUDIO_HINT}") from None
    return pyaudio.PyAudio


def _inputs(pa: Any) -> list[DeviceInfo]:
    out = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info.get("maxInputChannels", 0)) > 0:
            out.append(DeviceInfo(index, str(info["name"]), int(info["maxInputChannels"]), float(info["defaultSampleRate"])))
    return out


def list_devices(pyaudio_factory: Callable[[], Any] | None = None) -> list[DeviceInfo]:
    """Input devices: ``(index, name, max_input_channels, default_rate)`` tuples."""
    factory = pyaudio_factory or _default_factory()
    with quiet():  # ALSA/JACK/PortAudio print dozens of probe lines (edge.native)
        pa = factory()
        try:
            return _inputs(pa)
        finally:
            pa.terminate()


def find_device(pa: Any, device: int | str | None) -> DeviceInfo:
    """The input device ``device`` names: ``None`` = default input, an int (or a string of
    digits) = index, any other string = case-insensitive name substring (exact name wins)."""
    inputs = _inputs(pa)
    available = "; ".join(f"{d.index}: {d.name}" for d in inputs) or "none"
    if device is None:
        try:
            index = int(pa.get_default_input_device_info()["index"])
        except (OSError, IOError, KeyError):
            raise AudioDeviceError(f"no default input device (available inputs: {available})") from None
        for info in inputs:
            if info.index == index:
                return info
        raise AudioDeviceError(f"default input device {index} cannot record (available inputs: {available})")
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device.strip())
    if isinstance(device, int):
        for info in inputs:
            if info.index == device:
                return info
        raise AudioDeviceError(f"no input device with index {device} (available inputs: {available})")
    wanted = device.strip().lower()
    exact = [d for d in inputs if d.name.lower() == wanted]
    matches = exact or [d for d in inputs if wanted in d.name.lower()]
    if not matches:
        raise AudioDeviceError(f"no input device matching {device!r} (available inputs: {available})")
    return matches[0]


def backoff_delays(initial: float = BACKOFF_INITIAL_SECONDS, maximum: float = BACKOFF_MAX_SECONDS) -> Iterator[float]:
    """0.5, 1, 2, 4, 8, 10, 10, ... seconds."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)


class AudioSource:
    """Iterable of int16 16 kHz mono chunks; ``stop()`` ends iteration, ``close()`` frees."""

    sample_rate = SAMPLE_RATE

    def __init__(self) -> None:
        self._stopping = False

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def stop(self) -> None:
        """Make iteration end soon (within one chunk or ``STOP_POLL_SECONDS``).

        It only sets a flag, so it is safe from a signal handler (SIGINT / SIGTERM) as
        well as from another thread. A stopped source stays stopped."""
        self._stopping = True

    @property
    def stopped(self) -> bool:
        return self._stopping

    def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` in small steps; True if ``stop()`` was called."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(STOP_POLL_SECONDS, remaining))
        return self._stopping

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class MicConfig:
    device: int | str | None = None
    """``None``: default input; int: device index; str: name substring (or digits: index)."""
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES
    """Samples per yielded chunk, at 16 kHz."""
    rate: int = SAMPLE_RATE
    """Capture rate tried first (Hz); output is always 16 kHz."""
    backoff_seconds: float = BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = BACKOFF_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {self.chunk_samples}")
        if not MIN_INPUT_RATE <= self.rate <= MAX_INPUT_RATE:
            raise ValueError(f"rate must be {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz, got {self.rate}")
        if not 0 < self.backoff_seconds <= self.backoff_max_seconds:
            raise ValueError("backoff must satisfy 0 < backoff_seconds <= backoff_max_seconds")


class MicrophoneSource(AudioSource):
    """A pyaudio input stream that never gives up.

    State: the open PyAudio instance and stream, the capture rate / channels in use, the
    resampler and the not-yet-yielded samples; ``opens`` counts successful opens (a value
    above 1 means the audio had a gap: the runner may reset its detector).

    The first open (``open()`` or the start of iteration) raises ``AudioDeviceError`` for
    an unknown device; after that every failure is logged and retried forever.
    """

    def __init__(
        self,
        config: MicConfig | None = None,
        pyaudio_factory: Callable[[], Any] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or MicConfig()
        self._factory = pyaudio_factory
        self._on_wait = on_wait  # called before every reopen wait (the systemd watchdog's "still alive")
        self._pa: Any = None
        self._stream: Any = None
        self._resampler: Any = None
        self._pending = np.zeros(0, dtype=np.int16)
        self.device: DeviceInfo | None = None
        self.capture_rate = 0
        self.channels = 0
        self.opens = 0
        self.errors = 0

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the device (no-op when open). Raises ``AudioDeviceError``."""
        if self._stream is not None:
            return
        factory = self._factory or _default_factory()
        with quiet():  # ALSA/JACK/PortAudio probe noise, on every reopen too (edge.native)
            pa = factory()
            try:
                info = find_device(pa, self.config.device)
                stream, rate, channels = self._open_stream(pa, info)
            except BaseException:
                pa.terminate()
                raise
        self._pa, self._stream, self.device = pa, stream, info
        self.capture_rate, self.channels = rate, channels
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler = None
        if rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16", quality=RESAMPLE_QUALITY)
        self.opens += 1
        logger.info(
            "microphone %d %r open: %d Hz, %d channel%s%s",
            info.index, info.name, rate, channels, "s" if channels > 1 else "",
            f" (resampled to {SAMPLE_RATE} Hz)" if self._resampler else "",
        )

    def _open_stream(self, pa: Any, info: DeviceInfo) -> tuple[Any, int, int]:
        rates = list(dict.fromkeys([self.config.rate, *FALLBACK_RATES, int(info.default_rate)]))
        fmt = pa.get_format_from_width(BYTES_PER_SAMPLE)
        problems = []
        for channels in CHANNEL_OPTIONS:
            if channels > info.max_input_channels:
                continue
            for rate in rates:
                if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
                    continue
                try:
                    pa.is_format_supported(rate, input_device=info.index, input_channels=channels, input_format=fmt)
                    stream = pa.open(
                        format=fmt,
                        channels=channels,
                        rate=rate,
                        input=True,
                        input_device_index=info.index,
                        frames_per_buffer=self._frames_per_read(rate),
                    )
                except (ValueError, OSError) as exc:
                    problems.append(f"{rate} Hz x{channels}: {_reason(exc)}")
                    continue
                return stream, rate, channels
        raise AudioDeviceError(f"input device {info.index} {info.name!r} cannot record 16-bit audio ({'; '.join(problems)})")

    def _frames_per_read(self, rate: int) -> int:
        return max(1, round(self.config.chunk_samples * rate / SAMPLE_RATE))

    def _close_stream(self) -> None:
        stream, pa = self._stream, self._pa
        self._stream = self._pa = None
        steps = [] if stream is None else [stream.stop_stream, stream.close]
        steps += [] if pa is None else [pa.terminate]
        with quiet():
            for step in steps:
                try:
                    step()
                except Exception as exc:  # a dead device may fail any of these; we are leaving anyway
                    logger.debug("microphone close: %s", _reason(exc))

    # -- reading ---------------------------------------------------------------------------

    def _read(self) -> np.ndarray:
        frames = self._frames_per_read(self.capture_rate)
        raw = self._stream.read(frames, exception_on_overflow=False)
        data = np.frombuffer(raw, dtype=INT16)
        if self.channels > 1:
            usable = len(data) - len(data) % self.channels
            data = np.rint(data[:usable].reshape(-1, self.channels).mean(axis=1)).astype(np.int16)
        if self._resampler is not None:
            data = self._resampler.resample_chunk(data)
        return np.asarray(data, dtype=np.int16)

    def __iter__(self) -> Iterator[np.ndarray]:
        if not self._stopping:
            self.open()
        chunk = self.config.chunk_samples
        while not self._stopping:
            try:
                data = self._read()
            except Exception as exc:  # IOError from a vanished device, closed stream, ...
                self.errors += 1
                logger.warning("microphone %s failed (%s); reopening", self._label(), _reason(exc))
                self._close_stream()
                self._reopen()
                continue
            self._pending = np.concatenate([self._pending, data]) if len(self._pending) else data
            while len(self._pending) >= chunk and not self._stopping:
                out, self._pending = self._pending[:chunk].copy(), self._pending[chunk:]
                yield out

    def _reopen(self) -> None:
        for delay in backoff_delays(self.config.backoff_seconds, self.config.backoff_max_seconds):
            if self._on_wait is not None:
                self._on_wait()
            if self._sleep(delay):
                return
            try:
                self.open()
            except Exception as exc:
                logger.warning("microphone %s still unavailable (%s); next try in %.1f s", self._label(), _reason(exc),
                               min(delay * 2, self.config.backoff_max_seconds))
                continue
            logger.info("microphone reopened")
            return

    def _label(self) -> str:
        return repr(self.device.name) if self.device else repr(self.config.device)

    def close(self) -> None:
        self.stop()
        self._close_stream()


class FileSource(AudioSource):
    """A whole audio file (any format ``read_audio`` takes), in chunks."""

    def __init__(self, path: str | Path, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> None:
        super().__init__()
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
        self.path = Path(path)
        self.chunk_samples = chunk_samples
        self.samples = read_audio(self.path)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.samples), self.chunk_samples):
            if self._stopping:
                return
            yield self.samples[start : start + self.chunk_samples]


class StdinSource(AudioSource):
    """Raw signed 16-bit little-endian 16 kHz mono bytes, e.g. from
    ``arecord -f S16_LE -r 16000 -c 1 -t raw``. An odd byte at a read boundary is kept for
    the next read; an odd byte at the very end is dropped (logged)."""

    def __init__(self, stream: BinaryIO | None = None, chunk_samples: int = DEFAULT_CHUNK_SAMPLES) -> None:
        super().__init__()
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.chunk_samples = chunk_samples

    def __iter__(self) -> Iterator[np.ndarray]:
        want = self.chunk_samples * BYTES_PER_SAMPLE
        buffer = bytearray()
        ended = False
        while not ended and not self._stopping:
            data = self.stream.read(want - len(buffer))
            if data:
                buffer += data
            else:
                ended = True
            if len(buffer) >= want or (ended and len(buffer) >= BYTES_PER_SAMPLE):
                usable = len(buffer) - len(buffer) % BYTES_PER_SAMPLE
                yield np.frombuffer(bytes(buffer[:usable]), dtype=INT16).astype(np.int16)
                del buffer[:usable]
        if ended and buffer:
            logger.warning("stdin ended with an odd byte (not whole 16-bit samples); dropped")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[-1] if text else type(exc).__name__)[:MAX_REASON_CHARS]
