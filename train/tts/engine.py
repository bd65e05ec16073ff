"""The one interface every TTS engine module implements, and a base for command-line engines.

An engine is an object with ``name``, ``weight`` (its share of :func:`train.tts.voice_grid`),
``probe()`` (does it synthesize here?), ``sample_voice(rng, language)``, ``speaks(language)``,
``render(text, voice, what)`` (float audio and its rate) and ``resampled_pitch(voice)``
(pitch by re-sampling instead of a native control). Adding a voice source is one module
with one such object, listed in :mod:`train.tts.registry`.
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from .common import DEFAULT_FACTOR, ENGLISH, VoiceSpec, _read_wav, _run, check_text, finish

PROBE_TEXT = "yes"
TEMP_PREFIX = "edge-tts-"


class Engine(ABC):
    """One TTS engine; subclasses set ``name`` and ``weight`` and implement the abstract methods."""

    name: str = ""
    weight: float = 1.0
    """Relative share of the voice grid (renormalised over the working engines)."""
    default: bool = True
    """Drawn in the default voice grid; False: only when asked for by name (``engines=[name]``)."""
    chunk: int | None = None
    """Clips that share one :meth:`reseed` session in :func:`train.tts.generate_clips`; None: no chunks."""

    @abstractmethod
    def probe(self) -> bool:
        """Whether this engine synthesizes speech on this machine (may raise: not usable)."""

    @abstractmethod
    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        """One random voice of this engine for ``language``."""

    @abstractmethod
    def render(self, text: str, voice: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
        """Float audio (any channels) and its sample rate for clean ``text``; ``what`` names errors."""

    def speaks(self, language: str) -> bool:
        """Whether this engine has voices for ``language`` (a code of :mod:`train.languages`)."""
        return language == ENGLISH

    def resampled_pitch(self, voice: VoiceSpec) -> bool:
        """Whether ``voice``'s pitch comes from re-sampling the audio (no native pitch control)."""
        return False

    def prepare(self) -> None:
        """Fetch or build, once, what worker processes would otherwise race to write."""

    def reseed(self, seed: int) -> None:
        """Start a fresh session whose random draws follow ``seed`` (engines with :attr:`chunk`)."""

    def synthesize(self, text: str, voice: VoiceSpec) -> np.ndarray:
        """Speak ``text`` with ``voice``: 16 kHz mono int16, silence trimmed, peak at -6 dBFS."""
        clean = check_text(text)
        what = f"TTS {voice.key()} for {clean!r}"
        data, rate = self.render(clean, voice, what)
        return finish(data, rate, voice.pitch if self.resampled_pitch(voice) else DEFAULT_FACTOR, what)


class CommandEngine(Engine):
    """An engine run as a program that reads a text file and writes a WAV file."""

    binary: str = ""
    probe_name: str = ""
    """The voice :meth:`probe` speaks with."""

    @abstractmethod
    def command(self, voice: VoiceSpec, text_file: Path, out: Path, what: str) -> list[str]:
        """The command line that speaks ``text_file`` into ``out`` with ``voice``."""

    def probe_voice(self) -> VoiceSpec | None:
        """A voice to probe with; None when the engine has no voice installed."""
        return VoiceSpec(self.name, self.probe_name)

    def probe(self) -> bool:
        if shutil.which(self.binary) is None:
            return False
        voice = self.probe_voice()
        return voice is not None and len(self.synthesize(PROBE_TEXT, voice)) > 0

    def render(self, text: str, voice: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
            text_file = Path(tmp) / "text.txt"
            text_file.write_text(text + "\n", encoding="utf-8")
            out = Path(tmp) / "out.wav"
            _run(self.command(voice, text_file, out, what), what)
            return _read_wav(out, what)
