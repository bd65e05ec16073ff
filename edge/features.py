"""The one fixed-point spectrogram, shared by training and the device.

It wraps the TFLite Micro audio frontend (``pymicro-features``): 16 kHz int16 in,
30 ms Hann window, 10 ms step, 40 mel channels, noise reduction, PCAN gain control and
log scale, all in integer arithmetic. The frontend reports each channel as a float equal
to ``uint16_value / FEATURE_SCALE``; we turn it back into the exact integer, so frames
are ``uint16`` and tests can compare them bit for bit.

``Frontend`` is the streaming object (any chunk size in, whole frames out);
``compute_features`` is the batch API for whole clips. Both give identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .audio import SAMPLE_RATE
from .level import LEVEL_KEY, LevelConfig, LevelControl
from .noise_floor import NoiseFloor, NoiseFloorConfig

FEATURE_SCALE = 25.6
"""pymicro-features returns ``value / 25.6`` (i.e. ``value * 0.0390625``) for each uint16 channel."""
MODEL_INPUT_SCALE = 1.0 / FEATURE_SCALE
"""Integer feature -> model input float (the scale microWakeWord uses: values ~0..26)."""
NOISE_FLOOR_KEY = "noise_floor_dbfs"
"""The metadata key (in the model JSON's ``frontend`` block) of the noise floor; absent = none."""


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the TFLite Micro frontend as built into pymicro-features (fixed), the
    noise floor added before it (``edge.noise_floor``; None: none, as for models made before it)
    and the level control before that (``edge.level``; None: none)."""

    sample_rate: int = SAMPLE_RATE
    window_ms: int = 30
    step_ms: int = 10
    channels: int = 40
    noise_floor_dbfs: float | None = None
    level: LevelConfig | None = None

    @property
    def step_samples(self) -> int:
        return self.sample_rate * self.step_ms // 1000

    @property
    def window_samples(self) -> int:
        return self.sample_rate * self.window_ms // 1000

    def frames_for(self, n_samples: int) -> int:
        """How many frames a clip of ``n_samples`` samples yields (batch or streaming)."""
        if n_samples < self.window_samples:
            return 0
        return (n_samples - self.window_samples) // self.step_samples + 1

    def to_dict(self) -> dict:
        out = {
            "name": "tflite-micro-frontend",
            "implementation": "pymicro-features",
            "sample_rate": self.sample_rate,
            "window_ms": self.window_ms,
            "step_ms": self.step_ms,
            "channels": self.channels,
            "feature_scale": FEATURE_SCALE,
        }
        if self.noise_floor_dbfs is not None:
            out[NOISE_FLOOR_KEY] = self.noise_floor_dbfs
        if self.level is not None:
            out[LEVEL_KEY] = self.level.to_dict()
        return out

    def with_noise_floor(self, level_dbfs: float | None) -> "FrontendConfig":
        """The same frontend with another noise floor (None: none)."""
        return replace(self, noise_floor_dbfs=None if level_dbfs is None else float(level_dbfs))

    def with_level(self, level: LevelConfig | None) -> "FrontendConfig":
        """The same frontend with another level control (None: none)."""
        return replace(self, level=level)


DEFAULT_FRONTEND = FrontendConfig()


class Frontend:
    """Streaming fixed-point spectrogram.

    State: the frontend's internal state (noise estimate, PCAN, window buffer), the noise
    floor's stream position, the level control's (if any) and up to one step of not-yet-consumed
    samples. ``reset()`` returns to the state of a freshly created frontend (zero noise estimate,
    empty window, floor at position 0, level control as new), so the output after ``reset()`` equals the output of a new object:
    deterministic (the floor is a fixed table, not a random generator).
    """

    def __init__(self, config: FrontendConfig = DEFAULT_FRONTEND) -> None:
        from pymicro_features import MicroFrontend

        self.config = config
        self._frontend = MicroFrontend()
        self._floor = NoiseFloor(NoiseFloorConfig(config.noise_floor_dbfs))
        self._level = None if config.level is None else LevelControl(config.level)
        self._pending = np.zeros(0, dtype=np.int16)

    def reset(self) -> None:
        self._frontend.reset()
        self._floor.reset()
        if self._level is not None:
            self._level.reset()
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed int16 samples (any count); return the new frames, shape (n, channels), uint16."""
        if self._level is not None:
            samples = self._level.process(samples)
        samples = self._floor.process(samples)
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        step = self.config.step_samples
        usable = (samples.size // step) * step
        frames = []
        data = samples[:usable].astype("<i2").tobytes()
        step_bytes = step * 2
        process = self._frontend.process_samples
        for offset in range(0, len(data), step_bytes):
            out = process(data[offset : offset + step_bytes])
            if out.features:
                frames.append(out.features)
        self._pending = samples[usable:].copy()
        if not frames:
            return np.zeros((0, self.config.channels), dtype=np.uint16)
        return np.rint(np.asarray(frames, dtype=np.float64) * FEATURE_SCALE).astype(np.uint16)


def compute_features(samples: np.ndarray, config: FrontendConfig = DEFAULT_FRONTEND) -> np.ndarray:
    """Batch API: the frames of a whole clip from a fresh frontend, shape (n, channels), uint16."""
    return Frontend(config).process(samples)


def to_model_input(frames: np.ndarray) -> np.ndarray:
    """Integer frames -> float32 model input."""
    return np.asarray(frames, dtype=np.float32) * np.float32(MODEL_INPUT_SCALE)
