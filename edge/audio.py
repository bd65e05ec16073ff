"""Reading and writing audio: everything becomes 16 kHz mono int16 here, and only here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .errors import AudioFormatError, EmptyAudioError

SAMPLE_RATE = 16000
"""The one sample rate of the whole pipeline (Hz)."""
INT16_MIN, INT16_MAX = -32768, 32767
"""The int16 sample range."""
INT16_FULL_SCALE = 32768.0
"""0 dBFS: ``samples / INT16_FULL_SCALE`` lies in [-1, 1); a level in dBFS is relative to it."""
MIN_INPUT_RATE = 8000
MAX_INPUT_RATE = 48000
LOG = logging.getLogger(__name__)


def clip_int16(samples: np.ndarray) -> np.ndarray:
    """Samples clipped to the int16 range, then cast (no rounding: round first where it matters)."""
    return np.clip(samples, INT16_MIN, INT16_MAX).astype(np.int16)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 with rounding and clipping (+-1 becomes +-32767)."""
    return clip_int16(np.rint(np.asarray(samples, dtype=np.float64) * INT16_MAX))


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample float audio (1-D) from ``rate`` to ``target`` Hz (deterministic, soxr HQ)."""
    if rate == target:
        return np.asarray(samples, dtype=np.float64)
    import soxr

    return soxr.resample(np.asarray(samples, dtype=np.float64), rate, target, quality="HQ")


def convert(samples: np.ndarray, rate: int, name: str = "<audio>") -> np.ndarray:
    """Any float/int array (frames[, channels]) at ``rate`` Hz to 16 kHz mono int16."""
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioFormatError(
            f"{name}: sample rate {rate} Hz is outside {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz"
        )
    data = np.asarray(samples)
    if rate == SAMPLE_RATE and data.dtype == np.int16 and data.ndim == 1:
        return data  # already 16 kHz mono int16: bit-exact, no work
    if data.dtype.kind in "iu":
        data = data.astype(np.float64) / float(np.iinfo(data.dtype).max + 1)
    data = data.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:  # a float file with NaN / Inf: silence there, not garbage (or a cast warning) everywhere
        LOG.warning("%s: %d sample(s) are NaN or infinite; read as silence", name, bad)
        data = np.where(np.isfinite(data), data, 0.0)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1:
        raise AudioFormatError(f"{name}: expected mono or multi-channel audio, got shape {data.shape}")
    return to_int16(resample(data, rate))


def read_audio(path: str | Path, max_seconds: float | None = None) -> np.ndarray:
    """Read a WAV/FLAC/OGG file of any common format and return 16 kHz mono int16.

    8/16/24/32-bit integer and float, mono or multi-channel, 8-48 kHz are accepted.
    Anything else raises ``AudioFormatError`` naming the file. ``max_seconds`` decodes only
    that much from the start (a long music track capped without decoding all of it).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFormatError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
        dtype = "int16" if info.subtype == "PCM_16" else "float64"
        frames = -1 if max_seconds is None else max(int(max_seconds * info.samplerate), 1)
        data, rate = sf.read(str(path), frames=frames, dtype=dtype, always_2d=False)
    except Exception as exc:  # libsndfile raises several types; all mean "unreadable"
        raise AudioFormatError(f"{path}: not a readable audio file ({_short(exc)})") from None
    if len(data) == 0:
        raise EmptyAudioError(f"{path}: contains no audio samples")
    return convert(data, int(rate), str(path))


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono audio as a 16-bit PCM WAV."""
    import soundfile as sf

    sf.write(str(path), np.asarray(samples, dtype=np.int16), rate, subtype="PCM_16")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


SAMPLE_WIDTHS = {1: np.uint8, 2: np.int16, 4: np.int32}
"""Bytes per sample -> PCM sample type of a raw stream (8-bit PCM is unsigned, as in WAV)."""
MAX_STREAM_CHANNELS = 8
UINT8_ZERO = 128


class StreamConverter:
    """Raw interleaved PCM of any common format, in chunks, to 16 kHz mono int16.

    State: a partial frame held back until its remaining bytes arrive, and the streaming
    resampler (soxr, the same HQ filter ``read_audio`` uses). 16 kHz mono 16-bit input is
    passed through bit for bit. ``reset()`` returns to a fresh converter.
    """

    def __init__(self, rate: int, width: int, channels: int, name: str = "<stream>") -> None:
        if width not in SAMPLE_WIDTHS:
            raise AudioFormatError(f"{name}: sample width {width} bytes is not supported (1, 2 or 4)")
        if not isinstance(channels, int) or not 1 <= channels <= MAX_STREAM_CHANNELS:
            raise AudioFormatError(f"{name}: {channels} channels is not supported (1-{MAX_STREAM_CHANNELS})")
        if not isinstance(rate, int) or not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
            raise AudioFormatError(f"{name}: sample rate {rate} Hz is outside {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz")
        self.rate, self.width, self.channels = rate, width, channels
        self._frame_bytes = width * channels
        self._passthrough = rate == SAMPLE_RATE and width == 2 and channels == 1
        self.reset()

    def reset(self) -> None:
        self._pending = b""
        self._resampler = None
        if self.rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float64", quality="HQ")

    def process(self, data: bytes, last: bool = False) -> np.ndarray:
        """Feed raw bytes (any count); return the 16 kHz mono int16 samples now available.
        ``last=True`` flushes the resampler at the end of a stream."""
        data = self._pending + data
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        raw = np.frombuffer(data[:usable], dtype=np.dtype(SAMPLE_WIDTHS[self.width]).newbyteorder("<"))
        if self._passthrough:
            return raw.astype(np.int16)
        if self.width == 1:
            mono = (raw.astype(np.float64) - UINT8_ZERO) / UINT8_ZERO
        else:
            mono = raw.astype(np.float64) / float(np.iinfo(raw.dtype).max + 1)
        mono = mono.reshape(-1, self.channels).mean(axis=1)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        return to_int16(mono)
