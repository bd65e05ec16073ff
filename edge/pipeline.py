"""Audio in, detections out: Frontend -> StreamingModel(s) -> Detector(s), counted in samples.

Each stage is its own stream-in/stream-out object; ``Pipeline`` only wires them and
keeps the sample clock, so the same audio gives the same detections whether it arrives
as one array, as microphone chunks of any size, or from a pipe.

Several wake words share **one** front end: the features are the same for every model,
so each extra word costs only its model step (``edge-bench --models 1 2 4`` measures it).
Every ``Detection`` names its model. ``build_pipeline`` is the one way the runner, the
Wyoming service and the tests build a pipeline from a ``RunConfig``.

A word whose model has a verifier (``edge.verifier.Cascade``) gets it in its stage: the
audio goes to the verifier's ring buffer too, and the detector sees the verifier's scores,
only where stage 1 opened a candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .detector import Detection, Detector, DetectorConfig
from .errors import ConfigError
from .features import Frontend
from .geometry import StepGeometry
from .model import StreamingModel

VERIFIER_PIECE_SAMPLES = 1280
"""With a verifier, audio goes through in pieces of at most one 80 ms embedding chunk, so a
step's verification always finds its window in the verifier's audio ring."""

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .config import DetectorOverrides, RunConfig
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


class WordStage:
    """One wake word behind the shared front end: its model, [verifier,] detector and step clock."""

    def __init__(self, model: StreamingModel, detector_config: DetectorConfig | None, frontend: Frontend, trace: bool,
                 verifier: "Cascade | None" = None) -> None:
        self.model = model
        self.verifier = verifier
        self.frontend = frontend
        self.geometry = StepGeometry(
            kernel_frames=model.metadata.kernel_frames, stride_frames=model.metadata.stride_frames, frontend=frontend.config
        )
        self.detector = Detector(detector_config or detector_config_for(model, verifier), model_name=model.name)
        self.trace = StepTrace() if trace else None
        self._step = 0

    @property
    def name(self) -> str:
        return self.model.name

    def reset(self) -> None:
        self.model.reset()
        self.detector.reset()
        if self.verifier is not None:
            self.verifier.reset()
        self._step = 0
        if self.trace is not None:
            self.trace = StepTrace()

    def process_audio(self, samples: np.ndarray) -> None:
        """The samples behind the next frames (the verifier keeps the last ~2 s of them)."""
        if self.verifier is not None:
            self.verifier.process_audio(samples)

    def process(self, frames: np.ndarray) -> list[Detection]:
        found = []
        for p in self.model.process(frames):
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


class Pipeline:
    """One front end feeding one or more words. ``model`` / ``detector`` / ``trace`` are
    the first word's (the single-word API); ``words`` holds them all."""

    def __init__(
        self,
        model: StreamingModel | Sequence[StreamingModel],
        detector_config: DetectorConfig | Sequence[DetectorConfig | None] | None = None,
        trace: bool = False,
        verifier: "Cascade | None | Sequence[Cascade | None]" = None,
    ) -> None:
        models = [model] if isinstance(model, StreamingModel) else list(model)
        verifiers = list(verifier) if isinstance(verifier, Sequence) else [verifier] + [None] * (len(models) - 1)
        if not models:
            raise ConfigError("a pipeline needs at least one model")
        configs = list(detector_config) if isinstance(detector_config, Sequence) else [detector_config] * len(models)
        if len(configs) != len(models):
            raise ConfigError(f"{len(models)} models but {len(configs)} detector settings")
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"two models for the same word {duplicates[0]!r}: every word needs its own name")
        if len(verifiers) != len(models):
            raise ConfigError(f"{len(models)} models but {len(verifiers)} verifiers")
        # one frontend per distinct configuration (models may ask for different noise floors)
        self.frontends = {c: Frontend(c) for c in dict.fromkeys(m.metadata.frontend_config for m in models)}
        self.words = [WordStage(m, c, self.frontends[m.metadata.frontend_config], trace, v)
                      for m, c, v in zip(models, configs, verifiers)]
        self.samples_seen = 0

    @property
    def frontend(self) -> Frontend:
        """The first word's frontend."""
        return self.words[0].frontend

    @property
    def model(self) -> StreamingModel:
        return self.words[0].model

    @property
    def detector(self) -> Detector:
        return self.words[0].detector

    @property
    def geometry(self) -> StepGeometry:
        return self.words[0].geometry

    @property
    def verifier(self) -> "Cascade | None":
        return self.words[0].verifier

    @property
    def trace(self) -> StepTrace | None:
        return self.words[0].trace

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.words]

    def reset(self) -> None:
        """Back to the start of a stream: frontend, models and detectors all at their documented start state."""
        for frontend in self.frontends.values():
            frontend.reset()
        for word in self.words:
            word.reset()
        self.samples_seen = 0

    def process(self, samples: np.ndarray) -> list[Detection]:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        if not any(w.verifier is not None for w in self.words):
            return self._process(samples)
        # a verifier keeps only the last ~2 s of audio: feed it in pieces its steps can still see
        return [d for i in range(0, samples.size, VERIFIER_PIECE_SAMPLES) for d in self._process(samples[i: i + VERIFIER_PIECE_SAMPLES])]

    def _process(self, samples: np.ndarray) -> list[Detection]:
        self.samples_seen += samples.size
        for word in self.words:
            word.process_audio(samples)
        frames = {config: frontend.process(samples) for config, frontend in self.frontends.items()}
        found = [det for word in self.words for det in word.process(frames[word.frontend.config])]
        if len(self.words) > 1:
            found.sort(key=lambda d: d.sample)
        return found


def word_detector_config(model: StreamingModel, *overrides: DetectorOverrides | None, verifier: "Cascade | None" = None) -> DetectorConfig:
    """The model's recommended settings (the verifier's threshold, if it has one) with each
    non-None ``[detector]`` table applied in turn."""
    config = detector_config_for(model, verifier)
    for table in overrides:
        if table is not None:
            config = table.apply(config)
    return config


def build_pipeline(config: RunConfig, trace: bool = False, num_threads: int = 1, verifiers: bool = True) -> Pipeline:
    """The pipeline a ``RunConfig`` asks for: every word's model behind one front end (with
    its verifier, if it has one and ``verifiers``), each with the model's detector settings,
    then ``[detector]``, then its own ``[wake.detector]``."""
    from .verifier import cascade_for

    models: list[StreamingModel] = []
    settings: list[DetectorConfig] = []
    cascades = []
    for word in config.words():
        model = StreamingModel(word.model, num_threads=num_threads)
        models.append(model)
        cascades.append(cascade_for(model, enabled=verifiers))
        settings.append(word_detector_config(model, config.detector, word.detector, verifier=cascades[-1]))
    return Pipeline(models, settings, trace=trace, verifier=cascades)
