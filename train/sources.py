"""Clip pools: folders of recordings (or TTS output) loaded once as 16 kHz int16 arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import read_audio
from edge.errors import AudioFormatError, DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SPLIT_BUCKETS = 100
SPLITS = ("all", "train", "eval")
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


def in_split(path: Path, split: str, eval_percent: int = 50) -> bool:
    """Deterministic file-level split by a hash of the file name."""
    if split == "all":
        return True
    bucket = int(hashlib.sha1(path.name.encode()).hexdigest(), 16) % SPLIT_BUCKETS
    is_eval = bucket < eval_percent
    return is_eval if split == "eval" else not is_eval


def parse_source(spec: str) -> tuple[Path, str]:
    """``DIR`` or ``DIR:train`` / ``DIR:eval`` (a deterministic half of the files)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in SPLITS:
        return Path(head), tail
    return Path(spec), "all"


@dataclass
class ClipPool:
    """Named clips loaded into memory."""

    kind: str
    paths: list[str]
    clips: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.clips)

    @classmethod
    def load(cls, kind: str, specs: list[str], min_samples: int = 1, trim: bool = False) -> "ClipPool":
        paths: list[str] = []
        clips: list[np.ndarray] = []
        if not specs:
            raise DataError(f"no {kind} folders given")
        for spec in specs:
            folder, split = parse_source(spec)
            files = [p for p in list_audio(folder) if in_split(p, split)]
            if not files:
                raise DataError(f"{folder}: no audio files for {kind} (split {split})")
            for path in files:
                try:
                    audio = read_audio(path)
                except AudioFormatError as exc:
                    raise DataError(f"unreadable {kind} clip: {exc}") from None
                if trim:
                    audio = trim_silence(audio)
                if audio.size >= min_samples and np.any(audio):
                    paths.append(str(path))
                    clips.append(audio)
        if not clips:
            raise DataError(f"no usable {kind} clips in {', '.join(specs)}")
        return cls(kind, paths, clips)

    def fingerprint(self) -> list[dict]:
        return [
            {"path": p, "samples": int(c.size), "sha1": hashlib.sha1(c.tobytes()).hexdigest()[:16]}
            for p, c in zip(self.paths, self.clips)
        ]
