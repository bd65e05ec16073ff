"""The streaming step model on the device: a ``.tflite`` plus its versioned JSON metadata.

``StreamingModel`` takes frontend frames (uint16, any count per call) and returns one
probability per completed 40 ms output step, carrying the conv input window and both GRU
states between calls as explicit float arrays. It produces exactly the steps of the Keras
sequence model: the first output needs ``kernel_frames`` frames, then one every
``stride_frames`` frames. ``reset()`` returns to the documented start state: zero GRU
states, empty conv window, no frames seen.

Interpreters, in order: ``ai_edge_litert`` (LiteRT), ``tflite_runtime``, ``tensorflow.lite``.

Before the interpreter sees a file (it trusts its input: a flipped bit can crash the
process), the metadata is validated (types and ranges of every field), the file's sha256
must equal the metadata's ``tflite_sha256``, and the FlatBuffer's structure is walked
(``edge.tflite_check``). ``edge-convert`` records the sha256; a model converted before it
did (no ``tflite_sha256``) still loads, with the structure check only, and says so in one
log line: re-run ``edge-convert`` (or add the key) to get the full check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detector import MAX_REFRACTORY_SECONDS, MAX_SMOOTHING_STEPS
from .errors import ModelError
from .features import DEFAULT_FRONTEND, MODEL_INPUT_SCALE, NOISE_FLOOR_KEY, FrontendConfig
from .level import LEVEL_KEY, LevelConfig
from .native import quiet
from .noise_floor import MAX_LEVEL_DBFS, MIN_LEVEL_DBFS
from .tflite_check import check_tflite

LOG = logging.getLogger(__name__)

METADATA_FORMAT = "trigger-edge-model"
METADATA_VERSION = 1
TFLITE_MAGIC = b"TFL3"
TFLITE_MAGIC_OFFSET = 4
DEFAULT_MODEL_NAME = "activate"
INPUT_NAMES = ("frames", "conv_state", "gru1_state", "gru2_state")
STATE_OUTPUTS = {"conv_state": "conv_state_out", "gru1_state": "gru1_state_out", "gru2_state": "gru2_state_out"}
PROBABILITY_OUTPUT = "probability"
LOGIT_OUTPUT = "logit"
OUTPUT_KINDS = (PROBABILITY_OUTPUT, LOGIT_OUTPUT)
"""What the step model's score tensor holds. ``logit`` (models converted since the real-voice
benchmark): the int8 body ends before the sigmoid, which runs in float on the host, so the
int8 grid no longer saturates near 1 (an int8 probability tops out at 0.996 and leaves no
thresholds between there and 1). ``probability``: older models, read as they are."""


SHA256_KEY = "tflite_sha256"
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_FRAMES = 1000
"""Upper bound for kernel / stride / conv-state frames (the shipped model: 15 / 4 / 11)."""
MAX_CHANNELS = 1024
MAX_GRU_UNITS = 4096
GRU_LAYERS = 2
MAX_WORD_CHARS = 200
MAX_METADATA_BYTES = 1 << 20
"""A real metadata file is ~1 KB; a huge one is not read into memory."""
DETECTOR_KEYS = ("threshold", "smoothing_steps", "refractory_seconds")


def _number(source: str, name: str, value, low: float, high: float, integer: bool = False) -> float | int:
    """``value`` as a finite number within [low, high] (an int when ``integer``), else ModelError."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ModelError(f"{source}: {name} must be {kind} from {low:g} to {high:g}, got {str(value)[:40]!r}")
    return value


def default_model_path() -> Path:
    """The model shipped with the package (``models/activate.tflite`` in the repository)."""
    from importlib import resources

    return Path(str(resources.files("edge.models").joinpath(f"{DEFAULT_MODEL_NAME}.tflite")))


def is_shipped_name(value: str) -> bool:
    """True for a bare name of a model that ships with the package ("activate")."""
    if not value or "/" in value or Path(value).suffix:
        return False
    return default_model_path().with_name(f"{value}.tflite").is_file()


def resolve_model_path(path: str | Path | None) -> Path:
    """A model file path; ``None`` or a bare shipped name ("activate") gives the shipped file."""
    if path is None:
        return default_model_path()
    if isinstance(path, str) and is_shipped_name(path):
        return default_model_path().with_name(f"{path}.tflite")
    return Path(path)


def shipped_models() -> list[Path]:
    """Every model that ships with the package."""
    return sorted(default_model_path().parent.glob("*.tflite"))


def metadata_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


@dataclass(frozen=True)
class ModelMetadata:
    word: str
    frontend: dict
    kernel_frames: int
    stride_frames: int
    channels: int
    conv_state_frames: int
    gru_units: tuple[int, int]
    input_scale: float
    detector: dict
    quantization: str = "int8"
    output: str = PROBABILITY_OUTPUT
    tflite_sha256: str | None = None
    """sha256 (hex) of the .tflite this metadata describes; None for models converted before it was recorded."""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "ModelMetadata":
        if data.get("format") != METADATA_FORMAT:
            raise ModelError(f"{source}: not a trigger-edge model metadata file")
        if data.get("version") != METADATA_VERSION:
            raise ModelError(f"{source}: metadata version {data.get('version')} not supported (need {METADATA_VERSION})")
        if data.get("output", PROBABILITY_OUTPUT) not in OUTPUT_KINDS:
            raise ModelError(f"{source}: output {data.get('output')!r} is not one of {', '.join(OUTPUT_KINDS)}")
        missing = [k for k in ("word", "frontend", "stream", "detector") if k not in data]
        if missing:
            raise ModelError(f"{source}: incomplete model metadata (missing {', '.join(missing)})")
        word, frontend, stream, detector = data["word"], data["frontend"], data["stream"], data["detector"]
        if not isinstance(word, str) or not 0 < len(word) <= MAX_WORD_CHARS:
            raise ModelError(f"{source}: word must be a non-empty string of at most {MAX_WORD_CHARS} characters")
        for name, value in (("frontend", frontend), ("stream", stream), ("detector", detector)):
            if not isinstance(value, dict):
                raise ModelError(f"{source}: {name} must be a JSON object, got {type(value).__name__}")
        floor = frontend.get(NOISE_FLOOR_KEY)
        if floor is not None:
            _number(source, f"frontend.{NOISE_FLOOR_KEY}", floor, MIN_LEVEL_DBFS, MAX_LEVEL_DBFS)
        _level_config(source, frontend)
        sha = data.get(SHA256_KEY)
        if sha is not None and not (isinstance(sha, str) and SHA256_PATTERN.fullmatch(sha)):
            raise ModelError(f"{source}: {SHA256_KEY} must be 64 lowercase hex digits")
        try:
            units = stream["gru_units"]
            if not isinstance(units, list) or len(units) != GRU_LAYERS:
                raise ModelError(f"{source}: stream.gru_units must be a list of {GRU_LAYERS} integers")
            frames = {k: _number(source, f"stream.{k}", stream[k], 1, MAX_FRAMES, integer=True)
                      for k in ("kernel_frames", "stride_frames", "conv_state_frames")}
            return cls(
                word=word,
                frontend=frontend,
                channels=_number(source, "stream.channels", stream["channels"], 1, MAX_CHANNELS, integer=True),
                gru_units=tuple(_number(source, "stream.gru_units", u, 1, MAX_GRU_UNITS, integer=True) for u in units),
                input_scale=float(_number(source, "stream.input_scale", stream["input_scale"], 0, math.inf)),
                detector=_detector(source, detector),
                quantization=str(data.get("quantization", "int8")),
                output=data.get("output", PROBABILITY_OUTPUT),
                tflite_sha256=sha,
                extra={k: v for k, v in data.items() if k not in KNOWN_KEYS},
                **frames,
            )
        except KeyError as exc:
            raise ModelError(f"{source}: incomplete model metadata (missing stream.{exc.args[0]})") from None

    def to_dict(self) -> dict:
        out = {
            "format": METADATA_FORMAT,
            "version": METADATA_VERSION,
            "word": self.word,
            "frontend": self.frontend,
            "stream": {
                "kernel_frames": self.kernel_frames,
                "stride_frames": self.stride_frames,
                "channels": self.channels,
                "conv_state_frames": self.conv_state_frames,
                "gru_units": list(self.gru_units),
                "input_scale": self.input_scale,
                "step_samples": self.stride_frames * DEFAULT_FRONTEND.step_samples,
            },
            "detector": self.detector,
            "quantization": self.quantization,
            "output": self.output,
        }
        if self.tflite_sha256 is not None:
            out[SHA256_KEY] = self.tflite_sha256
        out.update(self.extra)
        return out

    @property
    def frontend_config(self) -> FrontendConfig:
        """The frontend this model runs behind: the fixed one, with the model's noise floor and level control
        if it has them."""
        return DEFAULT_FRONTEND.with_noise_floor(self.frontend.get(NOISE_FLOOR_KEY)).with_level(_level_config("", self.frontend))

    def check_frontend(self, frontend: FrontendConfig, source: str) -> None:
        """The fixed frontend parameters must match (the noise floor and the level control are the model's own choice)."""
        expected = frontend.with_noise_floor(None).with_level(None).to_dict()
        mismatched = [k for k, v in expected.items() if self.frontend.get(k) != v]
        if mismatched:
            detail = ", ".join(f"{k}={self.frontend.get(k)!r} (runtime {expected[k]!r})" for k in mismatched)
            raise ModelError(f"{source}: model was trained for another frontend: {detail}")
        if abs(self.input_scale - MODEL_INPUT_SCALE) > 1e-12:
            raise ModelError(f"{source}: model input scale (stream.input_scale) {self.input_scale} does not match runtime {MODEL_INPUT_SCALE}")


KNOWN_KEYS = frozenset({"format", "version", "word", "frontend", "stream", "detector", "quantization", "output", SHA256_KEY})


def _level_config(source: str, frontend: dict) -> LevelConfig | None:
    """The model's level control (``edge.level``), None if it has none; a one-line ModelError if it is malformed."""
    if LEVEL_KEY not in frontend:
        return None
    try:
        return LevelConfig.from_dict(frontend[LEVEL_KEY])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: frontend.{LEVEL_KEY}: {exc}") from None


def _detector(source: str, detector: dict) -> dict:
    """The recommended detector settings, each checked (a bad one would fail later, far from its cause)."""
    limits = {"threshold": (0.0, 1.0, False), "smoothing_steps": (1, MAX_SMOOTHING_STEPS, True),
              "refractory_seconds": (0.0, MAX_REFRACTORY_SECONDS, False)}
    out = dict(detector)
    for key, (low, high, integer) in limits.items():
        if key in out:
            out[key] = _number(source, f"detector.{key}", out[key], low, high, integer)
    if "threshold" in out and not 0.0 < out["threshold"] < 1.0:
        raise ModelError(f"{source}: detector.threshold must be strictly between 0 and 1, got {out['threshold']}")
    return out


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def load_metadata(model_path: Path) -> ModelMetadata:
    path = metadata_path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model metadata missing (it must sit beside {model_path.name})")
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ModelError(f"{path}: model metadata larger than {MAX_METADATA_BYTES} bytes: not a metadata file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: unreadable model metadata ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: model metadata is not a JSON object")
    return ModelMetadata.from_dict(data, str(path))


def interpreter_class() -> tuple[type, str]:
    """The best available TFLite interpreter class and its name."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        from tensorflow.lite import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tensorflow"
    except ImportError:
        raise ModelError("no TFLite interpreter installed: pip install ai-edge-litert") from None


def read_model_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: unreadable model file ({exc.strerror or exc})") from None
    if data[TFLITE_MAGIC_OFFSET : TFLITE_MAGIC_OFFSET + len(TFLITE_MAGIC)] != TFLITE_MAGIC:
        raise ModelError(f"{path}: not a TFLite model (bad or missing TFL3 header)")
    return data


def side_interpreter(path: Path, sha256: str | None, what: str, where: str, num_threads: int = 1, delegates: bool = True):
    """A TFLite interpreter, tensors allocated, for a file a model's metadata names beside it (a
    verifier head, a speaker encoder): a one-line ``ModelError`` if it is missing, is not the
    file the metadata hashed, or will not load. ``delegates`` False: the builtin kernels alone
    (XNNPACK repacks a model's weights: 12.5 MB more for the speaker encoder)."""
    if not path.is_file():
        raise ModelError(f"{path}: {what} not found ({where})")
    content = read_model_bytes(path)
    if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
        raise ModelError(f"{path}: {what} does not match the sha256 in its metadata (replaced or damaged file)")
    cls, _ = interpreter_class()
    options = {} if delegates else {"experimental_op_resolver_type": sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    try:
        with quiet():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" (edge.native)
            interp = cls(model_content=content, num_threads=num_threads, **options)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: corrupt {what} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return interp


def verify_model_bytes(content: bytes, metadata: ModelMetadata, path: Path) -> None:
    """The file is the one its metadata describes (sha256) and a well-formed FlatBuffer."""
    if metadata.tflite_sha256 is None:
        LOG.info("%s: metadata has no %s (converted before it was recorded): structure check only", path.name, SHA256_KEY)
    elif sha256_hex(content) != metadata.tflite_sha256:
        raise ModelError(f"{path}: file does not match its metadata ({SHA256_KEY} differs): damaged or replaced; "
                         "copy the .tflite and its .json again")
    check_tflite(content, str(path))


class StreamingModel:
    """Frames in, per-step probabilities out; state carried between calls."""

    def __init__(self, path: str | Path | None = None, frontend: FrontendConfig = DEFAULT_FRONTEND, num_threads: int = 1) -> None:
        self.path = resolve_model_path(path)
        content = read_model_bytes(self.path)
        self.metadata = load_metadata(self.path)
        self.metadata.check_frontend(frontend, str(self.path))
        verify_model_bytes(content, self.metadata, self.path)
        cls, self.backend = interpreter_class()
        try:
            with quiet():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" (edge.native)
                self._interp = cls(model_content=content, num_threads=num_threads)
                self._interp.allocate_tensors()
            signature = self._interp._get_full_signature_list()["serving_default"]
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ModelError(f"{self.path}: corrupt or unsupported TFLite model ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self._inputs = {name: signature["inputs"].get(name) for name in INPUT_NAMES}
        self._score_output = self.metadata.output
        self._outputs = {name: signature["outputs"].get(name) for name in (*STATE_OUTPUTS.values(), self._score_output)}
        missing = [n for n, i in {**self._inputs, **self._outputs}.items() if i is None]
        if missing:
            raise ModelError(f"{self.path}: model lacks tensors {missing}: not a trigger-edge step model")
        self._check_shapes()
        self.reset()
        self._probe()
        LOG.info("model %s (%s) loaded with %s", self.path.name, self.metadata.word, self.backend)

    def _probe(self) -> None:
        """One step on silence before the first real one: a model the interpreter loads but
        cannot run (a damaged tensor it only checks at invoke) fails here, as a ModelError."""
        try:
            self._invoke(np.zeros((self.metadata.stride_frames, self.metadata.channels), np.float32))
        except (RuntimeError, ValueError, OverflowError) as exc:
            raise ModelError(f"{self.path}: corrupt or unsupported TFLite model ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        finally:
            self.reset()

    @property
    def name(self) -> str:
        return self.metadata.word

    def _check_shapes(self) -> None:
        md = self.metadata
        expected = {
            "frames": (1, md.stride_frames, md.channels),
            "conv_state": (1, md.conv_state_frames, md.channels),
            "gru1_state": (1, md.gru_units[0]),
            "gru2_state": (1, md.gru_units[1]),
        }
        details = {d["index"]: tuple(d["shape"]) for d in self._interp.get_input_details()}
        for name, shape in expected.items():
            if details.get(self._inputs[name]) != shape:
                raise ModelError(f"{self.path}: input {name} has shape {details.get(self._inputs[name])}, metadata says {shape}")

    def reset(self) -> None:
        """Zero GRU states, empty conv window, no frames seen (deterministic start)."""
        md = self.metadata
        self._state = {
            "conv_state": np.zeros((1, md.conv_state_frames, md.channels), np.float32),
            "gru1_state": np.zeros((1, md.gru_units[0]), np.float32),
            "gru2_state": np.zeros((1, md.gru_units[1]), np.float32),
        }
        self._pending = np.zeros((0, md.channels), np.float32)
        self._primed = False
        self.steps = 0

    def process(self, frames: np.ndarray) -> np.ndarray:
        """Feed uint16 frames (n, channels); return probabilities of the steps completed."""
        md = self.metadata
        x = np.asarray(frames, dtype=np.float32).reshape(-1, md.channels) * np.float32(md.input_scale)
        pending = np.concatenate([self._pending, x]) if self._pending.size else x
        if not self._primed:
            if len(pending) < md.conv_state_frames:
                self._pending = pending
                return np.zeros(0, np.float32)
            self._state["conv_state"] = pending[None, : md.conv_state_frames].copy()
            pending = pending[md.conv_state_frames :]
            self._primed = True
        n_steps = len(pending) // md.stride_frames
        probs = np.empty(n_steps, np.float32)
        for i in range(n_steps):
            probs[i] = self._invoke(pending[i * md.stride_frames : (i + 1) * md.stride_frames])
        self._pending = pending[n_steps * md.stride_frames :]
        self.steps += n_steps
        return probs

    def _invoke(self, new_frames: np.ndarray) -> float:
        interp = self._interp
        interp.set_tensor(self._inputs["frames"], new_frames[None])
        for name, value in self._state.items():
            interp.set_tensor(self._inputs[name], value)
        interp.invoke()
        for name, out in STATE_OUTPUTS.items():
            self._state[name] = interp.get_tensor(self._outputs[out])
        score = float(interp.get_tensor(self._outputs[self._score_output]).reshape(-1)[0])
        if self._score_output == LOGIT_OUTPUT:
            return 1.0 / (1.0 + math.exp(-score)) if score >= 0 else math.exp(score) / (1.0 + math.exp(score))
        return score
