"""``flite``: kal (8 kHz diphone), kal16 (diphone), awb, rms, slt (clustergen).

Pitch and speed map to ``--setf int_f0_target_mean=<voice mean>*pitch`` and
``--setf duration_stretch=1/speed``. rms has no native pitch control: its audio is
re-sampled by ``pitch`` and ``duration_stretch`` pre-scaled by ``pitch``, so the final
tempo is still ``speed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import DataError

from .common import ENGLISH, VoiceSpec, pick, pitch_speed
from .engine import CommandEngine

# flite voice -> (default F0 mean in Hz or None when int_f0_target_mean has no effect)
FLITE_VOICES = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": None, "slt": 165.0}
PITCH_RANGE = (0.85, 1.2)
SPEED_RANGE = (0.8, 1.25)


class Flite(CommandEngine):
    """flite through its command line."""

    name = "flite"
    weight = 2.0
    binary = "flite"
    probe_name = "slt"

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        voice = pick(rng, sorted(FLITE_VOICES))
        return VoiceSpec(self.name, voice, *pitch_speed(rng, PITCH_RANGE, SPEED_RANGE))

    def resampled_pitch(self, voice: VoiceSpec) -> bool:
        return FLITE_VOICES.get(voice.voice, 0.0) is None

    def command(self, voice: VoiceSpec, text_file: Path, out: Path, what: str) -> list[str]:
        if voice.voice not in FLITE_VOICES:
            raise DataError(f"{what}: unknown flite voice {voice.voice!r}")
        f0 = FLITE_VOICES[voice.voice]
        cmd = [self.binary, "-voice", voice.voice, "-f", str(text_file), "-o", str(out)]
        if f0 is None:  # pitch by resampling, pre-stretch so the final tempo is `speed`
            return cmd + ["--setf", f"duration_stretch={voice.pitch / voice.speed:.4f}"]
        return cmd + ["--setf", f"duration_stretch={1.0 / voice.speed:.4f}",
                      "--setf", f"int_f0_target_mean={f0 * voice.pitch:.1f}"]


ENGINE = Flite()
