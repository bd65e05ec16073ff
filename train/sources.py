"""Clip pools: folders of recordings (or TTS output) loaded once as 16 kHz int16 arrays."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import read_audio
from edge.errors import AudioFormatError, DataError, EmptyAudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus")
SPLIT_BUCKETS = 100
TRIM_FRAME = 160
TRIM_RELATIVE_DB = -35.0
TRIM_MARGIN_FRAMES = 3


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Cut leading/trailing frames more than 35 dB below the loudest 10 ms frame (keeps 30 ms margin)."""
    n = audio.size // TRIM_FRAME
    if n == 0:
        return audio
    frames = audio[: n * TRIM_FRAME].astype(np.float64).reshape(n, TRIM_FRAME)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    loud = np.flatnonzero(energy > energy.max() + TRIM_RELATIVE_DB)
    first = max(int(loud[0]) - TRIM_MARGIN_FRAMES, 0)
    last = min(int(loud[-1]) + 1 + TRIM_MARGIN_FRAMES, n)
    return audio[first * TRIM_FRAME : last * TRIM_FRAME]


def list_audio(folder: str | Path) -> list[Path]:
    """All audio files under ``folder`` (recursive, sorted); ``DIR/pattern*`` selects by glob."""
    folder = Path(folder)
    if any(ch in folder.name for ch in "*?["):
        if not folder.parent.is_dir():
            raise DataError(f"{folder.parent}: no such folder")
        return sorted(p for p in folder.parent.glob(folder.name) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


WUW_FILE = re.compile(r"WUWII(\d{5})_")
"""WUW corpus file names carry the call session; one session is one caller."""
HOLDOUT_PERCENT = 30
"""Of a training half, the share kept out of training and mining to set thresholds on (``:holdout``);
the rest is ``:fit``. ``:train`` is both."""
SPLITS = ("all", "train", "eval", "fit", "holdout")


def _bucket(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % SPLIT_BUCKETS


def _wuw_key(session: str) -> str:
    return f"wuw-session-{session}"


def wuw_split(session: str, eval_percent: int = 50) -> str:
    """The fixed WUW split: by a hash of the session, so no caller is on both sides."""
    return "eval" if _bucket(_wuw_key(session)) < eval_percent else "train"


def in_split(path: Path, split: str, eval_percent: int = 50) -> bool:
    """Deterministic split by a hash of the file name (WUW files: of their call session).

    ``eval`` / ``train`` are the two halves; ``train`` is cut again, by a second hash, into
    ``fit`` (what recipes train and mine on) and ``holdout`` (what they set thresholds on).
    """
    if split == "all":
        return True
    session = WUW_FILE.match(path.name)
    key = _wuw_key(session.group(1)) if session else path.name
    half = "eval" if _bucket(key) < eval_percent else "train"
    if split in ("eval", "train"):
        return half == split
    if half != "train":
        return False
    holdout = _bucket(f"holdout-{key}") < HOLDOUT_PERCENT
    return holdout == (split == "holdout")


def parse_share(spec: str) -> tuple[str, float | None]:
    """``SPEC@SHARE``: the fraction (0-1] of draws that go to this source's clips."""
    head, sep, tail = spec.rpartition("@")
    if not sep:
        return spec, None
    try:
        share = float(tail)
    except ValueError:
        raise DataError(f"{spec}: the part after '@' must be a share between 0 and 1") from None
    if not 0.0 < share <= 1.0:
        raise DataError(f"{spec}: share {share} is not in (0, 1]")
    return head, share


TRANSCRIPT_NOTE = re.compile(r"\{[^{}]{0,40}\}|\[[^\[\]]{0,40}\]|<[^<>]{0,40}>")
"""A transcriber's note inside a WUW transcript ({breath}, [static], <as>), dropped before
looking for a word; so "T{breath}hinkEngine" has the word."""
LABELS_FILE = "labels.json"
LABELS_LEVELS = 3
"""How far above a file its corpus's ``labels.json`` (WUW: ``wuw/labels.json`` over ``sentence/voyager/x.flac``) may sit."""
WITHOUT_WORD = re.compile(r"[a-z][a-z ]*")


WORD_SPAN_TOKENS = 3
"""A word may be written over this many tokens ("Think Engine", "hey chatterbox")."""
PLURALS = ("", "s", "es")
GLUED_MIN_LETTERS = 6
"""From this length a word is also found glued inside a token ("personaloperator"); a shorter
one ("go") would be found in too many others ("good")."""


def says(info: dict, word: str) -> bool:
    """Whether a labelled take's transcript has ``word`` whole: one to ``WORD_SPAN_TOKENS``
    consecutive tokens spell it (a plural too), once transcriber notes are dropped. WUW callers
    say other keywords' words ("they want me to use wildfire in a sentence" is a voyager take;
    "computer" is in 25 takes); a short word ("go") is not found inside longer ones ("good")."""
    tokens = re.findall(r"[a-z]+", TRANSCRIPT_NOTE.sub("", info.get("transcript", "")).lower())
    target = re.sub(r"[^a-z]", "", word.lower())
    spelled = {"".join(tokens[i:i + n]) for n in range(1, WORD_SPAN_TOKENS + 1) for i in range(len(tokens))}
    glued = len(target) >= GLUED_MIN_LETTERS and any(target in t for t in spelled)
    return bool(target) and (glued or any(target + end in spelled for end in PLURALS))


def parse_without(spec: str) -> tuple[str, str | None]:
    """``SPEC!WORD``: leave out the labelled takes whose transcript says WORD (lower case)."""
    head, sep, tail = spec.rpartition("!")
    if sep and WITHOUT_WORD.fullmatch(tail):
        return head, tail
    return spec, None


def read_labels(root: Path) -> dict:
    """``root``'s ``labels.json``, parsed once per version of the file (a clip pool of
    ``edge-word`` has eight WUW sources, the suite reads it per set). Do not change it."""
    path = root / LABELS_FILE
    return _parsed_labels(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _parsed_labels(path: Path, version: int) -> dict:
    return json.loads(path.read_text())


def _transcripts(folder: Path) -> tuple[Path, dict]:
    """The ``labels.json`` at or above ``folder`` and its folder (the keys are relative to it)."""
    for root in [folder, *folder.parents][:LABELS_LEVELS + 1]:
        if (root / LABELS_FILE).is_file():
            return root, read_labels(root)
    raise DataError(f"{folder}: '!WORD' needs transcripts, and no {LABELS_FILE} sits at or above it")


def saying(files: list[Path], folder: Path, word: str) -> set[Path]:
    """Those of ``files`` whose transcript says ``word``."""
    root, labels = _transcripts(folder)
    return {p for p in files if says(labels.get(p.relative_to(root).as_posix(), {}), word)}


def parse_source(spec: str) -> tuple[Path, str]:
    """``DIR`` or ``DIR:SPLIT``: ``train`` / ``eval`` (a deterministic half of the files), ``fit`` / ``holdout`` (of the train half)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in SPLITS:
        return Path(head), tail
    return Path(spec), "all"


def share_probabilities(groups: list[tuple[int, float | None]], kind: str) -> np.ndarray | None:
    """Per-clip draw probabilities for sources of (clip count, share or None)."""
    if all(share is None for _, share in groups):
        return None
    fixed = sum(share for n, share in groups if share is not None and n)
    rest = sum(n for n, share in groups if share is None)
    if fixed > 1.0 + 1e-9 or (rest and fixed >= 1.0 - 1e-9):
        raise DataError(f"{kind} shares add up to {fixed:g}; they must leave room for the other sources")
    probs = []
    for n, share in groups:
        if not n:
            continue
        group_total = share if share is not None else (1.0 - fixed) * n / rest
        probs.extend([group_total / n] * n)
    p = np.asarray(probs, dtype=np.float64)
    return p / p.sum()


@dataclass
class ClipPool:
    """Named clips loaded into memory.

    ``probabilities`` is None when every clip is equally likely; a source given as
    ``DIR@SHARE`` gets that share of the draws, the other sources split the rest by size;
    ``DIR:SPLIT!WORD`` leaves out the takes whose transcript (a ``labels.json`` above) says WORD.
    """

    kind: str
    paths: list[str]
    clips: list[np.ndarray]
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def draw(self, rng: np.random.Generator) -> int:
        """Index of a random clip (uniform, or by the sources' shares)."""
        if self.probabilities is None:
            return int(rng.integers(len(self.clips)))
        return int(rng.choice(len(self.clips), p=self.probabilities))

    @classmethod
    def load(cls, kind: str, specs: list[str], min_samples: int = 1, trim: bool = False) -> "ClipPool":
        paths: list[str] = []
        clips: list[np.ndarray] = []
        groups: list[tuple[int, float | None]] = []
        if not specs:
            raise DataError(f"no {kind} folders given")
        for spec in specs:
            source, share = parse_share(spec)
            source, without = parse_without(source)
            folder, split = parse_source(source)
            before = len(clips)
            files = [p for p in list_audio(folder) if in_split(p, split)]
            if without:
                said = saying(files, folder, without)
                files = [p for p in files if p not in said]
            if not files:
                raise DataError(f"{folder}: no audio files for {kind} (split {split})")
            empty = 0
            for path in files:
                try:
                    audio = read_audio(path)
                except EmptyAudioError:
                    empty += 1
                    continue
                except AudioFormatError as exc:
                    raise DataError(f"unreadable {kind} clip: {exc}") from None
                if trim:
                    audio = trim_silence(audio)
                if audio.size >= min_samples and np.any(audio):
                    paths.append(str(path))
                    clips.append(audio)
            if empty:
                print(f"{kind} source {folder}: skipped {empty} file(s) with no audio samples", file=sys.stderr)
            groups.append((len(clips) - before, share))
        if not clips:
            raise DataError(f"no usable {kind} clips in {', '.join(specs)}")
        return cls(kind, paths, clips, share_probabilities(groups, kind))

    def fingerprint(self) -> list[dict]:
        return [
            {"path": p, "samples": int(c.size), "sha1": hashlib.sha1(c.tobytes()).hexdigest()[:16]}
            for p, c in zip(self.paths, self.clips)
        ]
