"""Audio in, detections out: Frontend -> StreamingModel -> Detector, counted in samples.

Each stage is its own stream-in/stream-out object; ``Pipeline`` only wires them and
keeps the sample clock, so the same audio gives the same detections whether it arrives
as one array, as microphone chunks of any size, or from a pipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detector import Detection, Detector, DetectorConfig
from .features import Frontend
from .geometry import StepGeometry
from .model import StreamingModel


def detector_config_for(model: StreamingModel, **overrides) -> DetectorConfig:
    """The model's recommended settings, with any non-None override applied."""
    rec = model.metadata.detector
    values = {
        "threshold": rec.get("threshold", DetectorConfig.threshold),
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


class Pipeline:
    def __init__(self, model: StreamingModel, detector_config: DetectorConfig | None = None, trace: bool = False) -> None:
        self.model = model
        self.frontend = Frontend()
        self.geometry = StepGeometry(
            kernel_frames=model.metadata.kernel_frames, stride_frames=model.metadata.stride_frames, frontend=self.frontend.config
        )
        self.detector = Detector(detector_config or detector_config_for(model), model_name=model.name)
        self.trace = StepTrace() if trace else None
        self.samples_seen = 0
        self._step = 0

    def reset(self) -> None:
        """Back to the start of a stream: frontend, model and detector all at their documented start state."""
        self.frontend.reset()
        self.model.reset()
        self.detector.reset()
        self.samples_seen = 0
        self._step = 0
        if self.trace is not None:
            self.trace = StepTrace()

    def process(self, samples: np.ndarray) -> list[Detection]:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self.samples_seen += samples.size
        probs = self.model.process(self.frontend.process(samples))
        found = []
        for p in probs:
            at = self.geometry.step_end_sample(self._step)
            self._step += 1
            if self.trace is not None:
                self.trace.samples.append(at)
                self.trace.probabilities.append(float(p))
            det = self.detector.process(float(p), at)
            if det is not None:
                found.append(det)
        return found
