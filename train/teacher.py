"""The speech embedding as stage 1's teacher: openWakeWord's embedding of every training clip.

    edge-synth embed --data data/ds-train data/ds-mined

A dataset keeps features, not audio. Each clip is made again from its folder's ``dataset.json``
(the same source specs, settings and seed make it bit for bit; the first clip of every shard is
checked against its stored features) and its embeddings (``edge.embedding``: 96 numbers per 80 ms
chunk, from a model pretrained on a large amount of real speech) are written beside the shards::

    embeddings/teacher.json          the dataset's manifest hash and the embedding files' versions
    embeddings/shard-00000.npz       embeddings (n, chunks, 96) float16

Written shard by shard (a temporary name, then renamed): an interrupted run resumes. ``edge-train
--embedding-weight`` reads them: a head on stage 1's first GRU learns to predict them during
training only, so stage 1 learns the embedding's view of real speech (``train.train``, measured in
``models/README.md``); the model the device runs is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edge.embedding import EMBEDDING_DIM, SpeechEmbedding, chunk_end_sample, embeddings_for, find_embedding_files
from edge.errors import DataError
from edge.features import compute_features
from edge.geometry import DEFAULT_GEOMETRY

from .channel import ChannelConfig
from .dataset import DATASET_FILE, BuildSpec, describe, load_shard, load_synth, manifest_hash, shard_count, shard_done, shard_path
from .synth import ExampleSynth, SynthConfig
from .workers import worker_pool

TEACHER_DIR = "embeddings"
TEACHER_FILE = "teacher.json"
TEACHER_FORMAT = 1


def _tuples(value):
    """JSON lists back to the tuples a frozen config holds (nested: telephone bands)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def synth_config_of(block: dict) -> SynthConfig:
    channel = ChannelConfig(**{k: _tuples(v) for k, v in block.get("channel", {}).items()})
    rest = {k: _tuples(v) for k, v in block.items() if k != "channel"}
    return SynthConfig(**rest, channel=channel)


def spec_of(folder: Path) -> tuple[BuildSpec, ExampleSynth]:
    """The build that made ``folder``, from its ``dataset.json``; a DataError where it cannot be made again."""
    meta = json.loads((folder / DATASET_FILE).read_text())
    sources = meta["sources"]
    try:
        spec = BuildSpec(positives=tuple(sources["positives"]["specs"]), negatives=tuple(sources["negatives"]["specs"]),
                         backgrounds=tuple(sources["backgrounds"]["specs"]), out=str(folder), count=meta["count"],
                         seed=meta["seed"], shard_size=meta["shard_size"], synth=synth_config_of(meta["synth"]),
                         noise_floor_dbfs=meta["frontend"].get("noise_floor_dbfs"))
    except (KeyError, TypeError) as exc:
        raise DataError(f"{folder}: its {DATASET_FILE} does not say how to make its clips again ({exc})") from None
    with contextlib.redirect_stderr(io.StringIO()):  # the build said what loading its sources says
        synth = load_synth(spec)
    if json.loads(json.dumps(describe(spec, synth))) != meta:
        raise DataError(f"{folder}: its sources or settings are not what it was built from (a source file changed or moved); "
                        "its clips cannot be made again")
    return spec, synth


_WORKER: tuple[ExampleSynth, SpeechEmbedding] | None = None


def _init_worker(spec: BuildSpec) -> None:
    global _WORKER
    with contextlib.redirect_stderr(io.StringIO()):
        _WORKER = (load_synth(spec), SpeechEmbedding())


def _embed_shard(spec: BuildSpec, shard: int, check: np.ndarray) -> int:
    assert _WORKER is not None
    synth, emb = _WORKER
    folder = Path(spec.out)
    indices = spec.shard_range(shard)
    out = []
    for index in indices:
        example = synth.make(spec.seed, index)
        if index == indices.start and not np.array_equal(compute_features(example.audio, synth.geometry.frontend), check):
            raise DataError(f"{folder}: clip {index} does not come out as it was built; its embeddings cannot be made")
        out.append(embeddings_for(emb, example.audio).astype(np.float16))
    tmp = shard_path(folder / TEACHER_DIR, shard, temporary=True)
    np.savez(tmp, embeddings=np.stack(out))
    os.replace(tmp, shard_path(folder / TEACHER_DIR, shard))
    return len(indices)


def _first_features(folder: Path, shard: int) -> np.ndarray:
    """The stored features of a shard's first clip (what the clip made again must give)."""
    features, _ = load_shard(folder, shard)
    return features[0]


def teacher_record(folder: Path) -> dict:
    return {"format": TEACHER_FORMAT, "dataset_sha256": manifest_hash(folder), "embedding": find_embedding_files().describe()}


def build_teacher(folder: str | Path, workers: int = 0, progress=None) -> Path:
    """Embeddings of every clip of a dataset folder (resumes where a run stopped)."""
    progress = progress or sys.stderr
    folder = Path(folder)
    if not (folder / DATASET_FILE).is_file():
        raise DataError(f"{folder}: not a dataset (no {DATASET_FILE}); build one with edge-synth build")
    spec, _ = spec_of(folder)
    out = folder / TEACHER_DIR
    out.mkdir(exist_ok=True)
    record = teacher_record(folder)
    record_path = out / TEACHER_FILE
    if record_path.is_file() and json.loads(record_path.read_text()) != record:
        raise DataError(f"{out}: holds embeddings of another build or embedding model; remove it and run again")
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    todo = [s for s in range(spec.n_shards) if not shard_path(out, s).is_file()]
    done = spec.count - sum(len(spec.shard_range(s)) for s in todo)
    started, first = time.monotonic(), done
    print(f"edge-synth embed: {folder}: {done}/{spec.count} clips", file=progress, flush=True)
    if todo:
        with worker_pool(workers or os.cpu_count() or 1, _init_worker, (spec,)) as pool:
            checks = [_first_features(folder, s) for s in todo]
            for n in pool.map(_embed_shard, [spec] * len(todo), todo, checks):
                done += n
                rate = (done - first) / max(time.monotonic() - started, 1e-9)
                print(f"edge-synth embed: {folder}: {done}/{spec.count} clips ({rate:.1f} clips/s, "
                      f"eta {(spec.count - done) / rate:.0f} s)", file=progress, flush=True)
    return out


def load_teacher(folder: str | Path) -> np.ndarray:
    """(clips, chunks, 96) float16 embeddings of a dataset folder; a DataError naming the command where
    they are missing or were made for another build or embedding model."""
    folder = Path(folder)
    out = folder / TEACHER_DIR
    make = f"make them with: edge-synth embed --data {folder}"
    if not (out / TEACHER_FILE).is_file():
        raise DataError(f"{folder}: no embeddings of its clips; {make}")
    if json.loads((out / TEACHER_FILE).read_text()) != teacher_record(folder):
        raise DataError(f"{out}: made for another build or embedding model; remove it and {make}")
    meta = json.loads((folder / DATASET_FILE).read_text())
    parts = []
    for shard in range(shard_count(meta["count"], meta["shard_size"])):
        path = shard_path(out, shard)
        if not (path.is_file() and shard_done(folder, shard)):
            raise DataError(f"{folder}: embeddings of shard {shard} missing; {make}")
        with np.load(path) as data:
            parts.append(data["embeddings"])
    return np.concatenate(parts)


def teacher_steps(n_chunks: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks, steps): each embedding chunk of a clip at the first output step that has heard all of its
    audio (``step_end_sample >= chunk_end_sample``) inside the clip's ``n_steps``; where two chunks
    share a step (the clip's start), the later one."""
    g = DEFAULT_GEOMETRY
    chunks = np.arange(n_chunks)
    ends = np.array([chunk_end_sample(int(c)) for c in chunks], np.int64)
    steps = np.maximum(-(-(ends - g.step_end_sample(0)) // g.step_samples), 0)
    keep = steps < n_steps
    chunks, steps = chunks[keep], steps[keep]
    last = np.r_[steps[1:] != steps[:-1], True]  # steps rise with chunks: the last chunk of each step
    return chunks[last], steps[last]


@dataclasses.dataclass(frozen=True)
class TeacherScale:
    """Per-dimension mean and spread of a training set's embeddings: targets in standard units."""

    mean: np.ndarray
    std: np.ndarray
    FLOOR = 1e-3

    BLOCK_CLIPS = 256
    """Clips summed at a time in float64 (a float64 copy of all of them would be about 430 MB for 4,500 clips)."""

    @classmethod
    def of(cls, embeddings: np.ndarray) -> "TeacherScale":
        """Two passes over blocks of clips: the mean, then the mean squared deviation from it (numpy's std)."""
        blocks = [embeddings[i: i + cls.BLOCK_CLIPS].reshape(-1, EMBEDDING_DIM) for i in range(0, len(embeddings), cls.BLOCK_CLIPS)]
        n = sum(len(b) for b in blocks)
        mean = sum(b.sum(0, dtype=np.float64) for b in blocks) / n
        var = sum(np.square(b.astype(np.float64) - mean).sum(0) for b in blocks) / n
        return cls(mean.astype(np.float32), (np.sqrt(var) + cls.FLOOR).astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) - self.mean) / self.std


class TeacherTargets:
    """Per-step embedding targets for batches of clips laid end to end (``train.train.Batches``): each
    clip's embeddings in standard units at the steps ``teacher_steps`` gives, a mask of 1 there, 0 elsewhere."""

    def __init__(self, embeddings: np.ndarray, scale: TeacherScale, clip_steps: int) -> None:
        self.embeddings = embeddings
        self.scale = scale
        self.chunks, self.steps = teacher_steps(embeddings.shape[1], clip_steps)

    def batch(self, groups: np.ndarray, per_clip: int, total_steps: int) -> tuple[np.ndarray, np.ndarray]:
        b, _ = groups.shape
        targets = np.zeros((b, total_steps, EMBEDDING_DIM), np.float32)
        mask = np.zeros((b, total_steps), np.float32)
        for row, clips in enumerate(groups):
            for j, clip in enumerate(clips):
                at = j * per_clip + self.steps
                targets[row, at] = self.scale.apply(self.embeddings[clip, self.chunks])
                mask[row, at] = 1.0
        return targets, mask


def teacher_targets(folders: list[str], clips: int, clip_steps: int) -> TeacherTargets:
    """The embeddings of every training folder, in the order ``train.train`` loads their clips."""
    embeddings = np.concatenate([load_teacher(f) for f in folders])
    if len(embeddings) != clips:
        raise DataError(f"the embeddings hold {len(embeddings)} clips, the datasets {clips}: make them again with edge-synth embed")
    return TeacherTargets(embeddings, TeacherScale.of(embeddings), clip_steps)


EMBEDDING_HEAD = "embedding_head"
TAP_LAYER = "gru1_bn"
"""The layer whose output learns to predict the embedding: stage 1's first GRU (after its batch norm)."""


def with_embedding_head(model):
    """The stage-1 model with a second output for training only: a Dense layer on ``TAP_LAYER`` predicting
    the embedding. Trained with the stage-1 model's optimizer; ``stage1_of`` gives the device's model back."""
    import keras

    head = keras.layers.Dense(EMBEDDING_DIM, name=EMBEDDING_HEAD)(model.get_layer(TAP_LAYER).output)
    both = keras.Model(model.input, [model.output, head], name=f"{model.name}_with_teacher")
    both.compile(optimizer=model.optimizer)
    return both


def stage1_of(model):
    """The stage-1 sequence model inside ``model`` (itself where it has no embedding head), compiled for validation."""
    import keras

    if len(model.outputs) == 1:
        return model
    stage1 = keras.Model(model.input, model.outputs[0], name="trigger_edge")
    stage1.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    stage1.optimizer.build(stage1.trainable_variables)  # saved whole, so loading model.keras finds what it expects
    return stage1


class DistillStep:
    """One training step of the model with its embedding head: the stage-1 loss as ``train_on_batch``
    computes it (weighted binary cross-entropy, mean over every step) plus ``weight`` x the mean squared
    error of the embedding head at the masked steps. Returns the stage-1 part; ``aux_losses`` keeps the other."""

    def __init__(self, model, weight: float) -> None:
        import keras
        import tensorflow as tf

        self.aux_losses: list[float] = []
        lam = tf.constant(weight, tf.float32)

        @tf.function(reduce_retracing=True)
        def step(x, y, w, t, m):
            with tf.GradientTape() as tape:
                prob, emb = model(x, training=True)
                bce = keras.losses.binary_crossentropy(y, prob)
                stage1 = tf.reduce_sum(bce * w) / tf.cast(tf.size(w), tf.float32)
                mse = tf.reduce_mean(tf.square(emb - t), axis=-1)
                aux = tf.reduce_sum(mse * m) / tf.maximum(tf.reduce_sum(m), 1.0)
                loss = stage1 + lam * aux
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return stage1, aux

        self._step = step

    def __call__(self, x, y, w, t, m) -> float:
        stage1, aux = self._step(x, y, w, t, m)
        self.aux_losses.append(float(aux))
        return float(stage1)
