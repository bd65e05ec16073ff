"""What every TTS engine shares: the voice spec, seeds and draws, subprocess and WAV helpers,
text checks and the common output format (:func:`finish`)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.audio import INT16_MAX, SAMPLE_RATE, clip_int16, convert
from edge.errors import DataError

ENGLISH = "en"
DEFAULT_FACTOR = 1.0
"""The pitch and speed factor of an engine's default voice (no change)."""
SUBPROCESS_TIMEOUT_S = 60.0
MARGIN_S = 0.030
PEAK_TARGET = 0.5  # -6 dBFS
SILENCE_RMS = 60.0  # int16 units (about -55 dBFS): a clip whose loudest 10 ms is below is silent
SPEECH_FLOOR_RMS = SILENCE_RMS / 2
"""The lowest frame RMS that counts as speech, however quiet the clip's loudest frame."""
SPEECH_REL_DB = -35.0
"""A frame is speech when its RMS is at most this far below the loudest frame's."""
FRAMES_PER_SECOND = 100  # 10 ms energy frames
AMPLITUDE_DB = 20  # dB = 20 * log10(amplitude ratio)
SEED_BITS = 63
SEED_BYTES = 8
ROUND_DIGITS = 3
"""Voice parameters are rounded to this many decimals (the precision of :meth:`VoiceSpec.key`)."""
ORT_THREADS = 1
ORT_LOG_ERRORS = 3  # onnxruntime severity: errors and fatal only

_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass(frozen=True)
class VoiceSpec:
    """One synthesis configuration.

    ``engine``: one of :data:`train.tts.ENGINES`; ``voice``: the engine's voice name (espeak-ng:
    ``accent`` or ``accent+variant``); ``pitch`` / ``speed``: relative factors, 1.0 = the
    voice's default (each engine's module documents its native mapping);
    ``extra``: sorted ``(name, value)`` pairs of engine-specific options.
    """

    engine: str
    voice: str
    pitch: float = DEFAULT_FACTOR
    speed: float = DEFAULT_FACTOR
    extra: tuple = ()

    def key(self) -> str:
        """A stable, human-readable id for manifests, e.g. ``piper/joe/p1.050/s0.900/noise_scale=0.5``."""
        parts = [self.engine, self.voice, f"p{self.pitch:.3f}", f"s{self.speed:.3f}"]
        parts += [f"{k}={v}" for k, v in self.extra]
        return "/".join(parts)

    def option(self, name: str, default=None):
        """The value of the engine-specific option ``name`` in ``extra``, else ``default``."""
        for k, v in self.extra:
            if k == name:
                return v
        return default


# --------------------------------------------------------------------------- seeds and draws


def _seed_int(*parts) -> int:
    """A stable 63-bit seed from any mix of ints and strings (no Python hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:SEED_BYTES], "little") & (2**SEED_BITS - 1)


def _rng(rng_or_seed) -> np.random.Generator:
    """A numpy Generator from a Generator (as is) or an int seed."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        return np.random.default_rng(int(rng_or_seed))
    raise DataError(f"voice_grid: expected an int seed or numpy Generator, got {type(rng_or_seed).__name__}")


def _r3(x: float) -> float:
    return float(round(float(x), ROUND_DIGITS))


def pick(rng: np.random.Generator, options: Sequence):
    """One of ``options``, uniformly (one ``rng.integers`` draw)."""
    return options[rng.integers(len(options))]


def uniform3(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw in ``bounds``, rounded to :data:`ROUND_DIGITS` decimals."""
    return _r3(rng.uniform(*bounds))


def pitch_speed(rng: np.random.Generator, pitch: tuple[float, float], speed: tuple[float, float]) -> tuple[float, float]:
    """A pitch factor, then a speed factor, each drawn uniformly in its bounds."""
    p = uniform3(rng, pitch)
    return p, uniform3(rng, speed)


# --------------------------------------------------------------------------- engine I/O


def _run(cmd: list[str], what: str) -> None:
    """Run ``cmd`` (no stdin, output captured); ``DataError`` when it is missing, hangs or fails."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise DataError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: {cmd[0]} took longer than {SUBPROCESS_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DataError(f"{what}: {cmd[0]} failed (exit {proc.returncode}: {err[-1] if err else 'no message'})")


def _read_wav(path: Path, what: str) -> tuple[np.ndarray, int]:
    """The float64 samples and rate of the WAV an engine wrote."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except Exception as exc:  # libsndfile raises several types
        raise DataError(f"{what}: engine wrote no readable audio ({exc})") from None
    return data, int(rate)


def ort_options():
    """onnxruntime session options for one single-threaded, quiet session per process."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = ORT_THREADS
    opts.inter_op_num_threads = ORT_THREADS
    opts.log_severity_level = ORT_LOG_ERRORS
    return opts


# --------------------------------------------------------------------------- text and level


def check_text(text) -> str:
    """The text with whitespace collapsed; ``DataError`` for empty text or text with no letters."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty text {text!r}: nothing to synthesize")
    clean = " ".join(text.split())
    if not _LETTER.search(clean):
        raise DataError(f"text {clean!r} has no letters: nothing to synthesize")
    return clean


def trim_silence(samples: np.ndarray, margin_s: float = MARGIN_S, rel_db: float = SPEECH_REL_DB) -> np.ndarray:
    """Cut leading/trailing silence from 16 kHz int16 audio (10 ms frame energy), keep ``margin_s``.

    A frame is speech when its RMS is above ``rel_db`` below the loudest frame (and above an
    absolute floor). Speech that starts/ends right at an edge is padded with zeros so the
    margin is always there. Returns an empty array when nothing is louder than the floor.
    """
    x = np.asarray(samples, dtype=np.float64)
    rms = _frame_rms(x)
    if len(rms) == 0 or rms.max() < SILENCE_RMS:
        return np.zeros(0, dtype=np.int16)
    hop = SAMPLE_RATE // FRAMES_PER_SECOND
    on = np.flatnonzero(rms >= max(rms.max() * 10 ** (rel_db / AMPLITUDE_DB), SPEECH_FLOOR_RMS))
    margin = int(round(margin_s * SAMPLE_RATE))
    start = on[0] * hop - margin
    end = min(len(x), (on[-1] + 1) * hop) + margin
    out = np.asarray(samples[max(0, start):min(len(x), end)], dtype=np.int16)
    if start < 0 or end > len(x):  # speech right at an edge: pad so both margins exist
        out = np.concatenate([np.zeros(max(0, -start), np.int16), out, np.zeros(max(0, end - len(x)), np.int16)])
    return out


def _frame_rms(x: np.ndarray) -> np.ndarray:
    """RMS of each 10 ms frame of ``x`` (the last one zero-padded)."""
    hop = SAMPLE_RATE // FRAMES_PER_SECOND
    n = len(x) // hop + (1 if len(x) % hop else 0)
    pad = np.zeros(n * hop)
    pad[: len(x)] = x
    return np.sqrt((pad.reshape(n, hop) ** 2).mean(axis=1))


def finish(data: np.ndarray, rate: int, pitch_rate: float, what: str) -> np.ndarray:
    """An engine's float audio at ``rate`` -> 16 kHz mono int16, trimmed, peak at -6 dBFS.

    ``pitch_rate``: the factor the rate is read at (the voice's pitch where the engine has no
    native pitch control, else :data:`DEFAULT_FACTOR`). ``DataError`` for no audio or only silence.
    """
    if data.ndim == 2:
        data = data.mean(axis=1)
    if len(data) == 0:
        raise DataError(f"{what}: produced no audio")
    if pitch_rate != DEFAULT_FACTOR:
        rate = int(round(rate * pitch_rate))
    audio = trim_silence(convert(data, rate, what))
    if len(audio) == 0:
        raise DataError(f"{what}: produced only silence")
    peak = float(np.abs(audio.astype(np.float64)).max())
    out = np.rint(audio.astype(np.float64) * (PEAK_TARGET * float(INT16_MAX) / peak))
    return clip_int16(out)
