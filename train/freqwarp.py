"""Vocal tract length perturbation on the features of training batches (frequency warping).

Between adult speakers the largest difference that pitch does not carry is the length of the vocal tract, which
moves every formant by about the same factor. This warps each clip of a training sequence as if its talker's
formants sat ``factor`` times higher (Jaitly and Hinton's VTLP, on the frontend's mel channels instead of an FFT):
the new value of channel ``i`` (centre ``f_i``) is the old spectrum read at the frequency that the piecewise-linear
warp sends to ``f_i``, interpolated between the two nearest channels. Below ``boundary_hz`` (times the factor when
the factor is under 1) the warp is ``f -> factor * f``; above it, a straight line to the Nyquist frequency, so the
band edges stay put. The factor of each clip is drawn uniformly from ``[1 - max_shift, 1 + max_shift]``.

Training-only, like the masks (``train/specaugment.py``): the device never warps. The draws depend only on the
seed, the epoch and the batch index, so a resumed run warps exactly as an uninterrupted one. ``process`` returns a
new array and never changes its input; a factor of 1 leaves a clip exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.audio import SAMPLE_RATE

FILTERBANK_LOW_HZ = 125.0
"""Lower band limit of the TFLite Micro frontend's filterbank as built into pymicro-features."""
FILTERBANK_HIGH_HZ = 7500.0
"""Upper band limit of the same filterbank."""
MEL_BREAK_HZ = 700.0
"""The mel scale the frontend uses: mel(f) = MEL_SCALE * ln(1 + f / MEL_BREAK_HZ)."""
MEL_SCALE = 1127.0
NYQUIST_HZ = SAMPLE_RATE / 2
SOURCE_DECIMALS = 9
"""Source positions are rounded to this many decimals of a channel before interpolating."""
WARP_SEED_TAG = 7
"""Keeps the warp's random stream apart from the masks' (same seed, epoch and batch)."""


@dataclass(frozen=True)
class FreqWarpConfig:
    max_shift: float = 0.1
    """Factors are drawn from [1 - max_shift, 1 + max_shift] (VTLP's usual 0.9-1.1)."""
    boundary_hz: float = 4800.0
    """Where the warp turns from ``factor * f`` to the line that keeps the Nyquist frequency fixed."""


def _mel(hz: np.ndarray) -> np.ndarray:
    return MEL_SCALE * np.log1p(hz / MEL_BREAK_HZ)


def _hz(mel: np.ndarray) -> np.ndarray:
    return MEL_BREAK_HZ * np.expm1(mel / MEL_SCALE)


def channel_centres(channels: int) -> np.ndarray:
    """Centre frequency (Hz) of each channel: equally spaced in mel between the band limits, ends excluded."""
    lo, hi = _mel(np.float64(FILTERBANK_LOW_HZ)), _mel(np.float64(FILTERBANK_HIGH_HZ))
    return _hz(lo + (np.arange(channels) + 1) * (hi - lo) / (channels + 1))


def inverse_warp(hz: np.ndarray, factor: float, boundary_hz: float) -> np.ndarray:
    """The frequency the forward warp sends to ``hz``: where a talker scaled by ``factor`` had this energy."""
    knee = boundary_hz * min(factor, 1.0)  # the forward warp's output at its bend
    below = hz / factor
    above = NYQUIST_HZ - (NYQUIST_HZ - hz) * (NYQUIST_HZ - knee / factor) / (NYQUIST_HZ - knee)
    return np.where(hz <= knee, below, above)


def warp_matrix(channels: int, factor: float, boundary_hz: float) -> np.ndarray:
    """(channels, channels) matrix M with ``warped = features @ M``: linear interpolation between channels at the
    inverse-warped centres, held at the first and last channel beyond the band."""
    centres = channel_centres(channels)
    source = np.interp(_mel(inverse_warp(centres, factor, boundary_hz)), _mel(centres), np.arange(channels, dtype=np.float64))
    source = np.round(source, SOURCE_DECIMALS)  # factor 1 gives whole channels, so the identity exactly
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, channels - 1)
    frac = source - lower
    m = np.zeros((channels, channels), dtype=np.float64)
    cols = np.arange(channels)
    np.add.at(m, (lower, cols), 1.0 - frac)
    np.add.at(m, (upper, cols), frac)
    return m.astype(np.float32)


class FreqWarp:
    """Warps a batch (sequences, frames, channels); each clip of a sequence gets its own factor."""

    def __init__(self, config: FreqWarpConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    def factors(self, n: int, epoch: int, batch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, WARP_SEED_TAG, epoch, batch])
        return rng.uniform(1.0 - self.config.max_shift, 1.0 + self.config.max_shift, size=n)

    def process(self, x: np.ndarray, clips_per_sequence: int, epoch: int, batch: int) -> np.ndarray:
        n, frames, channels = x.shape
        per_clip = frames // clips_per_sequence
        out = x.copy()
        for j, factor in enumerate(self.factors(n * clips_per_sequence, epoch, batch)):
            i, c = divmod(j, clips_per_sequence)
            end = frames if c == clips_per_sequence - 1 else (c + 1) * per_clip
            out[i, c * per_clip : end] = x[i, c * per_clip : end] @ warp_matrix(channels, float(factor), self.config.boundary_hz)
        return out
