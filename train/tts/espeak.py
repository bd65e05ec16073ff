"""``espeak-ng``: formant synthesis; 8 English accents x ~50 voice variants (least natural).

Other languages: espeak-ng's voice for the language (:mod:`train.languages`) with the same
variants. Pitch and speed map to ``-p round(50*pitch)`` (0-99) and ``-s round(175*speed)``
words per minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import languages
from .common import ENGLISH, VoiceSpec, pick, pitch_speed
from .engine import CommandEngine

ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# human-sounding variants (robot / demon / "fast" ones left out)
ESPEAK_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda",
    "benjamin", "boris", "caleb", "croak", "david", "Denis", "ed", "edward", "edward2",
    "Gene", "grandma", "grandpa", "gustave", "Henrique", "Hugo", "iven", "iven2",
    "iven3", "Jacky", "john", "klatt", "klatt2", "klatt3", "Lee", "linda", "Marco",
    "Mario", "max", "Michael", "michel", "miguel", "Mike", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3",
    "travis", "victor", "whisper", "whisperf", "zac",
)
ESPEAK_DATA_DIRS = ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data",
                    "/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data")
ESPEAK_DEFAULT_PITCH = 50
ESPEAK_DEFAULT_WPM = 175
ESPEAK_PITCH_LIMITS = (0, 99)
ESPEAK_WPM_LIMITS = (80, 450)
PITCH_RANGE = (0.6, 1.6)
SPEED_RANGE = (0.75, 1.3)


def _espeak_variants() -> tuple[str, ...]:
    """The curated variants that exist in this espeak-ng installation."""
    for root in ESPEAK_DATA_DIRS:
        vdir = Path(root) / "voices" / "!v"
        if vdir.is_dir():
            present = {p.name for p in vdir.iterdir()}
            return tuple(v for v in ESPEAK_VARIANTS if v == "" or v in present)
    return ESPEAK_VARIANTS


def _clamp(value: int, limits: tuple[int, int]) -> int:
    return min(limits[1], max(limits[0], value))


class Espeak(CommandEngine):
    """espeak-ng through its command line."""

    name = "espeak-ng"
    weight = 2.0
    binary = "espeak-ng"
    probe_name = "en-us"

    def speaks(self, language: str) -> bool:
        return True

    def sample_voice(self, rng: np.random.Generator, language: str = ENGLISH) -> VoiceSpec:
        accents = ESPEAK_ACCENTS if language == ENGLISH else (languages.language(language).espeak,)
        accent = pick(rng, accents)
        variant = pick(rng, _espeak_variants())
        voice = f"{accent}+{variant}" if variant else accent
        return VoiceSpec(self.name, voice, *pitch_speed(rng, PITCH_RANGE, SPEED_RANGE))

    def command(self, voice: VoiceSpec, text_file: Path, out: Path, what: str) -> list[str]:
        p = _clamp(round(ESPEAK_DEFAULT_PITCH * voice.pitch), ESPEAK_PITCH_LIMITS)
        s = _clamp(round(ESPEAK_DEFAULT_WPM * voice.speed), ESPEAK_WPM_LIMITS)
        return [self.binary, "-v", voice.voice, "-p", str(p), "-s", str(s), "-w", str(out), "-f", str(text_file)]


ENGINE = Espeak()
