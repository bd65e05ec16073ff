"""Clip folders: many voices of each text written as WAV files plus a resumable manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.audio import SAMPLE_RATE
from edge.errors import DataError
from edge.progress import Progress

from .common import ENGLISH, VoiceSpec, _seed_int, check_text
from .registry import REGISTRY, engine, synthesize, voice_grid

MANIFEST = "manifest.jsonl"
SLUG_CHARS = 40
SLUG_HASH_CHARS = 6
DURATION_DIGITS = 4


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:SLUG_CHARS] or "text"
    return f"{s}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:SLUG_HASH_CHARS]}"


def _read_manifest(path: Path) -> dict[str, dict]:
    """The manifest's rows by file name (none when it does not exist; a torn last line is skipped)."""
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


def _write_manifest(path: Path, rows: dict[str, dict]) -> None:
    """Replace the manifest, atomically, with ``rows`` sorted by file."""
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(rows[f], sort_keys=True) + "\n" for f in sorted(rows)), encoding="utf-8")
    os.replace(tmp, path)


def _write_part(path: Path, audio: np.ndarray) -> None:
    """Like ``edge.audio.write_wav`` (16-bit PCM WAV), to a name without a .wav suffix."""
    import soundfile as sf

    sf.write(str(path), np.asarray(audio, dtype=np.int16), SAMPLE_RATE, format="WAV", subtype="PCM_16")


# --------------------------------------------------------------------------- workers


def _clip_task(task: dict, out_dir: Path) -> tuple[str, object] | None:
    """Synthesize one planned clip; its manifest row, its error, or None (not to be written)."""
    v = VoiceSpec(task["engine"], task["voice"], task["pitch"], task["speed"], tuple(tuple(p) for p in task["extra"]))
    try:
        audio = synthesize(task["text"], v)
    except Exception as exc:  # report, keep going
        return ("error", f"{task['file']}: {exc}") if task["write"] else None
    if not task["write"]:
        return None  # synthesized only to keep a chunk's noise sequence
    tmp = out_dir / f".{task['file']}.part"  # never matches *.wav while half-written
    _write_part(tmp, audio)
    os.replace(tmp, out_dir / task["file"])
    return ("ok", {
        "file": task["file"], "text": task["text"], "engine": v.engine, "voice": v.key(),
        "voice_name": v.voice, "pitch": v.pitch, "speed": v.speed, "seed": task["seed"],
        "duration": round(len(audio) / SAMPLE_RATE, DURATION_DIGITS),
    })


def _clip_job(job: dict) -> list[tuple[str, object]]:
    """Worker: synthesize one unit (one clip, or a seeded chunk of one engine's clips)."""
    out_dir = Path(job["out_dir"])
    if job["chunk_seed"] is not None:
        engine(job["engine"]).reseed(job["chunk_seed"])
    results = (_clip_task(task, out_dir) for task in job["tasks"])
    return [r for r in results if r is not None]


class _Collector:
    """Worker results as they come in: rows appended to the open manifest, errors kept, progress shown."""

    def __init__(self, rows: dict[str, dict], fh, meter: Progress | None) -> None:
        self.rows = rows
        self.fh = fh
        self.meter = meter
        self.errors: list[str] = []
        self.done = 0

    def add(self, results: list[tuple[str, object]]) -> None:
        for kind, payload in results:
            self.done += 1
            if kind == "ok":
                self.rows[payload["file"]] = payload
                self.fh.write(json.dumps(payload, sort_keys=True) + "\n")
                self.fh.flush()
            else:
                self.errors.append(str(payload))
        if self.meter is not None:
            self.meter.update(self.done)


# --------------------------------------------------------------------------- planning


def _clean_texts(texts: Sequence[str] | str) -> list[str]:
    """The texts checked and whitespace-collapsed, duplicates dropped (first kept)."""
    if isinstance(texts, str):
        texts = [texts]
    return list(dict.fromkeys(check_text(t) for t in texts))


def _plan_text(text: str, n: int, out_dir: Path, seed: int, existing: dict[str, dict], *,
               engines: Sequence[str] | None, language: str) -> list[dict]:
    """One task per clip of ``text``; ``write`` is False for clips already done."""
    voices = voice_grid(_seed_int(seed, "voices", text), n, engines=engines, language=language)
    slug = _slug(text)
    plan = []
    for i, v in enumerate(voices):
        f = f"{slug}-{i:04d}.wav"
        old = existing.get(f)
        done = (old is not None and (out_dir / f).is_file() and old.get("text") == text
                and old.get("voice") == v.key() and old.get("seed") == seed)
        plan.append({"file": f, "text": text, "engine": v.engine, "voice": v.voice, "pitch": v.pitch,
                     "speed": v.speed, "extra": [list(p) for p in v.extra], "seed": seed, "write": not done})
    return plan


def _jobs(plan: list[dict], texts: Sequence[str], out_dir: Path, seed: int) -> list[dict]:
    """Worker units: a job per clip to write, and seeded chunks for engines with a ``chunk``, first."""
    chunked = [e for e in REGISTRY if e.chunk]
    chunked_names = {e.name for e in chunked}
    jobs: list[dict] = []
    for text in texts:
        mine = [t for t in plan if t["text"] == text]
        jobs += [_job(out_dir, [t]) for t in mine if t["write"] and t["engine"] not in chunked_names]
        for eng in chunked:
            tasks = [t for t in mine if t["engine"] == eng.name]
            for c in range(0, len(tasks), eng.chunk):
                chunk = tasks[c:c + eng.chunk]
                if any(t["write"] for t in chunk):
                    jobs.append(_job(out_dir, chunk, eng.name, _seed_int(seed, eng.name, text, c)))
    jobs.sort(key=lambda j: j["chunk_seed"] is None)  # chunks first: they are the longest units
    return jobs


def _job(out_dir: Path, tasks: list[dict], engine_name: str | None = None, chunk_seed: int | None = None) -> dict:
    return {"out_dir": str(out_dir), "tasks": tasks, "engine": engine_name, "chunk_seed": chunk_seed}


def _prepare(plan: list[dict]) -> None:
    """Let each engine with clips to write build its shared files before workers start."""
    for name in dict.fromkeys(t["engine"] for t in plan if t["write"]):
        engine(name).prepare()


def _run_jobs(jobs: list[dict], workers: int | None, manifest_path: Path, rows: dict[str, dict],
              progress: bool) -> list[str]:
    """Run ``jobs`` (in a worker pool when there are several), adding to ``rows``; the errors."""
    total = sum(sum(t["write"] for t in j["tasks"]) for j in jobs)
    workers = max(1, min(int(workers or 1), len(jobs) or 1))
    meter = Progress("tts: clips", total) if progress and total else None
    with open(manifest_path, "a", encoding="utf-8") as fh:
        collector = _Collector(rows, fh, meter)
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                collector.add(_clip_job(job))
        else:
            from ..workers import worker_pool

            with worker_pool(workers) as pool:
                for res in pool.unordered(_clip_job, jobs):
                    collector.add(res)
    if meter is not None:
        meter.close()
    return collector.errors


def generate_clips(texts: Sequence[str], n_per_text: int, out_dir: Path, seed: int,
                   workers: int | None = os.cpu_count(), *, engines: Sequence[str] | None = None,
                   progress: bool = True, language: str = ENGLISH) -> list[dict]:
    """Write ``n_per_text`` clips per text into ``out_dir`` and return the manifest rows.

    Files are ``<slug>-<texthash>-<index>.wav`` (16 kHz mono int16); ``out_dir/manifest.jsonl``
    gets one JSON row per clip (file, text, engine, voice key, voice_name, pitch, speed,
    seed, duration in s), sorted by file. Voices come from :func:`voice_grid` seeded with
    ``(seed, text)``, so the same seed gives the same voices and byte-identical files, and
    adding a text does not change the others. Resumable: a clip whose file exists and is
    listed with the same text, voice and seed is skipped. Clips that fail are reported on
    stderr and left out; ``DataError`` when every clip of a text fails (e.g. silence).
    """
    clean_texts = _clean_texts(texts)
    if not isinstance(n_per_text, (int, np.integer)) or n_per_text < 1:
        raise DataError(f"n_per_text must be a positive integer, got {n_per_text!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    existing = _read_manifest(manifest_path)
    plan = [task for text in clean_texts for task in
            _plan_text(text, int(n_per_text), out_dir, seed, existing, engines=engines, language=language)]
    jobs = _jobs(plan, clean_texts, out_dir, seed)
    _prepare(plan)
    rows = {f: r for f, r in existing.items() if (out_dir / f).is_file()}
    errors = _run_jobs(jobs, workers, manifest_path, rows, progress)
    _write_manifest(manifest_path, rows)
    for e in errors:
        print(f"tts: warning: {e}", file=sys.stderr)
    for text in clean_texts:
        if not any(t["file"] in rows for t in plan if t["text"] == text):
            raise DataError(f"no TTS engine could say {text!r}: every clip failed or was silent")
    return [rows[f] for f in sorted({t["file"] for t in plan}) if f in rows]
