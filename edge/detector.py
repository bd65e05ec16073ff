"""Probabilities in, detections out: smoothing, threshold and refractory period.

Time is counted in audio samples (never wall clock), so a WAV file, a pipe and a live
microphone give the same detections for the same audio.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .audio import SAMPLE_RATE

MAX_SMOOTHING_STEPS = 1000
"""40 s of steps: more is a typo, and a huge value would not fit a window."""
MAX_REFRACTORY_SECONDS = 3600.0
SCORE_DIGITS = 6
"""Decimals of a score in a JSON line: enough that a harness sweeping thresholds on the
output sees the scores the detector compared (4 decimals merged everything above 0.99995)."""


@dataclass(frozen=True)
class Detection:
    """One firing of the detector."""

    sample: int
    """Audio sample index (from the start of the stream) at the end of the firing step."""
    score: float
    """Smoothed probability that crossed the threshold."""
    model: str = ""
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return self.sample / self.sample_rate

    def to_dict(self) -> dict:
        return {"time": round(self.seconds, 3), "sample": self.sample, "score": round(self.score, SCORE_DIGITS), "model": self.model}


@dataclass(frozen=True)
class DetectorConfig:
    """Decision settings (the model's metadata recommends values; the CLI may override)."""

    threshold: float = 0.5
    smoothing_steps: int = 1
    """Mean over this many most recent step probabilities (1 = no smoothing)."""
    refractory_seconds: float = 3.0
    """After a detection, ignore this long (the assignment: 75 of 1375 steps = 0.55 s of
    its 10 s clip; we default to seconds of real time so one word never fires twice)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 1 <= self.smoothing_steps <= MAX_SMOOTHING_STEPS:
            raise ValueError(f"smoothing must be from 1 to {MAX_SMOOTHING_STEPS} steps, got {str(self.smoothing_steps)[:40]}")
        if not (math.isfinite(self.refractory_seconds) and 0 <= self.refractory_seconds <= MAX_REFRACTORY_SECONDS):
            raise ValueError(f"refractory period must be from 0 to {MAX_REFRACTORY_SECONDS:g} s, got {self.refractory_seconds}")


class Detector:
    """Stream of (probability, sample position) -> optional Detection.

    State: the last ``smoothing_steps`` probabilities and the sample position of the last
    detection. ``reset()`` empties both: the next firing is allowed at once.
    """

    def __init__(self, config: DetectorConfig, model_name: str = "", sample_rate: int = SAMPLE_RATE) -> None:
        self.config = config
        self.model_name = model_name
        self.sample_rate = sample_rate
        self._refractory_samples = int(round(config.refractory_seconds * sample_rate))
        self._window: deque[float] = deque(maxlen=config.smoothing_steps)
        self._last: int | None = None

    def reset(self) -> None:
        self._window.clear()
        self._last = None

    def smoothed(self) -> float:
        return sum(self._window) / len(self._window) if self._window else 0.0

    def process(self, probability: float, sample: int) -> Detection | None:
        """Feed the probability of the step ending at audio sample ``sample``."""
        self._window.append(float(probability))
        score = self.smoothed()
        if score < self.config.threshold:
            return None
        if self._last is not None and sample - self._last < self._refractory_samples:
            return None
        self._last = sample
        return Detection(sample=sample, score=score, model=self.model_name, sample_rate=self.sample_rate)
