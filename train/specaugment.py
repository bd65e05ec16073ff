"""SpecAugment for training batches: random time and channel bands of the features set to zero.

Training-only (the device never masks): each sequence of a batch gets ``time_masks`` bands of at most
``max_frames`` frames per 10 s clip it holds and ``channel_masks`` bands of at most ``max_channels`` of the
40 channels. Zero is the frontend's floor (silence after noise reduction), so a masked band reads as a
dropout of the microphone or of a frequency region, never as a new sound. The random draws depend only on
the seed, the epoch and the batch index, so a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK_VALUE = np.float32(0.0)
"""What a masked cell becomes: the frontend's floor."""


@dataclass(frozen=True)
class SpecAugmentConfig:
    time_masks: int = 2
    """Time bands per 10 s clip of a sequence."""
    max_frames: int = 8
    """Longest time band, in 10 ms frames (80 ms)."""
    channel_masks: int = 2
    """Channel bands per sequence."""
    max_channels: int = 5
    """Widest channel band, in channels of 40."""


class SpecAugment:
    """Masks a batch (sequences, frames, channels) in place of a copy; ``process`` never changes its input."""

    def __init__(self, config: SpecAugmentConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    def process(self, x: np.ndarray, clips_per_sequence: int, epoch: int, batch: int) -> np.ndarray:
        cfg = self.config
        rng = np.random.default_rng([self.seed, epoch, batch])
        out = x.copy()
        n, frames, channels = out.shape
        for i in range(n):
            for _ in range(cfg.time_masks * clips_per_sequence):
                width = int(rng.integers(0, cfg.max_frames + 1))
                start = int(rng.integers(0, max(frames - width, 0) + 1))
                out[i, start : start + width, :] = MASK_VALUE
            for _ in range(cfg.channel_masks):
                width = int(rng.integers(0, cfg.max_channels + 1))
                start = int(rng.integers(0, max(channels - width, 0) + 1))
                out[i, :, start : start + width] = MASK_VALUE
        return out
