"""Augmentations for inserted clips and mixes: speed/pitch, gain/EQ, room reverb, SNR mixing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.audio import INT16_FULL_SCALE, SAMPLE_RATE

EPS = 1e-9
PEAK_LIMIT = 0.98


@dataclass(frozen=True)
class RirBankConfig:
    count: int = 48
    room_min_m: tuple[float, float, float] = (2.5, 2.5, 2.2)
    room_max_m: tuple[float, float, float] = (8.0, 7.0, 3.5)
    rt60_range: tuple[float, float] = (0.15, 0.8)
    max_seconds: float = 0.6


def make_rir_bank(seed: int, config: RirBankConfig = RirBankConfig()) -> list[np.ndarray]:
    """Simulated room impulse responses (pyroomacoustics image source method), deterministic."""
    import pyroomacoustics as pra

    rng = np.random.default_rng([seed, 7])
    bank = []
    for _ in range(config.count):
        dims = rng.uniform(config.room_min_m, config.room_max_m)
        rt60 = rng.uniform(*config.rt60_range)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:
            absorption, max_order = 0.5, 10
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 12))
        src = rng.uniform(0.5, dims - 0.5)
        mic = rng.uniform(0.5, dims - 0.5)
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)[: int(config.max_seconds * SAMPLE_RATE)]
        rir /= np.max(np.abs(rir)) + EPS
        bank.append(rir.astype(np.float32))
    return bank


def to_float(audio: np.ndarray) -> np.ndarray:
    return np.asarray(audio, dtype=np.float64) / INT16_FULL_SCALE


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + EPS))


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, like a tape): resampling."""
    if abs(factor - 1.0) < 1e-3:
        return x
    n_out = max(1, int(round(x.size / factor)))
    positions = np.linspace(0, x.size - 1, n_out)
    return np.interp(positions, np.arange(x.size), x)


def reverberate(x: np.ndarray, rir: np.ndarray, wet: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    y = fftconvolve(x, rir)[: x.size + rir.size // 4]
    y *= rms(x) / rms(y)
    dry = np.pad(x, (0, y.size - x.size))
    return (1.0 - wet) * dry + wet * y


def random_eq(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random first-order tilt: low-pass or high-pass blend (cheap mic/speaker colouring)."""
    from scipy.signal import lfilter

    cutoff = float(rng.uniform(300.0, 4000.0))
    alpha = float(np.exp(-2 * np.pi * cutoff / SAMPLE_RATE))
    low = lfilter([1 - alpha], [1, -alpha], x)
    mix = float(rng.uniform(-0.6, 0.6))
    if mix >= 0:
        y = (1 - mix) * x + mix * low
    else:
        y = (1 + mix) * x - mix * (x - low)
    return y, {"eq_cutoff_hz": round(cutoff, 1), "eq_mix": round(mix, 3)}


def normalise(x: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to an RMS level in dBFS, then limit peaks below full scale."""
    y = x * (10 ** (target_dbfs / 20.0) / rms(x))
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak > PEAK_LIMIT:
        y *= PEAK_LIMIT / peak
    return y
