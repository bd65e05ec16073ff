"""Audio in, detections out: Frontend -> StreamingModel -> Detector, counted in samples.

Each stage is its own stream-in/stream-out object; ``Pipeline`` only wires them and
keeps the sample clock, so the same audio gives the same detections whether it arrives
as one array, as microphone chunks of any size, or from a pipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .detector import Detection, Detector, DetectorConfig
from .features import Frontend
from .geometry import StepGeometry
from .model import StreamingModel

if TYPE_CHECKING:  # the verifier (and its embedding) loads only for models that have one
    from .verifier import Cascade


def detector_config_for(model: StreamingModel, verifier: "Cascade | None" = None, **overrides) -> DetectorConfig:
    """The model's recommended settings, with any non-None override applied. With a
    verifier, the threshold is the verifier's (stage 1 only opens candidates)."""
    rec = model.metadata.detector
    values = {
        "threshold": verifier.config.threshold if verifier is not None else rec.get("threshold", DetectorConfig.threshold),
        "smoothing_steps": rec.get("smoothing_steps", DetectorConfig.smoothing_steps),
        "refractory_seconds": rec.get("refractory_seconds", DetectorConfig.refractory_seconds),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DetectorConfig(**values)


@dataclass
class StepTrace:
    """Per-step record kept when tracing (for plots and --verbose)."""

    samples: list[int] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    verified: list[tuple[int, float]] = field(default_factory=list)
    """(sample, verifier score) wherever the verifier ran."""


class Pipeline:
    """Frontend -> step model [-> verifier] -> detector. With a verifier (``edge.verifier.Cascade``)
    the detector sees the verifier's scores, only where stage 1 opened a candidate."""

    def __init__(self, model: StreamingModel, detector_config: DetectorConfig | None = None, trace: bool = False,
                 verifier: "Cascade | None" = None) -> None:
        self.model = model
        self.verifier = verifier
        self.frontend = Frontend()
        self.geometry = StepGeometry(
            kernel_frames=model.metadata.kernel_frames, stride_frames=model.metadata.stride_frames, frontend=self.frontend.config
        )
        self.detector = Detector(detector_config or detector_config_for(model, verifier), model_name=model.name)
        self.trace = StepTrace() if trace else None
        self.samples_seen = 0
        self._step = 0

    def reset(self) -> None:
        """Back to the start of a stream: frontend, model and detector all at their documented start state."""
        self.frontend.reset()
        self.model.reset()
        self.detector.reset()
        if self.verifier is not None:
            self.verifier.reset()
        self.samples_seen = 0
        self._step = 0
        if self.trace is not None:
            self.trace = StepTrace()

    def process(self, samples: np.ndarray) -> list[Detection]:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self.samples_seen += samples.size
        if self.verifier is not None:
            self.verifier.process_audio(samples)
        probs = self.model.process(self.frontend.process(samples))
        found = []
        for p in probs:
            at = self.geometry.step_end_sample(self._step)
            self._step += 1
            if self.trace is not None:
                self.trace.samples.append(at)
                self.trace.probabilities.append(float(p))
            score = self._score(float(p), at)
            det = None if score is None else self.detector.process(score, at)
            if det is not None:
                found.append(det)
        return found

    def _score(self, probability: float, at: int) -> float | None:
        """What the detector sees for this step: stage 1's probability, or the verifier's
        score where it ran (None elsewhere)."""
        if self.verifier is None:
            return probability
        score = self.verifier.process(probability, at)
        if score is not None and self.trace is not None:
            self.trace.verified.append((at, score))
        return score
