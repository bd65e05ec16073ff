"""The engines, most natural first, and what dispatches through them: probing, voices, synthesis."""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from edge.errors import DataError

from .. import languages
from . import espeak, festival, flite, kokoro, piper
from .common import ENGLISH, VoiceSpec, _rng, check_text
from .engine import Engine

REGISTRY: tuple[Engine, ...] = (piper.ENGINE, kokoro.ENGINE, flite.ENGINE, festival.ENGINE, espeak.ENGINE, kokoro.NEW_VOICES)
"""Every engine object, most natural first (those not drawn by default last)."""

ENGINES = tuple(e.name for e in REGISTRY)
"""Every engine this module knows, most natural first."""

ENGINE_WEIGHTS = {e.name: e.weight for e in REGISTRY}
"""Relative share of the voice grid per engine (renormalised over the working ones)."""

DEFAULT_WEIGHT = 1.0
_BY_NAME = {e.name: e for e in REGISTRY}


def engine(name: str) -> Engine:
    """The engine called ``name``; ``DataError`` for a name no module defines."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise DataError(f"unknown TTS engine {name!r} (known: {', '.join(ENGINES)})") from None


def _probe(name: str) -> bool:
    """Whether engine ``name`` synthesizes here; any failure means "not usable here"."""
    try:
        return bool(engine(name).probe())
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def usable(name: str) -> bool:
    """Whether engine ``name`` synthesizes here (probed once per process)."""
    return _probe(name)


def available_engines() -> list[str]:
    """The engines of the default voice grid that actually synthesize speech here."""
    return [e for e in ENGINES if _BY_NAME[e].default and usable(e)]


def engines_for(language: str, engines: Sequence[str]) -> list[str]:
    """The engines of ``engines`` that speak ``language`` (English: all of them)."""
    if language == ENGLISH:
        return list(engines)
    languages.language(language)  # an unknown code is an error whatever the engines
    return [e for e in engines if e in _BY_NAME and _BY_NAME[e].speaks(language)]


def _sample_voice(name: str, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
    return engine(name).sample_voice(rng, language)


def _resampled_pitch(v: VoiceSpec) -> bool:
    return v.engine in _BY_NAME and _BY_NAME[v.engine].resampled_pitch(v)


def _grid_engines(engines: Sequence[str] | None, language: str) -> list[str]:
    """The engines a voice grid draws from: the working ones (or ``engines``, checked) that speak ``language``."""
    names = list(available_engines()) if engines is None else list(engines)
    if engines is not None:
        missing = [e for e in names if not usable(e)]
        if missing:
            raise DataError(f"TTS engine(s) not working here: {', '.join(missing)} (working: {', '.join(available_engines()) or 'none'})")
    if not names:
        raise DataError("no offline TTS engine works on this machine (install espeak-ng, flite, festival or piper-tts)")
    names = engines_for(language, names)
    if not names:
        raise DataError(f"no working TTS engine speaks {language!r} (it needs espeak-ng)")
    return names


def _counts(rng: np.random.Generator, names: Sequence[str], n: int) -> np.ndarray:
    """Voices per engine: the floor of its weighted share, the remainder drawn at random."""
    w = np.array([ENGINE_WEIGHTS.get(e, DEFAULT_WEIGHT) for e in names], dtype=np.float64)
    share = w / w.sum() * n
    counts = np.floor(share).astype(int)
    rest = n - int(counts.sum())
    if rest > 0:
        frac = share - counts
        extra = rng.choice(len(names), size=rest, replace=False, p=frac / frac.sum())
        counts[extra] += 1
    return counts


def voice_grid(rng_or_seed, n: int, *, engines: Sequence[str] | None = None, language: str = ENGLISH) -> list[VoiceSpec]:
    """``n`` varied voices spread over the working engines (deterministic for a seed).

    Each engine gets a share proportional to :data:`ENGINE_WEIGHTS` (stratified: floor of
    the share, the remainder drawn at random), so the natural engines are not swamped by
    espeak-ng's many variants; the list is then shuffled. ``language`` other than English
    keeps the engines that speak it (:func:`engines_for`).
    """
    rng = _rng(rng_or_seed)
    if n < 0:
        raise DataError(f"voice_grid: n must be >= 0, got {n}")
    names = _grid_engines(engines, language)
    counts = _counts(rng, names, n)
    voices = [_sample_voice(e, rng, language) for e, c in zip(names, counts) for _ in range(int(c))]
    order = rng.permutation(len(voices))
    return [voices[i] for i in order]


def synthesize(text: str, voice: VoiceSpec) -> np.ndarray:
    """Speak ``text`` with ``voice``: 16 kHz mono int16, silence trimmed, peak at -6 dBFS.

    Raises ``DataError`` for empty text / text with no letters, an engine that fails or
    times out, or output that is silence.
    """
    clean = check_text(text)
    return engine(voice.engine).synthesize(clean, voice)
