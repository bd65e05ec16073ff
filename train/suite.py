"""The real-voice benchmark behind ``edge-eval --suite real``.

Positives are real people saying the model's word; negatives are hours of real audio that
no training recipe of this project uses: conversational English from WUW callers (the
evaluation half of the sessions, other keywords only), recorded prompts in Spanish, French,
Italian and Russian (Debian's asterisk sound packages), English prompts and read speech
(the ``:eval`` halves), other wake words, and music from Debian game packages. Fetch the
Debian part first with ``bash scripts/fetch_eval_audio.sh``.

Every set is scored under three conditions (clean, 10 dB SNR noise, reverberant room) on
the device path (frontend + int8 step model, step by step), and the report gives FRR at
0.1 / 0.5 / 1 FA/h per positive set and condition, a breakdown by speaker group (WUW
gender, dialect, phone type, alone / in a sentence), latency, and where the false accepts
come from (per negative set and language). Positives are scored in place: a word inside a
sentence keeps its sentence, a word said alone gets 1.5 s of real speech before it.

The fixed split: WUW sessions are split by a hash of the session number
(``train.sources.wuw_split(session)``, also what ``wuw/...:train`` selects in a recipe);
recipes may train on ``train`` sessions, the suite's negatives are ``eval`` sessions only.
Every other negative folder, the Debian speech and music included, is scored on its
``:eval`` half (``train.sources.in_split``, by file name); recipes train on ``:train``.
The 14 shared "activate" recordings are split by speaker: ``ite5th__*`` and
``coursera__3*`` / ``coursera__4*`` are scored, recipes may train on ``coursera__[12]*``;
the labelled dev clips (training speakers) are reported as their own set. The noisy
condition mixes in the ``eval`` half of ``shared/data/noise`` (``suite_noise``); recipes train
and augment with its ``train`` half (``noise_spec``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.audio import SAMPLE_RATE, clip_int16, read_audio
from edge.errors import AudioFormatError, DataError
from edge.level import LEVEL_KEY, LevelConfig
from edge.progress import Progress
from train.sources import in_split, read_labels, says, wuw_split

from .evaluate import (CASCADE, FA_TARGETS, HIT_AFTER_END_SECONDS, REFRACTORY_SECONDS, SECONDS_PER_HOUR, STAGE1, THRESHOLDS,
                       count_events, fire_positions)

WUW_KEYWORDS = ("operator", "thinkengine", "onword", "wildfire", "voyager")
PRECISE_WORDS = {"computer": "computer", "athena": "athena", "amelia": "amelia", "hey chatterbox": "heychatterbox"}
WUW_GROUP_FIELDS = ("gender", "dialect", "phone")
CONTEXT_SECONDS = 1.5
AFTER_SECONDS = 1.0
GAP_SECONDS = 0.25
MUSIC_MINUTES_PER_PACKAGE = 25.0
CONDITIONS = ("clean", "noise-10db", "reverb")
NOISE_SNR_DB = 10.0
RIR_SEED = 90210
"""Simulated rooms for the reverberant condition; training banks use the dataset's seed."""
NOISE_EVAL_SPLIT, NOISE_TRAIN_SPLIT = "eval", "train"
"""The noisy condition mixes in the ``eval`` half of ``shared/data/noise`` (by file-name hash, ``train.sources.in_split``);
recipes train and augment with the ``train`` half only (``noise_spec``), so no noise recording is both heard in
training and scored."""
MIN_NEGATIVE_HOURS = 6.0
STAGE2 = "stage 2 continuous"
STAGE2_CONDITIONS = ("clean",)
MAX_THRESHOLDS = 400
TOP_THRESHOLDS = 100
CONTEXT_SEED_BASE = 1_000_000
"""Seeds of the speech placed before words said alone (clips use their own index)."""

ACTIVATE_EVAL_PATTERNS = ("ite5th__*", "coursera__3*", "coursera__4*")
"""The fixed speaker split of the 14 real "activate" recordings (by speaker prefix): 3 of
the 5 speakers are scored here; recipes may train on ``ACTIVATE_TRAIN_PATTERN`` only."""
ACTIVATE_TRAIN_PATTERN = "coursera__[12]*"

SOUNDS = "usr/share/asterisk/sounds"
LANGUAGE_SETS = (
    ("es-MX prompts (Allison)", "es", f"{SOUNDS}/es_MX_f_Allison"),
    ("es-CO prompts", "es", f"{SOUNDS}/es"),
    ("fr-CA prompts (June)", "fr", f"{SOUNDS}/fr_CA_f_June"),
    ("fr prompts (Armelle)", "fr", f"{SOUNDS}/fr"),
    ("it prompts (Carlo)", "it", f"{SOUNDS}/it_IT_m_Carlo"),
    ("it prompts (Menardi)", "it", f"{SOUNDS}/it_IT_f_Menardi"),
    ("ru prompts", "ru", f"{SOUNDS}/ru_RU_f_IvrvoiceRU"),
)
MUSIC_SETS = (
    ("music: drascula", "usr/share/scummvm/drascula/audio"),
    ("music: nexuiz", "usr/share/games/nexuiz/data/music-pk3"),
    ("music: singularity", "usr/share/games/singularity/music"),
    ("music: ufoai", "usr/share/games/ufoai/base/0music-pk3"),
    ("music: warzone2100", "usr/share/games/warzone2100/music"),
    ("music: planetblupi", "usr/share/planetblupi/music"),
    ("music: asterisk moh", "usr/share/asterisk/moh"),
)


@dataclass
class Clip:
    """16 kHz int16 audio, the (start, end) samples of the word in it, and who said it."""

    audio: np.ndarray
    words: tuple[tuple[int, int], ...] = ()
    groups: dict = field(default_factory=dict)
    alone: bool = False


@dataclass(frozen=True)
class ClipSet:
    name: str
    kind: str  # "positive" | "negative"
    load: Callable[[], list[Clip]]
    language: str = "en"
    left_out: int = 0
    """Recordings the set leaves out: positives :func:`wuw_span` cannot place; negatives that say the word."""
    left_out_why: str = ""


def _files(folder: Path, pattern: str | None = None) -> list[Path]:
    """``train.sources.list_audio``, with the hint to fetch the Debian audio when a folder is missing."""
    from train.sources import list_audio

    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (for the Debian audio run: bash scripts/fetch_eval_audio.sh)")
    return list_audio(folder / pattern if pattern else folder)


def noise_spec(shared: Path) -> str:
    """``shared/data/noise`` as the source spec recipes train and augment with: its ``train`` half."""
    return f"{shared / 'data' / 'noise'}:{NOISE_TRAIN_SPLIT}"


def suite_noise(paths: SuitePaths) -> list[np.ndarray]:
    """The noise recordings the noisy condition mixes in: the ``eval`` half, never trained on."""
    return [read_audio(p) for p in _files(paths.shared / "data" / "noise") if in_split(p, NOISE_EVAL_SPLIT)]


def wuw_word_said(info: dict) -> bool:
    """Whether the take's transcript has its own keyword whole: not cut off ("Wild-",
    "-perator"), not another word ("done", "Pager"), nor a transcriber's typo ("Wildifre", twice)."""
    return says(info, info["keyword"])


def wuw_span(info: dict) -> tuple[int, int] | None:
    """The word's (start, end) samples in a WUW take, or None where it cannot be scored as a
    word: its label gives no time (start = end = 0: an empty take, a sneeze, the word
    unaligned; voyager 27 of 616 takes, wildfire 10), or its transcript has no whole
    keyword (:func:`wuw_word_said`; voyager 9 more, wildfire 9). Counted as words, they were
    certain misses wherever the caller said something."""
    start, end = int(info["start"] * SAMPLE_RATE), int(info["end"] * SAMPLE_RATE)
    return (start, end) if end > start and wuw_word_said(info) else None


def _wuw_labels(root: Path, keywords: tuple[str, ...], sessions: str) -> list[tuple[str, dict]]:
    labels = read_labels(root)
    return [(rel, labels[rel]) for rel in sorted(labels)
            if labels[rel]["keyword"] in keywords and (sessions == "all" or wuw_split(labels[rel]["session"]) == sessions)]


def _wuw_loader(root: Path, keywords: tuple[str, ...], sessions: str, positive: bool, limit: int | None,
                without: str | None = None) -> Callable[[], list[Clip]]:
    """The takes of ``keywords``; as positives only those whose label times the word (:func:`wuw_span`);
    none whose transcript says ``without`` (the model's word, among negatives)."""
    def load() -> list[Clip]:
        clips = []
        for rel, info in _wuw_labels(root, keywords, sessions):
            span = wuw_span(info)
            if (positive and span is None) or (without and says(info, without)):
                continue
            audio = read_audio(root / rel)
            alone = rel.startswith("alone/")
            words = (span,) if positive else ()
            groups = {f: info.get(f, "?") for f in WUW_GROUP_FIELDS}
            groups["style"] = "alone" if alone else "in a sentence"
            clips.append(Clip(audio, words, groups, alone))
            if limit and len(clips) >= limit:
                break
        return clips

    return load


def _folder_loader(folder: Path, positive: bool, limit: int | None, split: str = "all", max_minutes: float | None = None,
                   pattern: tuple[str, ...] = ()) -> Callable[[], list[Clip]]:
    def load() -> list[Clip]:
        from train.sources import in_split, trim_silence

        clips, total = [], 0
        for path in [p for glob in pattern for p in _files(folder, glob)] if pattern else _files(folder):
            if not in_split(path, split):
                continue
            room = None if max_minutes is None else int(max_minutes * 60 * SAMPLE_RATE) - total
            if room is not None and room <= 0:
                break
            try:
                audio = read_audio(path, None if room is None else room / SAMPLE_RATE)[:room]
            except AudioFormatError:
                continue  # a few packaged prompts are empty files
            if positive:
                audio = trim_silence(audio)
            if not audio.size or not np.any(audio):
                continue
            total += audio.size
            clips.append(Clip(audio, ((0, audio.size),) if positive else (), {"style": "alone"} if positive else {}, positive))
            if limit and len(clips) >= limit:
                break
        return clips

    return load


def _labelled_loader(folder: Path, limit: int | None) -> Callable[[], list[Clip]]:
    def load() -> list[Clip]:
        labels = json.loads((folder / "labels.json").read_text())
        clips = []
        for name in sorted(k for k in labels if not k.startswith("_")):
            spans = tuple((int(s * SAMPLE_RATE), int(e * SAMPLE_RATE)) for s, e in labels[name])
            clips.append(Clip(read_audio(folder / name), spans, {"style": "in a sentence"}, False))
            if limit and len(clips) >= limit:
                break
        return clips

    return load


@dataclass(frozen=True)
class SuitePaths:
    shared: Path
    debian: Path | None  # the root fetch_eval_audio.sh unpacked into (None: skip those sets)


def positive_sets(word: str, paths: SuitePaths, limit: int | None = None) -> list[ClipSet]:
    data = paths.shared / "data"
    word = word.lower().strip()
    if word in WUW_KEYWORDS:
        unplaceable = sum(wuw_span(info) is None for _, info in _wuw_labels(data / "wuw", (word,), "all"))
        return [ClipSet(f"WUW {word} (telephone, 8 kHz upsampled)", "positive", _wuw_loader(data / "wuw", (word,), "all", True, limit),
                        left_out=unplaceable, left_out_why="their labels give the word no time, or their transcript has no whole word")]
    if word in PRECISE_WORDS:
        return [ClipSet(f"precise {word}", "positive", _folder_loader(data / "precise" / PRECISE_WORDS[word], True, limit))]
    if word == "activate":
        return [
            ClipSet("activate: held-out speakers (ite5th, coursera 3-4)", "positive",
                    _folder_loader(data / "activate" / "positives", True, limit, pattern=ACTIVATE_EVAL_PATTERNS)),
            ClipSet("activate: dev clips in sentences (training speakers)", "positive", _labelled_loader(data / "activate" / "dev", limit)),
        ]
    raise DataError(f"the real-voice suite has no recordings of {word!r} (it has: {', '.join(known_words())})")


def known_words() -> tuple[str, ...]:
    """The words the suite has real recordings of."""
    return (*WUW_KEYWORDS, *PRECISE_WORDS, "activate")


def negative_sets(word: str, paths: SuitePaths, limit: int | None = None, music_minutes: float = MUSIC_MINUTES_PER_PACKAGE) -> list[ClipSet]:
    data = paths.shared / "data"
    word = word.lower().strip()
    others = tuple(k for k in WUW_KEYWORDS if k != word)
    saying = sum(says(info, word) for _, info in _wuw_labels(data / "wuw", others, "eval"))
    sets = [
        ClipSet("WUW callers, other keywords (eval sessions)", "negative", _wuw_loader(data / "wuw", others, "eval", False, limit, word),
                left_out=saying, left_out_why="their transcript has the model's word"),
        ClipSet("LJ Speech (eval half)", "negative", _folder_loader(data / "speech" / "ljspeech", False, limit, "eval")),
        ClipSet("en prompts (eval half)", "negative", _folder_loader(data / "speech" / "asterisk_prompts", False, limit, "eval")),
    ]
    sets += [ClipSet(f"precise {w}", "negative", _folder_loader(data / "precise" / folder, False, limit))
             for w, folder in PRECISE_WORDS.items() if w != word]
    if paths.debian is not None:
        sets += [ClipSet(f"{name} (eval half)", "negative", _folder_loader(paths.debian / rel, False, limit, "eval"), language=lang)
                 for name, lang, rel in LANGUAGE_SETS]
        minutes = min(music_minutes, limit) if limit else music_minutes
        sets += [ClipSet(f"{name} (eval half)", "negative", _folder_loader(paths.debian / rel, False, limit, "eval", max_minutes=minutes),
                         language="music")
                 for name, rel in MUSIC_SETS]
    return sets


# --- conditions ----------------------------------------------------------------------------


class Conditions:
    """Turns a clip into its clean / noisy / reverberant version (seeded, repeatable)."""

    def __init__(self, noise: list[np.ndarray], seed: int = 0) -> None:
        from train.augment import make_rir_bank

        self.noise = np.concatenate(noise).astype(np.float64) if noise else None
        self.rirs = make_rir_bank(RIR_SEED)
        self.seed = seed

    def apply(self, condition: str, clip_audio: np.ndarray, index: int) -> np.ndarray:
        if condition == "clean":
            return clip_audio
        rng = np.random.default_rng([self.seed, index, CONDITIONS.index(condition)])
        x = clip_audio.astype(np.float64)
        if condition == "noise-10db":
            if self.noise is None:
                raise DataError("no noise recordings for the noisy condition")
            start = int(rng.integers(max(self.noise.size - x.size, 1)))
            bg = np.resize(self.noise[start:], x.size)
            from train.augment import rms

            speech = rms(x) or 1.0
            x = x + bg * (speech / (rms(bg) or 1.0)) / 10 ** (NOISE_SNR_DB / 20.0)
        elif condition == "reverb":
            from scipy.signal import fftconvolve

            rir = self.rirs[int(rng.integers(len(self.rirs)))]
            peak = np.abs(x).max() or 1.0
            x = fftconvolve(x, rir)[: x.size]
            x *= peak / (np.abs(x).max() or 1.0)
        else:
            raise DataError(f"unknown condition {condition!r}")
        return clip_int16(x)


# --- streams and scoring -------------------------------------------------------------------


@dataclass
class ScoredSet:
    name: str
    kind: str
    language: str
    hours: float
    steps: np.ndarray  # sample position of each output step
    probs: np.ndarray
    words: list[tuple[int, int]] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)


def build_stream(clips: list[Clip], condition: str, conditions: Conditions, context: np.ndarray) -> tuple[np.ndarray, list, list]:
    parts, words, groups, pos = [], [], [], 0
    ctx = int(CONTEXT_SECONDS * SAMPLE_RATE)
    after = np.zeros(int(AFTER_SECONDS * SAMPLE_RATE), np.int16)
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.int16)
    for i, clip in enumerate(clips):
        audio = conditions.apply(condition, clip.audio, i)
        if clip.words and clip.alone and context.size > ctx:
            offset = (i * ctx) % (context.size - ctx)
            before = conditions.apply(condition, context[offset: offset + ctx], CONTEXT_SEED_BASE + i)
            parts.append(before)
            pos += before.size
        for s, e in clip.words:
            words.append((pos + s, pos + min(e, audio.size)))
            groups.append(clip.groups)
        parts += [audio, after if clip.words else gap]
        pos += audio.size + (after.size if clip.words else gap.size)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return audio, words, groups


def thresholds_for(scored: list[ScoredSet]) -> np.ndarray:
    """Every distinct output value seen (int8 models have few); past ``MAX_THRESHOLDS``,
    evenly spaced quantiles plus the ``TOP_THRESHOLDS`` highest values (where FA/h targets sit)."""
    values = np.unique(np.concatenate([s.probs for s in scored] + [np.asarray(THRESHOLDS)]))
    values = values[values > 0]
    if values.size > MAX_THRESHOLDS:
        spread = np.quantile(values, np.linspace(0, 1, MAX_THRESHOLDS - TOP_THRESHOLDS))
        values = np.unique(np.concatenate([spread, values[-TOP_THRESHOLDS:]]))
    return values


@dataclass
class SuiteResult:
    model: str
    word: str
    conditions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "word": self.word, "fa_targets": list(FA_TARGETS), "conditions": self.conditions}


def analyse(scored: list[ScoredSet]) -> dict:
    """The sweep for one condition: per threshold, misses per positive set and false accepts
    per negative set; then, per FA/h target, the threshold with the lowest FRR."""
    positives = [s for s in scored if s.kind == "positive"]
    negatives = [s for s in scored if s.kind == "negative"]
    rows = analyse_rows(scored, thresholds_for(scored))
    det = {s.name: [(r["fa_per_hour"], 1.0 - float(r["hits"][s.name].mean()) if s.words else 0.0) for r in rows] for s in positives}
    targets = {}
    for target in FA_TARGETS:
        ok = [r for r in rows if r["fa_per_hour"] <= target]
        targets[f"{target:g}"] = _at(ok, positives, negatives) if ok else None
    floor = min(rows, key=lambda r: (r["fa_per_hour"], -r["threshold"])) if rows else None
    return {"negative_hours": sum(s.hours for s in negatives), "targets": targets, "det": det,
            "lowest_fa_per_hour": {"fa_per_hour": floor["fa_per_hour"], "threshold": floor["threshold"]} if floor else None,
            "negative_sets": {s.name: {"hours": s.hours, "language": s.language} for s in negatives}}


def _at(rows: list[dict], positives: list[ScoredSet], negatives: list[ScoredSet]) -> dict:
    """The lowest-FRR row (all positive sets pooled), with FRR per set and speaker group."""
    def misses(r):
        return sum(int((~r["hits"][s.name]).sum()) for s in positives)

    best = min(rows, key=lambda r: (misses(r), r["threshold"]))
    per_set, per_group = {}, {}
    for s in positives:
        h = best["hits"][s.name]
        per_set[s.name] = {"words": int(h.size), "frr": float(1 - h.mean()) if h.size else None}
        for hit, groups in zip(h, s.groups):
            for key, value in groups.items():
                g = per_group.setdefault(f"{key}={value}", [0, 0])
                g[0] += 1
                g[1] += int(not hit)
    by_language = {}
    for s in negatives:
        by_language[s.language] = by_language.get(s.language, 0) + best["fa"][s.name]
    return {
        "threshold": best["threshold"],
        "fa_per_hour": best["fa_per_hour"],
        "false_accepts": sum(best["fa"].values()),
        "frr": {k: v["frr"] for k, v in per_set.items()},
        "words": {k: v["words"] for k, v in per_set.items()},
        "frr_by_group": {k: {"words": n, "frr": m / n} for k, (n, m) in sorted(per_group.items())},
        "false_accepts_by_set": {k: v for k, v in best["fa"].items() if v},
        "false_accepts_by_language": by_language,
    }


def latency(scored: list[ScoredSet], threshold: float, refractory: float = REFRACTORY_SECONDS) -> dict:
    lat = []
    for s in scored:
        if s.kind == "positive":
            lat += count_events(fire_positions(s.steps, s.probs, threshold, int(refractory * SAMPLE_RATE)), s.words).latencies
    return {"median_s": float(np.median(lat)) if lat else None, "p90_s": float(np.percentile(lat, 90)) if lat else None}


# --- the whole run -------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteConfig:
    model: Path
    out: Path
    word: str | None = None
    conditions: tuple[str, ...] = CONDITIONS
    limit: int | None = None
    music_minutes: float = MUSIC_MINUTES_PER_PACKAGE
    require_hours: float = MIN_NEGATIVE_HOURS
    stage2_conditions: tuple[str, ...] = STAGE2_CONDITIONS
    """Conditions where stage 2 also runs alone, on every chunk (costly: a full embedding stream)."""
    verifier: bool = True
    """Score the model's verifier (cascade, stage 2 alone) when its metadata has one."""
    candidate_threshold: float | None = None
    """Open candidates at this stage-1 probability instead of the model's (the recall/cost trade-off)."""
    hold_seconds: float | None = None
    """Keep a candidate open this long instead of the model's."""
    level_control: bool = False
    """Stage 1 behind the level control (``edge.level``, default settings) even if the model's metadata has none."""

    def verifier_overrides(self) -> dict:
        return {k: v for k, v in (("candidate_threshold", self.candidate_threshold), ("hold_seconds", self.hold_seconds)) if v is not None}


def default_paths() -> SuitePaths:
    repo = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("TRIGGER_EDGE_SHARED", repo.parent / "shared"))
    cache = Path(os.environ.get("TRIGGER_EDGE_CACHE", repo / ".cache"))
    debian = cache / "eval-audio" / "root"
    return SuitePaths(shared, debian if debian.is_dir() else None)


def run_suite(config: SuiteConfig, paths: SuitePaths | None = None, log=None) -> dict:
    from .evaluate import tflite_scorer

    log = log or sys.stderr
    paths = paths or default_paths()
    if config.model.suffix != ".tflite" or not config.model.is_file():
        raise DataError(f"{config.model}: the suite scores the device model (.tflite with its .json)")
    unknown = sorted(set(config.conditions + config.stage2_conditions) - set(CONDITIONS))
    if unknown:
        raise DataError(f"unknown condition(s) {', '.join(unknown)}: the suite has {', '.join(CONDITIONS)}")
    score, model_threshold = tflite_scorer(config.model, LevelConfig() if config.level_control else None)
    meta = json.loads(config.model.with_suffix(".json").read_text())
    word = config.word or meta.get("word")
    if not word:
        raise DataError(f"{config.model}: its metadata names no word; pass --word")
    verifier = verifier_scorers(config.model, meta["verifier"], config.verifier_overrides()) if config.verifier and "verifier" in meta else None
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    if paths.debian is None:
        print("edge-eval: no Debian audio (multilingual speech, music): run bash scripts/fetch_eval_audio.sh", file=log, flush=True)
    sets = positive_sets(word, paths, config.limit) + negative_sets(word, paths, config.limit, config.music_minutes)
    loaded = []
    meter = Progress("edge-eval: loading sets", len(sets), log)
    for i, s in enumerate(sets):
        loaded.append((s, s.load()))
        meter.update(i + 1)
    meter.close()
    neg_hours = sum(c.audio.size for s, clips in loaded if s.kind == "negative" for c in clips) / SAMPLE_RATE / SECONDS_PER_HOUR
    if neg_hours < config.require_hours:
        raise DataError(f"only {neg_hours:.2f} h of negative audio (the suite needs {config.require_hours:g} h); "
                        "run bash scripts/fetch_eval_audio.sh")
    conditions = Conditions(suite_noise(paths))
    context = np.concatenate([c.audio for s, clips in loaded if s.name.startswith("LJ") for c in clips] or [np.zeros(0, np.int16)])
    result = SuiteResult(str(config.model), word)
    variants: dict[str, dict] = {}
    thresholds = {STAGE1: model_threshold}
    if verifier is not None:
        thresholds[CASCADE] = thresholds[STAGE2] = verifier.config.threshold
    for condition in config.conditions:
        scored: dict[str, list[ScoredSet]] = {}
        meter = Progress(f"edge-eval: scoring {condition}", len(loaded), log)
        for i, (s, clips) in enumerate(loaded):
            audio, words, groups = build_stream(clips, condition, conditions, context)
            hours = audio.size / SAMPLE_RATE / SECONDS_PER_HOUR
            for variant, (steps, probs) in _variant_tracks(score, verifier, audio, condition in config.stage2_conditions).items():
                scored.setdefault(variant, []).append(ScoredSet(s.name, s.kind, s.language, hours, steps, probs, words, groups))
            meter.update(i + 1)
        meter.close()
        for variant, sets_scored in scored.items():
            analysis = analyse(sets_scored)
            analysis["at_model_threshold"] = _at_threshold(sets_scored, thresholds[variant])
            best = analysis["targets"].get("1")
            analysis["latency"] = latency(sets_scored, best["threshold"] if best else thresholds[variant])
            if variant == CASCADE:
                analysis["verifications_per_hour"] = sum(x.steps.size for x in sets_scored if x.kind == "negative") / neg_hours
                analysis["candidate_recall"] = candidate_recall(sets_scored)
            variants.setdefault(variant, {})[condition] = analysis
    deployed = CASCADE if verifier is not None else STAGE1
    result.conditions = variants[deployed]
    data = result.to_dict()
    data["variant"] = deployed
    data["variants"] = variants
    data["level_control"] = bool(config.level_control or LEVEL_KEY in meta["frontend"])
    data["left_out"] = {s.name: {"recordings": s.left_out, "why": s.left_out_why} for s, _ in loaded if s.left_out}
    if verifier is not None:
        data["verifier"] = {**dataclasses.asdict(verifier.config), "overridden": sorted(config.verifier_overrides())}
    (out / "suite.json").write_text(json.dumps(data, indent=1) + "\n")
    plot_suite_det(out / "suite-det.png", data)
    for variant in variants:
        if variant != deployed:
            plot_suite_det(out / f"suite-det-{variant.replace(' ', '-')}.png", dict(data, conditions=variants[variant], variant=variant))
    return data


@dataclass(frozen=True)
class VerifierScorers:
    """What the suite needs of a model's verifier: its settings, its head, and ``windows(audio)`` giving
    ``windows(chunks)``, the embedding windows at chunks of one stream (one embedding model for the run)."""

    config: object
    head: object
    windows: Callable
    enrolled: object = None
    """An enrolled model's ``edge.verifier.EnrolledHead`` (None: the model is not enrolled with a speaker gate)."""

    def cascade(self, steps: np.ndarray, probs: np.ndarray, audio: np.ndarray, windows: Callable | None = None):
        """(positions, scores) of the cascade on one stream, as the device's ``Cascade`` scores it. An enrolled
        model's adapted head reads the same candidates' windows as the original: embeddings computed once."""
        from edge.verifier import cascade_track

        windows = windows or self.windows(audio)
        positions, scores = cascade_track(steps, probs, self.config, lambda chunks: self.head.logits(windows(chunks)))
        if self.enrolled is None:
            return positions, scores
        _, adapted = cascade_track(steps, probs, self.config, lambda chunks: self.enrolled.head.logits(windows(chunks)))
        return positions, self.enrolled.choose_track(positions, scores, adapted, audio)


def verifier_scorers(model: Path, block: dict, overrides: dict | None = None) -> VerifierScorers:
    from edge.verifier import load_enrolled, load_verifier
    from train.verifier import window_source

    head, vconfig, _ = load_verifier(model, block)
    try:
        vconfig = dataclasses.replace(vconfig, **(overrides or {}))
    except ValueError as exc:  # an override out of range (--hold-seconds 50)
        raise DataError(str(exc)) from None
    return VerifierScorers(vconfig, head, window_source(vconfig.window), load_enrolled(model, block, vconfig))


def _variant_tracks(score, verifier: VerifierScorers | None, audio: np.ndarray, stage2: bool) -> dict:
    """(positions, scores) per variant for one stream: stage 1; with a verifier, the cascade
    (verifier scores where stage 1 opened a candidate) and, if asked, stage 2 on every chunk."""
    from edge.verifier import continuous_positions

    steps, probs = score(audio)
    tracks = {STAGE1: (steps, probs)}
    if verifier is None:
        return tracks
    windows = verifier.windows(audio)
    tracks[CASCADE] = verifier.cascade(steps, probs, audio, windows)
    if stage2:  # the head alone, on every chunk (openWakeWord's way: no stage 1 to fuse)
        chunks, ends = continuous_positions(audio.size)
        keep = chunks >= verifier.config.window - 1
        tracks[STAGE2] = (ends[keep], verifier.config.scores(verifier.head.logits(windows(chunks[keep])), None))
    return tracks


def candidate_recall(scored: list[ScoredSet]) -> dict:
    """Per positive set, the share of words where the verifier ran at all (a nonzero cascade
    score inside the word's hit window): the most the cascade can hit. No refractory period
    here: a candidate in the context before a word must not hide the word's own candidate."""
    recall = {}
    for s in scored:
        if s.kind == "positive":
            hit = count_events(s.steps[s.probs > 0.0], s.words).hit_words  # every open step counts, none is held back
            recall[s.name] = float(np.mean(hit)) if hit else None
    return recall


def _at_threshold(scored: list[ScoredSet], threshold: float) -> dict:
    rows = analyse_rows(scored, [threshold])
    return _at(rows, [s for s in scored if s.kind == "positive"], [s for s in scored if s.kind == "negative"])


def analyse_rows(scored: list[ScoredSet], thresholds) -> list[dict]:
    """Per threshold: false accepts per negative set, FA/h over all of them, hit or miss per word."""
    ref = int(REFRACTORY_SECONDS * SAMPLE_RATE)
    hit_after = int(HIT_AFTER_END_SECONDS * SAMPLE_RATE)
    neg_hours = sum(s.hours for s in scored if s.kind == "negative")
    rows = []
    for t in thresholds:
        fa = {s.name: int(fire_positions(s.steps, s.probs, float(t), ref).size) for s in scored if s.kind == "negative"}
        hits = {s.name: np.array(count_events(fire_positions(s.steps, s.probs, float(t), ref), s.words, hit_after).hit_words, dtype=bool)
                for s in scored if s.kind == "positive"}
        rows.append({"threshold": float(t), "fa": fa, "fa_per_hour": sum(fa.values()) / neg_hours if neg_hours else 0.0, "hits": hits})
    return rows


def plot_suite_det(path: Path, data: dict) -> None:
    from train.plots import _pyplot

    plt = _pyplot()
    conds = list(data["conditions"])
    fig, axes = plt.subplots(1, len(conds), figsize=(5 * len(conds), 4.2), squeeze=False)
    for ax, cond in zip(axes[0], conds):
        for name, points in data["conditions"][cond]["det"].items():
            fa = [max(p[0], 1e-2) for p in points]
            frr = [max(p[1], 1e-3) for p in points]
            ax.plot(fa, frr, marker=".", markersize=3, label=name)
        for target in FA_TARGETS:
            ax.axvline(target, color="grey", linestyle=":", alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("false accepts per hour (real negatives)")
        ax.set_ylabel("false reject rate (real voices)")
        label = f" [{data['variant']}]" if data.get("variants") else ""
        ax.set_title(f"{data['word']}{label}: {cond} ({data['conditions'][cond]['negative_hours']:.1f} h)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(data: dict) -> str:
    """The suite's summary: FRR at each FA/h target per positive set and condition (and per
    variant, for a model with a verifier)."""
    variants = data.get("variants") or {data.get("variant", STAGE1): data["conditions"]}
    parts = []
    for variant, conds in variants.items():
        parts.append(_variant_table(dict(data, conditions=conds), variant if len(variants) > 1 else None))
    return "\n\n".join(parts)


def _variant_table(data: dict, variant: str | None) -> str:
    head = f"{'condition':<11} {'positive set':<52}" + "".join(f" {'FRR@' + format(t, 'g') + 'FA/h':>12}" for t in FA_TARGETS)
    title = f"model {data['model']} (word {data['word']!r}): real voices, real negatives"
    if data.get("level_control"):
        title += " (stage 1 behind the level control)"
    settings = data.get("verifier") or {}
    if settings.get("overridden") and variant != STAGE1:
        title += f" (verifier settings given: candidates at p >= {settings['candidate_threshold']:g}, held {settings['hold_seconds']:g} s)"
    lines = [title + (f" -- {variant}" if variant else ""), head, "-" * len(head)]
    for cond, a in data["conditions"].items():
        names = list(a["det"])
        for name in names:
            cells = []
            for t in FA_TARGETS:
                row = a["targets"][f"{t:g}"]
                cells.append(f" {'-' if row is None else format(row['frr'][name], '.1%'):>12}")
            lines.append(f"{cond:<11} {name[:52]:<52}" + "".join(cells))
        one = a["targets"].get("1")
        m = a["at_model_threshold"]
        lines.append(f"{'':<11} negatives {a['negative_hours']:.2f} h; at the model's threshold {m['threshold']:.3f}: "
                     f"{m['fa_per_hour']:.2f} FA/h, FRR " + ", ".join(f"{v:.1%}" for v in m["frr"].values()))
        low = a.get("lowest_fa_per_hour")
        if one is None and low:
            lines.append(f"{'':<11} no threshold gets below {low['fa_per_hour']:.2f} FA/h (the top score, {low['threshold']:.4f}, still fires)")
        if one:
            langs = ", ".join(f"{k} {v}" for k, v in sorted(one["false_accepts_by_language"].items()) if v) or "none"
            lines.append(f"{'':<11} at <= 1 FA/h (threshold {one['threshold']:.4f}): false accepts by language: {langs}")
        if "verifications_per_hour" in a:
            recall = ", ".join(f"{v:.1%}" for v in a["candidate_recall"].values() if v is not None)
            lines.append(f"{'':<11} verifier runs per hour of negative audio: {a['verifications_per_hour']:.0f}; "
                         f"candidate recall (stage 1 opened a candidate): {recall}")
    lines.append("(- : no threshold reaches that rate)")
    for name, out in (data.get("left_out") or {}).items():
        lines.append(f"{name}: {out['recordings']} recordings left out ({out['why']})")
    return "\n".join(lines)
