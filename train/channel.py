"""Channel effects applied to a whole mix: what a cheap microphone, a telephone line or an
overdriven input does to everything the device hears.

Each function takes float audio at 16 kHz and a seeded RNG, returns ``(audio, record)``
and draws its parameters from the ranges of a frozen :class:`ChannelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.audio import SAMPLE_RATE, resample

TELEPHONE_RATE = 8000
MULAW_MU = 255.0
FILTER_ORDER = 4


@dataclass(frozen=True)
class ChannelConfig:
    telephone_prob: float = 0.15
    telephone_band_hz: tuple[tuple[float, float], tuple[float, float]] = ((200.0, 400.0), (3000.0, 3600.0))
    mulaw_prob: float = 0.6
    mic_prob: float = 0.3
    mic_highpass_hz: tuple[float, float] = (60.0, 300.0)
    mic_lowpass_hz: tuple[float, float] = (3500.0, 7600.0)
    clip_prob: float = 0.03
    clip_drive: tuple[float, float] = (1.5, 4.0)
    """Peak over the clipping level: 1.5 = the loudest third clipped off."""


def _bandpass(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(FILTER_ORDER, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x)


def mulaw(x: np.ndarray) -> np.ndarray:
    """G.711-style 8-bit mu-law companding: encode to 256 levels, decode (input in [-1, 1])."""
    y = np.sign(x) * np.log1p(MULAW_MU * np.minimum(np.abs(x), 1.0)) / np.log1p(MULAW_MU)
    q = np.round((y + 1.0) * 127.5) / 127.5 - 1.0
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(MULAW_MU)) / MULAW_MU


def telephone(x: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig) -> tuple[np.ndarray, dict]:
    """A telephone line: band-limited, 8 kHz, optionally mu-law coded; back at 16 kHz."""
    low = float(rng.uniform(*cfg.telephone_band_hz[0]))
    high = float(rng.uniform(*cfg.telephone_band_hz[1]))
    y = resample(_bandpass(x, low, high), SAMPLE_RATE, TELEPHONE_RATE)
    coded = bool(rng.random() < cfg.mulaw_prob)
    if coded:
        peak = float(np.abs(y).max()) or 1.0
        y = mulaw(y / peak) * peak
    y = resample(y, TELEPHONE_RATE, SAMPLE_RATE)[: x.size]
    y = np.pad(y, (0, x.size - y.size))
    return y, {"telephone_hz": [round(low), round(high)], "mulaw": coded}


def microphone(x: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig) -> tuple[np.ndarray, dict]:
    """A cheap microphone's band: high-pass (small capsule) and low-pass (its roll-off)."""
    low = float(rng.uniform(*cfg.mic_highpass_hz))
    high = float(rng.uniform(*cfg.mic_lowpass_hz))
    return _bandpass(x, low, high), {"mic_hz": [round(low), round(high)]}


def hard_clip(x: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig) -> tuple[np.ndarray, dict]:
    """An overdriven input: everything above peak/drive is cut flat."""
    drive = float(rng.uniform(*cfg.clip_drive))
    level = (float(np.abs(x).max()) or 1.0) / drive
    return np.clip(x, -level, level), {"clip_drive": round(drive, 2)}


def apply_channel(x: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig) -> tuple[np.ndarray, dict]:
    """Each effect with its probability, in signal order: microphone or telephone, then clipping."""
    record: dict = {}
    if rng.random() < cfg.telephone_prob:
        x, info = telephone(x, rng, cfg)
        record.update(info)
    elif rng.random() < cfg.mic_prob:
        x, info = microphone(x, rng, cfg)
        record.update(info)
    if rng.random() < cfg.clip_prob:
        x, info = hard_clip(x, rng, cfg)
        record.update(info)
    return x, record
