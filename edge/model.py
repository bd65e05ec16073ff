"""The streaming step model on the device: a ``.tflite`` plus its versioned JSON metadata.

``StreamingModel`` takes frontend frames (uint16, any count per call) and returns one
probability per completed 40 ms output step, carrying the conv input window and both GRU
states between calls as explicit float arrays. It produces exactly the steps of the Keras
sequence model: the first output needs ``kernel_frames`` frames, then one every
``stride_frames`` frames. ``reset()`` returns to the documented start state: zero GRU
states, empty conv window, no frames seen.

Interpreters, in order: ``ai_edge_litert`` (LiteRT), ``tflite_runtime``, ``tensorflow.lite``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelError
from .features import DEFAULT_FRONTEND, MODEL_INPUT_SCALE, FrontendConfig

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
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "ModelMetadata":
        if data.get("format") != METADATA_FORMAT:
            raise ModelError(f"{source}: not a trigger-edge model metadata file")
        if data.get("version") != METADATA_VERSION:
            raise ModelError(f"{source}: metadata version {data.get('version')} not supported (need {METADATA_VERSION})")
        if data.get("output", PROBABILITY_OUTPUT) not in OUTPUT_KINDS:
            raise ModelError(f"{source}: output {data.get('output')!r} is not one of {', '.join(OUTPUT_KINDS)}")
        try:
            stream = data["stream"]
            return cls(
                word=data["word"],
                frontend=data["frontend"],
                kernel_frames=int(stream["kernel_frames"]),
                stride_frames=int(stream["stride_frames"]),
                channels=int(stream["channels"]),
                conv_state_frames=int(stream["conv_state_frames"]),
                gru_units=tuple(int(u) for u in stream["gru_units"]),
                input_scale=float(stream["input_scale"]),
                detector=dict(data["detector"]),
                quantization=data.get("quantization", "int8"),
                output=data.get("output", PROBABILITY_OUTPUT),
                extra={k: v for k, v in data.items() if k not in {"format", "version", "word", "frontend", "stream", "detector", "quantization", "output"}},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: incomplete model metadata ({exc})") from None

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
        out.update(self.extra)
        return out

    def check_frontend(self, frontend: FrontendConfig, source: str) -> None:
        expected = frontend.to_dict()
        mismatched = [k for k, v in expected.items() if self.frontend.get(k) != v]
        if mismatched:
            detail = ", ".join(f"{k}={self.frontend.get(k)!r} (runtime {expected[k]!r})" for k in mismatched)
            raise ModelError(f"{source}: model was trained for another frontend: {detail}")
        if abs(self.input_scale - MODEL_INPUT_SCALE) > 1e-12:
            raise ModelError(f"{source}: model input scale {self.input_scale} does not match runtime {MODEL_INPUT_SCALE}")


def load_metadata(model_path: Path) -> ModelMetadata:
    path = metadata_path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model metadata missing (it must sit beside {model_path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model metadata ({exc})") from None
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
    data = path.read_bytes()
    if data[TFLITE_MAGIC_OFFSET : TFLITE_MAGIC_OFFSET + len(TFLITE_MAGIC)] != TFLITE_MAGIC:
        raise ModelError(f"{path}: not a TFLite model (bad or missing TFL3 header)")
    return data


class StreamingModel:
    """Frames in, per-step probabilities out; state carried between calls."""

    def __init__(self, path: str | Path | None = None, frontend: FrontendConfig = DEFAULT_FRONTEND, num_threads: int = 1) -> None:
        self.path = resolve_model_path(path)
        content = read_model_bytes(self.path)
        self.metadata = load_metadata(self.path)
        self.metadata.check_frontend(frontend, str(self.path))
        cls, self.backend = interpreter_class()
        try:
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
        LOG.info("model %s (%s) loaded with %s", self.path.name, self.metadata.word, self.backend)
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
