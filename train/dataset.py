"""Sharded on-disk datasets: features + labels + a manifest, built in parallel, resumable.

Layout of a dataset folder::

    dataset.json          config, seed, sizes, every source file (path, length, hash)
    shard-00000.npz       features (n, frames, 40) uint16, labels (n, steps) uint8
    shard-00000.jsonl     one record per example: sources, offsets, SNR, augmentation, seed
    examples/             a few example WAVs + a spectrogram/label plot

A shard is written to a temporary name and renamed, so an interrupted build resumes at
the first missing shard and never reads a half-written file. Example ``i`` comes from
``default_rng([seed, i])``: a rebuild with the same sources and seed is bit-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.audio import write_wav
from edge.errors import DataError
from edge.features import compute_features
from edge.geometry import DEFAULT_GEOMETRY

from .assets import real_rirs
from .augment import make_rir_bank
from .sources import ClipPool
from .synth import ExampleSynth, SynthConfig
from .workers import worker_pool

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
EXAMPLE_WAVS = 4


@dataclass(frozen=True)
class BuildSpec:
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    backgrounds: tuple[str, ...]
    out: str
    count: int
    seed: int = 0
    shard_size: int = 250
    workers: int = 0
    synth: SynthConfig = SynthConfig()
    noise_floor_dbfs: float | None = None
    """The noise floor of the frontend the features are computed with (``edge.noise_floor``); the
    model trained on them carries it into its metadata (``edge-convert``), so the device adds the same."""

    @property
    def n_shards(self) -> int:
        return shard_count(self.count, self.shard_size)

    def shard_range(self, shard: int) -> range:
        """The example indices shard ``shard`` holds."""
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.count))


def shard_count(count: int, shard_size: int) -> int:
    return (count + shard_size - 1) // shard_size


def shard_path(folder: Path, shard: int, suffix: str = "npz", temporary: bool = False) -> Path:
    """``shard-NNNNN.SUFFIX`` in ``folder`` (``.shard-NNNNN.tmp.SUFFIX`` while it is being written)."""
    return folder / (f".shard-{shard:05d}.tmp.{suffix}" if temporary else f"shard-{shard:05d}.{suffix}")


_WORKER: ExampleSynth | None = None


def load_synth(spec: BuildSpec) -> ExampleSynth:
    positives = ClipPool.load("positive", list(spec.positives), trim=True)
    negatives = ClipPool.load("negative", list(spec.negatives), trim=True)
    backgrounds = ClipPool.load("background", list(spec.backgrounds))
    real = real_rirs() if spec.synth.real_rir_share > 0 and spec.synth.reverb_prob > 0 else ()
    geometry = replace(DEFAULT_GEOMETRY, frontend=DEFAULT_GEOMETRY.frontend.with_noise_floor(spec.noise_floor_dbfs))
    return ExampleSynth(positives, negatives, backgrounds, make_rir_bank(spec.seed), spec.synth, geometry=geometry,
                        real_rirs=tuple(real))


def _init_worker(spec: BuildSpec) -> None:
    global _WORKER
    with contextlib.redirect_stderr(io.StringIO()):  # the parent loaded the same sources and said what loading says
        _WORKER = load_synth(spec)


def _build_shard(spec: BuildSpec, shard: int) -> int:
    assert _WORKER is not None
    out = Path(spec.out)
    indices = spec.shard_range(shard)
    feats, labels, records = [], [], []
    for index in indices:
        example = _WORKER.make(spec.seed, index)
        feats.append(compute_features(example.audio, _WORKER.geometry.frontend))
        labels.append(example.labels)
        records.append(example.record)
    tmp = shard_path(out, shard, temporary=True)
    np.savez(tmp, features=np.stack(feats), labels=np.stack(labels))
    with open(shard_path(out, shard, "jsonl"), "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(tmp, shard_path(out, shard))
    return len(indices)


def shard_done(out: Path, shard: int) -> bool:
    return shard_path(out, shard).is_file() and shard_path(out, shard, "jsonl").is_file()


def describe(spec: BuildSpec, synth: ExampleSynth) -> dict:
    return {
        "format": FORMAT_VERSION,
        "seed": spec.seed,
        "count": spec.count,
        "shard_size": spec.shard_size,
        "synth": spec.synth.to_dict(),
        "geometry": {"steps": synth.n_steps, "label_steps": synth.geometry.label_steps, "step_samples": synth.geometry.step_samples},
        "frontend": synth.geometry.frontend.to_dict(),
        "sources": {
            "positives": {"specs": list(spec.positives), "files": synth.positives.fingerprint()},
            "negatives": {"specs": list(spec.negatives), "files": synth.negatives.fingerprint()},
            "backgrounds": {"specs": list(spec.backgrounds), "files": synth.backgrounds.fingerprint()},
        },
    }


def build(spec: BuildSpec, progress=None) -> Path:
    """Build (or resume) a dataset; returns its folder. Progress lines go to ``progress`` (stderr)."""
    progress = progress or sys.stderr
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    synth = load_synth(spec)
    meta = json.loads(json.dumps(describe(spec, synth)))  # tuples -> lists, as read back
    meta_path = out / DATASET_FILE
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            raise DataError(f"{out}: holds a dataset built with other sources/settings; use a new --out folder")
    else:
        meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True))
    todo = [s for s in range(spec.n_shards) if not shard_done(out, s)]
    done = spec.count - sum(len(spec.shard_range(s)) for s in todo)
    workers = spec.workers or os.cpu_count() or 1
    started = time.monotonic()
    _report(progress, done, spec.count, started, done)
    if todo:
        with worker_pool(workers, _init_worker, (spec,)) as pool:
            built = 0
            for n in pool.map(_build_shard, [spec] * len(todo), todo):
                built += n
                _report(progress, done + built, spec.count, started, done)
    write_examples(out, synth, spec.seed)
    return out


def _report(stream, done: int, total: int, started: float, resumed_from: int) -> None:
    elapsed = time.monotonic() - started
    rate = (done - resumed_from) / elapsed if elapsed > 0 else 0.0
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
    print(f"synth: {done}/{total} clips ({rate:.1f} clips/s, eta {eta})", file=stream, flush=True)


def write_examples(out: Path, synth: ExampleSynth, seed: int) -> None:
    """A few example WAVs and a plot of spectrogram + labels (the assignment's Figure 2)."""
    folder = out / "examples"
    folder.mkdir(exist_ok=True)
    examples = [synth.make(seed, i) for i in range(EXAMPLE_WAVS)]
    for i, ex in enumerate(examples):
        write_wav(folder / f"example-{i}.wav", ex.audio)
    try:
        from .plots import plot_examples

        plot_examples(folder / "examples.png", examples, synth.geometry)
    except ImportError:
        pass


def manifest_hash(folder: str | Path) -> str:
    return hashlib.sha256((Path(folder) / DATASET_FILE).read_bytes()).hexdigest()


def load_dataset(folder: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """All shards of a dataset: features (n, frames, 40) uint16, labels (n, steps) uint8."""
    folder = Path(folder)
    meta_path = folder / DATASET_FILE
    if not meta_path.is_file():
        raise DataError(f"{folder}: not a dataset (no {DATASET_FILE}); build one with edge-synth build")
    meta = json.loads(meta_path.read_text())
    shards = [load_shard(folder, shard) for shard in range(shard_count(meta["count"], meta["shard_size"]))]
    return np.concatenate([f for f, _ in shards]), np.concatenate([l for _, l in shards]), meta


def load_shard(folder: Path, shard: int) -> tuple[np.ndarray, np.ndarray]:
    """One shard's features and labels; a DataError where the build has not written it yet."""
    if not shard_done(folder, shard):
        raise DataError(f"{folder}: shard {shard} missing; resume the build with the same command")
    with np.load(shard_path(folder, shard)) as data:
        return data["features"], data["labels"]
