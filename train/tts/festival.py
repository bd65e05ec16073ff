"""``festival``: kal_diphone, ked_diphone, cmu_us_slt_arctic_hts (via ``text2wave``).

Diphone voices: pitch and speed map to ``int_lr_params`` target_f0_mean = 105 Hz * pitch
and ``(Parameter.set 'Duration_Stretch 1/speed)``. The HTS voice has no native pitch
control: its audio is re-sampled by ``pitch`` and the stretch pre-scaled by ``pitch``, so
the final tempo is still ``speed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from edge.errors import DataError

from .common import ENGLISH, VoiceSpec, pitch_speed
from .engine import CommandEngine


class FestivalVoice(NamedTuple):
    function: str
    """The festival function that selects the voice."""
    folder: str
    """Its folder under :data:`FESTIVAL_VOICE_DIR`."""
    native_pitch: bool


FESTIVAL_VOICES = {
    "kal_diphone": FestivalVoice("voice_kal_diphone", "english/kal_diphone", True),
    "ked_diphone": FestivalVoice("voice_ked_diphone", "english/ked_diphone", True),
    "cmu_us_slt_arctic_hts": FestivalVoice("voice_cmu_us_slt_arctic_hts", "us/cmu_us_slt_arctic_hts", False),
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
FESTIVAL_VOICE_WEIGHTS = {"kal_diphone": 0.3, "ked_diphone": 0.3, "cmu_us_slt_arctic_hts": 0.4}
FESTIVAL_DEFAULT_F0 = 105.0  # Hz, target_f0_mean of the diphone voices at pitch 1.0
INT_LR_PARAMS = ("(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std 14) "
                 "(model_f0_mean 170) (model_f0_std 34)))")
PITCH_RANGE = (0.85, 1.18)
SPEED_RANGE = (0.8, 1.25)


def _festival_voices() -> tuple[str, ...]:
    """The voices of :data:`FESTIVAL_VOICES` installed here."""
    return tuple(n for n, v in FESTIVAL_VOICES.items() if (FESTIVAL_VOICE_DIR / v.folder).is_dir())


class Festival(CommandEngine):
    """festival through ``text2wave``."""

    name = "festival"
    weight = 1.5
    binary = "text2wave"

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        names = list(_festival_voices())
        w = np.array([FESTIVAL_VOICE_WEIGHTS[n] for n in names])
        voice = names[rng.choice(len(names), p=w / w.sum())]
        return VoiceSpec(self.name, voice, *pitch_speed(rng, PITCH_RANGE, SPEED_RANGE))

    def resampled_pitch(self, voice: VoiceSpec) -> bool:
        known = FESTIVAL_VOICES.get(voice.voice)
        return known is not None and not known.native_pitch

    def probe_voice(self) -> VoiceSpec | None:
        installed = _festival_voices()
        return VoiceSpec(self.name, installed[0]) if installed else None

    def command(self, voice: VoiceSpec, text_file: Path, out: Path, what: str) -> list[str]:
        if voice.voice not in FESTIVAL_VOICES:
            raise DataError(f"{what}: unknown festival voice {voice.voice!r}")
        spec = FESTIVAL_VOICES[voice.voice]
        stretch = 1.0 / voice.speed if spec.native_pitch else voice.pitch / voice.speed
        cmd = [self.binary, "-eval", f"({spec.function})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.4f})"]
        if spec.native_pitch:
            cmd += ["-eval", INT_LR_PARAMS.format(f0=FESTIVAL_DEFAULT_F0 * voice.pitch)]
        return cmd + ["-o", str(out), str(text_file)]


ENGINE = Festival()
