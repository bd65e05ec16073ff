"""Stage 2: a verifier that confirms or rejects the step model's candidates.

The step model (stage 1) runs on every 40 ms step at a low *candidate* threshold. While it
is above that threshold, and for ``hold_seconds`` after, the verifier scores each new 80 ms
chunk: the last ``window`` speech embeddings (``edge.embedding``, pretrained on a large
amount of real speech) go through a small int8 head trained for the word, which gives a
logit. The verifier's score is sigmoid(score_scale x fused logit), where the fused logit is
the weighted mean of the head's logit and stage 1's peak logit over the last
``peak_seconds`` (weight ``stage1_weight``; 0: the head's logit alone), and a detection
needs that score to reach the verifier's threshold. Embeddings are computed only while a
candidate is open, and cached, so nearby candidates share them.

The verifier's settings live in a ``verifier`` block of the model's metadata JSON (the one
versioned file that names both stages)::

    "verifier": {"format": "trigger-edge-verifier", "version": 2, "head": "activate-verifier.tflite",
                 "head_sha256": "...", "window": 16, "candidate_threshold": 0.1, "hold_seconds": 0.48,
                 "threshold": 0.9, "score_scale": 0.5, "stage1_weight": 1.0, "peak_seconds": 1.0,
                 "embedding": {"package": "pyopen-wakeword", "version": "1.1.0", ...}}

Version 1 blocks (no ``stage1_weight``) score with the head alone; a version 2 block must
name both fusion settings, so an older runner refuses it instead of misreading it.

An enrolled model (``edge-enroll``) also names, in ``verifier.enrollment``, a head adapted to a
household's takes and a speaker gate (``edge.speaker``): ``EnrolledHead`` lets the adapted head
confirm what the original does not only when the audio before the candidate sounds like the takes.

``Cascade`` is the stream object (stage-1 probabilities in, verifier scores out);
``cascade_track`` computes the same scores from whole-clip arrays, and a test checks both
agree.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedding import (CHUNK_SAMPLES, EMBEDDING_DIM, EmbeddingFiles, EmbeddingStream, SpeechEmbedding, chunk_end_sample,
                        find_embedding_files)
from .errors import ModelError
from .speaker import SpeakerEncoder, SpeakerGate, SpeakerGateConfig, samples_before

VERIFIER_FORMAT = "trigger-edge-verifier"
VERIFIER_VERSION = 2
"""Written with fusion (``stage1_weight`` > 0); ``HEAD_ONLY_VERSION`` blocks are still read."""
HEAD_ONLY_VERSION = 1
FUSION_KEYS = ("stage1_weight", "peak_seconds")
STAGE1_LOGIT_LIMIT = 16.0
"""Stage 1's probability becomes a logit clipped to +-16 (p within 1e-7 of 0 or 1)."""
PEAK_SECONDS = 1.0
"""Stage 1's peak logit is taken over the steps of the last second (a word's stage-1 peak
comes 0-0.5 s after its end, before or while the verifier runs)."""
MAX_PEAK_SECONDS = 10.0
MAX_HOLD_SECONDS = 10.0
MAX_STAGE1_WEIGHT = 100.0
"""Bounds of the fusion and hold settings a metadata file may ask for (beyond them: refused, not misread)."""
HEAD_INPUT = "embeddings"
HEAD_OUTPUT = "logit"


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def stage1_logit(probability: float) -> float:
    """Stage 1's probability as a logit, clipped to +-``STAGE1_LOGIT_LIMIT``."""
    if probability <= 0.0:
        return -STAGE1_LOGIT_LIMIT
    if probability >= 1.0:
        return STAGE1_LOGIT_LIMIT
    return min(max(math.log(probability / (1.0 - probability)), -STAGE1_LOGIT_LIMIT), STAGE1_LOGIT_LIMIT)


@dataclass(frozen=True)
class VerifierConfig:
    """When candidates open and what confirms them."""

    candidate_threshold: float = 0.1
    """Stage-1 probability that opens a candidate (recall first)."""
    threshold: float = 0.5
    """Verifier score (sigmoid of the head's logit) that confirms a detection."""
    hold_seconds: float = 0.48
    """A candidate stays open this long after stage 1 last reached the candidate threshold."""
    window: int = 16
    """Embeddings (80 ms each) the head reads."""
    score_scale: float = 1.0
    """The score is sigmoid(score_scale x logit). Set at training so that confident words and
    the loudest false accepts keep distinct scores below 1 (a head's logits reach +-30: its
    plain sigmoid would round them all to 1.0, leaving no threshold between them). A
    monotonic map: decisions depend only on the logit against the threshold's logit."""
    stage1_weight: float = 0.0
    """Weight of stage 1's peak logit beside the head's logit (weight 1) in the fused logit.
    0: the head alone. Measured on the suite (wildfire, voyager; models/README.md): 1, the
    plain mean of the two logits, cuts the cascade's FRR at 0.5 FA/h from 13.0 / 26.9 % to
    11.4 / 14.8 %: the two stages hear different things, so their false accepts rarely meet."""
    peak_seconds: float = PEAK_SECONDS
    """Stage 1's peak logit is its highest over the steps of this last stretch of audio."""

    def __post_init__(self) -> None:
        for name in ("candidate_threshold", "threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"verifier {name.replace('_', ' ')} must be between 0 and 1, got {value}")
        if not 0.0 <= self.hold_seconds <= MAX_HOLD_SECONDS or self.window < 1:
            raise ValueError(f"verifier hold must be within [0, {MAX_HOLD_SECONDS:g}] s and window >= 1, got {self.hold_seconds}, {self.window}")
        if not 0.0 < self.score_scale < math.inf:
            raise ValueError(f"verifier score scale must be a positive number, got {self.score_scale}")
        if not 0.0 <= self.stage1_weight <= MAX_STAGE1_WEIGHT or not 0.0 < self.peak_seconds <= MAX_PEAK_SECONDS:
            raise ValueError(f"verifier stage-1 weight must be within [0, {MAX_STAGE1_WEIGHT:g}] and peak seconds within "
                             f"(0, {MAX_PEAK_SECONDS:g}], got {self.stage1_weight}, {self.peak_seconds}")

    @property
    def peak_samples(self) -> int:
        from .audio import SAMPLE_RATE

        return int(round(self.peak_seconds * SAMPLE_RATE))

    def fused_logit(self, head_logit: float, peak_logit: float) -> float:
        """The weighted mean of the head's logit and stage 1's peak logit."""
        if self.stage1_weight == 0.0:
            return head_logit
        return (head_logit + self.stage1_weight * peak_logit) / (1.0 + self.stage1_weight)

    def score(self, head_logit: float, peak_logit: float) -> float:
        """The verifier's score of one candidate chunk."""
        return sigmoid(self.score_scale * self.fused_logit(head_logit, peak_logit))

    def scores(self, head_logits: np.ndarray, peak_logits: np.ndarray | None) -> np.ndarray:
        """``score`` of many chunks; ``peak_logits`` None: the head alone (stage 2 running continuously)."""
        heads = np.asarray(head_logits, np.float64).tolist()
        if peak_logits is None:
            return np.array([sigmoid(self.score_scale * h) for h in heads], np.float64)
        return np.array([self.score(h, p) for h, p in zip(heads, np.asarray(peak_logits, np.float64).tolist())], np.float64)

    @property
    def hold_samples(self) -> int:
        from .audio import SAMPLE_RATE

        return int(round(self.hold_seconds * SAMPLE_RATE))


@dataclass(frozen=True)
class VerifierSpec:
    """The metadata block, validated."""

    head: Path
    head_sha256: str
    config: VerifierConfig
    embedding: dict

    @classmethod
    def from_metadata(cls, block: dict, model_path: Path) -> "VerifierSpec":
        source = f"{model_path.with_suffix('.json')}: verifier"
        if not isinstance(block, dict) or block.get("format") != VERIFIER_FORMAT:
            raise ModelError(f"{source}: not a {VERIFIER_FORMAT} block")
        version = block.get("version")
        if version not in (HEAD_ONLY_VERSION, VERIFIER_VERSION):
            raise ModelError(f"{source}: version {version} not supported (need {HEAD_ONLY_VERSION} or {VERIFIER_VERSION})")
        try:
            fusion = {k: float(block[k]) for k in FUSION_KEYS} if version == VERIFIER_VERSION else {}
            config = VerifierConfig(candidate_threshold=float(block["candidate_threshold"]), threshold=float(block["threshold"]),
                                    hold_seconds=float(block["hold_seconds"]), window=int(block["window"]),
                                    score_scale=float(block.get("score_scale", 1.0)), **fusion)
            return cls(model_path.parent / str(block["head"]), str(block["head_sha256"]), config, dict(block["embedding"]))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelError(f"{source}: incomplete or invalid ({exc})") from None


class VerifierHead:
    """The int8 head: (window, EMBEDDING_DIM) embeddings in, one logit out."""

    def __init__(self, path: Path, sha256: str | None = None, window: int | None = None, num_threads: int = 1,
                 score_scale: float = 1.0) -> None:
        from .model import side_interpreter

        self.score_scale = score_scale
        self._interp = side_interpreter(path, sha256, "verifier head", "the model's metadata names it in verifier.head", num_threads)
        inp = self._interp.get_input_details()[0]
        self.window = int(inp["shape"][1])
        if tuple(inp["shape"]) != (1, self.window, EMBEDDING_DIM) or (window is not None and window != self.window):
            raise ModelError(f"{path}: verifier head input {tuple(inp['shape'])} does not fit (1, {window}, {EMBEDDING_DIM})")
        self._in = inp["index"]
        self._out = self._interp.get_output_details()[0]["index"]

    def logit(self, embeddings: np.ndarray) -> float:
        self._interp.set_tensor(self._in, np.asarray(embeddings, np.float32).reshape(1, self.window, EMBEDDING_DIM))
        self._interp.invoke()
        return float(self._interp.get_tensor(self._out).reshape(-1)[0])

    def score(self, embeddings: np.ndarray) -> float:
        """The head alone: sigmoid(score_scale x logit)."""
        return sigmoid(self.score_scale * self.logit(embeddings))

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """Logits of many windows (n, window, EMBEDDING_DIM), one call each (as on the device)."""
        return np.array([self.logit(w) for w in windows], np.float64)


class Stage1Peak:
    """Stage 1's highest logit over the last ``peak_seconds`` of steps.

    State: the (sample, logit) of the steps in that stretch, oldest first, kept as a
    decreasing run (a step that a later, higher one outranks can never be the peak again).
    ``reset()``: no steps seen (the peak is then ``-STAGE1_LOGIT_LIMIT``).
    """

    def __init__(self, config: VerifierConfig) -> None:
        self.span = config.peak_samples
        self.reset()

    def reset(self) -> None:
        self._run: deque[tuple[int, float]] = deque()

    def process(self, probability: float, sample: int) -> float:
        """Add the step ending at ``sample``; the peak logit over (sample - span, sample]."""
        logit = stage1_logit(probability)
        while self._run and self._run[-1][1] <= logit:
            self._run.pop()
        self._run.append((sample, logit))
        while self._run[0][0] <= sample - self.span:
            self._run.popleft()
        return self._run[0][1]


def peak_logits(step_samples: np.ndarray, probs: np.ndarray, positions: np.ndarray, config: VerifierConfig) -> np.ndarray:
    """Whole-clip version of ``Stage1Peak``: the peak logit at each of ``positions`` (step samples)."""
    steps = np.asarray(step_samples, np.int64)
    logits = np.array([stage1_logit(p) for p in np.asarray(probs, np.float64).tolist()])
    lo = np.searchsorted(steps, np.asarray(positions, np.int64) - config.peak_samples, side="right")
    hi = np.searchsorted(steps, positions, side="right")
    return np.array([logits[a:b].max() if b > a else -STAGE1_LOGIT_LIMIT for a, b in zip(lo.tolist(), hi.tolist())], np.float64)


@dataclass
class Candidate:
    """The verifier's view of one step: its score, or None when it did not run."""

    score: float | None
    chunk: int


class CandidateGate:
    """When the verifier runs: stage-1 probabilities in, the chunk to verify (or None) out.

    A candidate opens when stage 1 reaches the candidate threshold and stays open
    ``hold_seconds`` after it last did; while open, each new whole 80 ms chunk is verified
    once. State: the sample until which the candidate is open and the last chunk verified;
    ``reset()``: no candidate, nothing verified. ``Cascade`` (the device) and
    ``candidate_chunks`` (whole clips) both use it, so they verify the same chunks.
    """

    def __init__(self, config: VerifierConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._open_until = -1
        self._last_chunk = -1

    def process(self, probability: float, sample: int) -> int | None:
        if probability >= self.config.candidate_threshold:
            self._open_until = sample + self.config.hold_samples
        chunk = verify_chunk(sample)
        if sample > self._open_until or chunk <= self._last_chunk or chunk < 0:
            return None
        self._last_chunk = chunk
        return chunk


class Cascade:
    """Stage-1 probability per step in, verifier score out (when it ran).

    State: the embedding stream (audio ring + caches), the candidate gate and stage 1's peak.
    ``reset()``: no audio, no candidate, no stage-1 steps.
    """

    def __init__(self, head: VerifierHead, config: VerifierConfig, embedding: SpeechEmbedding | None = None,
                 enrolled: "EnrolledHead | None" = None) -> None:
        self.head = head
        self.config = config
        self.enrolled = enrolled
        self.stream = EmbeddingStream(embedding or SpeechEmbedding(), config.window)
        self.gate = CandidateGate(config)
        self.peak = Stage1Peak(config)
        self.verifications = 0
        self.reset()

    def reset(self) -> None:
        self.stream.reset()
        self.gate.reset()
        self.peak.reset()

    def process_audio(self, samples: np.ndarray) -> None:
        """Every sample the step model sees also goes here (before its steps are scored)."""
        self.stream.process(samples)

    def process(self, probability: float, sample: int) -> float | None:
        """Stage 1's probability of the step ending at ``sample``; the verifier's score if it ran."""
        peak = self.peak.process(probability, sample)
        chunk = self.gate.process(probability, sample)
        if chunk is None:
            return None
        self.verifications += 1
        window = self.stream.window_at(chunk)
        score = self.config.score(self.head.logit(window), peak)
        if self.enrolled is None or score >= self.enrolled.threshold:  # the original confirms: the adapted head is not asked
            return score
        adapted = self.config.score(self.enrolled.head.logit(window), peak)
        return self.enrolled.choose(score, adapted, lambda n: self.stream.audio_before(sample, n))


def verify_chunk(sample: int) -> int:
    """The newest whole 80 ms chunk at a step ending at ``sample`` (-1: none yet)."""
    return sample // CHUNK_SAMPLES - 1


def candidate_chunks(step_samples: np.ndarray, probs: np.ndarray, config: VerifierConfig) -> tuple[np.ndarray, np.ndarray]:
    """Whole-clip version of the gate: (step samples, chunk indices) where the verifier runs."""
    gate = CandidateGate(config)
    pairs = [(sample, chunk) for sample, p in zip(np.asarray(step_samples).tolist(), np.asarray(probs).tolist())
             if (chunk := gate.process(p, sample)) is not None]
    positions, chunks = zip(*pairs) if pairs else ((), ())
    return np.asarray(positions, np.int64), np.asarray(chunks, np.int64)


def cascade_track(step_samples: np.ndarray, probs: np.ndarray, config: VerifierConfig, logit_chunk) -> tuple[np.ndarray, np.ndarray]:
    """Whole-clip version of ``Cascade``: the (sample, score) pairs where the verifier ran.

    ``logit_chunk(chunks)`` returns the head's logits of those chunk indices."""
    positions, chunks = candidate_chunks(step_samples, probs, config)
    if not chunks.size:
        return positions, np.zeros(0)
    return positions, config.scores(logit_chunk(chunks), peak_logits(step_samples, probs, positions, config))


def continuous_positions(n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2 alone: every whole chunk of a stream, (chunk indices, end samples)."""
    chunks = np.arange(n_samples // CHUNK_SAMPLES)
    return chunks, np.array([chunk_end_sample(int(c)) for c in chunks], np.int64)


def load_verifier(model_path: Path, block: dict, files: EmbeddingFiles | None = None) -> tuple[VerifierHead, VerifierConfig, SpeechEmbedding]:
    """Check and load what a model's ``verifier`` block names; a clear ModelError otherwise."""
    spec = VerifierSpec.from_metadata(block, model_path)
    files = files or find_embedding_files()
    files.check(spec.embedding, str(model_path.with_suffix(".json")))
    head = VerifierHead(spec.head, spec.head_sha256, spec.config.window, score_scale=spec.config.score_scale)
    return head, spec.config, SpeechEmbedding(files)


def cascade_for(model, enabled: bool = True) -> Cascade | None:
    """The verifier a step model's metadata names (None: it has none, or ``enabled`` is False)."""
    block = model.metadata.extra.get("verifier")
    if block is None or not enabled:
        return None
    head, config, embedding = load_verifier(Path(model.path), block)
    return Cascade(head, config, embedding, load_enrolled(Path(model.path), block, config))


@dataclass(frozen=True)
class EnrollmentSpec:
    """An enrolled model's ``verifier.enrollment`` block, validated: the adapted head and its speaker gate."""

    head: Path
    head_sha256: str
    encoder: Path
    encoder_sha256: str
    gate: SpeakerGateConfig

    @classmethod
    def from_metadata(cls, block: dict, model_path: Path) -> "EnrollmentSpec | None":
        """None: no enrollment, or one from before the speaker gate (its adapted head is ``head`` itself)."""
        enrollment = block.get("enrollment") if isinstance(block, dict) else None
        if not isinstance(enrollment, dict) or "speaker_gate" not in enrollment:
            return None
        source = f"{model_path.with_suffix('.json')}: verifier.enrollment"
        try:
            gate = enrollment["speaker_gate"]
            config = SpeakerGateConfig(voice=tuple(float(v) for v in gate["voice"]), threshold=float(gate["threshold"]),
                                       segment_seconds=float(gate["segment_seconds"]))
            return cls(model_path.parent / str(enrollment["head"]), str(enrollment["head_sha256"]),
                       model_path.parent / str(gate["encoder"]), str(gate["encoder_sha256"]), config)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelError(f"{source}: incomplete or invalid ({exc})") from None


class EnrolledHead:
    """The adapted head of an enrolled model behind its speaker gate.

    Where the original head confirms a candidate, its score stands. Where it does not and the
    adapted head alone would confirm it (its score at or above the verifier's threshold), the
    speaker gate hears the audio before the candidate: the enrolled voice gets the adapted
    head's score, anyone else keeps the original's. So the adapted head can add detections
    only for the enrolled voice, and the gate runs only at those rare moments. ``threshold`` is
    the model's verifier threshold, the one the gate was set for; ``edge-run --threshold`` moves
    the detector's, not this one.
    """

    def __init__(self, head: VerifierHead, gate: SpeakerGate, threshold: float) -> None:
        self.head = head
        self.gate = gate
        self.threshold = threshold
        self.checks = 0
        """How often the gate has run (its cost counter)."""
        self.passed = 0

    def choose(self, original: float, adapted: float, segment) -> float:
        """The score to report; ``segment(n)`` gives the n samples before the candidate (int16)."""
        if original >= self.threshold or adapted < self.threshold:
            return original
        self.checks += 1
        if not self.gate.passes(segment(self.gate.config.segment_samples)):
            return original
        self.passed += 1
        return adapted

    def choose_track(self, positions: np.ndarray, original: np.ndarray, adapted: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """Whole-clip version of ``choose``: the scores of a clip's candidates at ``positions``."""
        def before(end: int):
            return lambda count: samples_before(audio, end, count)

        return np.array([self.choose(o, a, before(int(p))) for p, o, a in
                         zip(np.asarray(positions).tolist(), np.asarray(original).tolist(), np.asarray(adapted).tolist())], np.float64)


def load_enrolled(model_path: Path, block: dict, config: VerifierConfig) -> EnrolledHead | None:
    """The adapted head and speaker gate an enrolled model's metadata names (None: not enrolled that way)."""
    spec = EnrollmentSpec.from_metadata(block, model_path)
    if spec is None:
        return None
    head = VerifierHead(spec.head, spec.head_sha256, config.window, score_scale=config.score_scale)
    return EnrolledHead(head, SpeakerGate(SpeakerEncoder(spec.encoder, spec.encoder_sha256), spec.gate), config.threshold)
