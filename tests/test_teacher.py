"""The speech embedding as stage 1's teacher: edge-synth embed and edge-train --embedding-weight."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.embedding import EMBEDDING_DIM, SpeechEmbedding, chunk_end_sample, embeddings_for
from edge.errors import DataError
from edge.geometry import DEFAULT_GEOMETRY

from .tiny import tiny, train_args

CLIP_STEPS = 246
CLIP_CHUNKS = 125


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A copy of the tiny training set with its embeddings made by the command."""
    from train.synth_cli import main

    folder = tmp_path_factory.mktemp("teacher") / "ds-train"
    shutil.copytree(tiny().train_data, folder)
    assert main(["embed", "--data", str(folder), "--workers", "2"]) == 0
    return folder


def test_each_chunk_lands_on_the_first_step_that_has_heard_it():
    from train.teacher import teacher_steps

    chunks, steps = teacher_steps(CLIP_CHUNKS, CLIP_STEPS)
    assert chunks[:3].tolist() == [1, 2, 3] and steps[:3].tolist() == [0, 2, 4]  # chunk 0 shares step 0 with chunk 1
    assert chunks[-1] == 123 and steps[-1] == 244
    g = DEFAULT_GEOMETRY
    for c, s in zip(chunks.tolist(), steps.tolist()):
        assert g.step_end_sample(s) >= chunk_end_sample(c)
        assert s == 0 or g.step_end_sample(s - 1) < chunk_end_sample(c)


def test_embed_makes_every_clip_again_and_stores_its_embeddings(embedded):
    from train.dataset import load_dataset
    from train.teacher import TEACHER_DIR, load_teacher, spec_of

    feats, _, meta = load_dataset(embedded)
    teacher = load_teacher(embedded)
    assert teacher.shape == (meta["count"], CLIP_CHUNKS, EMBEDDING_DIM) and teacher.dtype == np.float16
    assert sorted(p.name for p in (embedded / TEACHER_DIR).glob("shard-*.npz")) == [f"shard-0000{i}.npz" for i in range(3)]
    spec, synth = spec_of(embedded)
    clip = 21  # not the first of its shard, which the command checks itself
    audio = synth.make(spec.seed, clip).audio
    from edge.features import compute_features

    np.testing.assert_array_equal(compute_features(audio, synth.geometry.frontend), feats[clip])
    np.testing.assert_array_equal(teacher[clip], embeddings_for(SpeechEmbedding(), audio).astype(np.float16))


def test_embed_resumes_at_the_missing_shard(embedded):
    from train.synth_cli import main
    from train.teacher import TEACHER_DIR

    shards = sorted((embedded / TEACHER_DIR).glob("shard-*.npz"))
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shards}
    shards[1].unlink()
    assert main(["embed", "--data", str(embedded), "--workers", "1"]) == 0
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((embedded / TEACHER_DIR).glob("shard-*.npz"))}
    assert after[shards[0].name] == before[shards[0].name] and after[shards[2].name] == before[shards[2].name]
    assert after[shards[1].name][1] == before[shards[1].name][1]  # made again, the same bytes


def test_a_dataset_whose_sources_changed_is_refused_in_one_line(embedded, tmp_path, capsys):
    from train.synth_cli import main

    moved = tmp_path / "moved"
    shutil.copytree(embedded, moved, ignore=shutil.ignore_patterns("embeddings"))
    meta = json.loads((moved / "dataset.json").read_text())
    meta["sources"]["backgrounds"]["specs"] = meta["sources"]["negatives"]["specs"]
    (moved / "dataset.json").write_text(json.dumps(meta))
    assert main(["embed", "--data", str(moved)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be made again" in err[0] and "Traceback" not in err[0]


def test_targets_sit_at_each_clips_steps_in_standard_units(embedded):
    from train.dataset import load_dataset
    from train.teacher import load_teacher, teacher_steps, teacher_targets
    from train.train import Batches, TrainConfig

    feats, labels, _ = load_dataset(embedded)
    targets = teacher_targets([str(embedded)], len(feats), labels.shape[1])
    raw = load_teacher(embedded).astype(np.float32)
    flat = raw.reshape(-1, EMBEDDING_DIM).astype(np.float64)
    np.testing.assert_allclose(targets.scale.mean, flat.mean(0), rtol=0, atol=1e-5)
    batches = Batches(feats, labels, TrainConfig(batch_size=4, concat=(3,)), shuffle=True, teacher=targets)
    x, y, w, t, m = batches.batch(0)
    groups = batches._plan[0]
    per_clip = batches.frames // DEFAULT_GEOMETRY.stride_frames
    chunks, steps = teacher_steps(raw.shape[1], labels.shape[1])
    assert t.shape == (*y.shape[:2], EMBEDDING_DIM) and m.shape == y.shape[:2]
    assert m.sum() == groups.size * steps.size
    row, j = 1, 2
    at = j * per_clip + steps
    np.testing.assert_array_equal(m[row, at], 1.0)
    np.testing.assert_allclose(t[row, at], (raw[groups[row, j], chunks] - targets.scale.mean) / targets.scale.std, rtol=0, atol=1e-5)


def test_training_with_the_teacher_keeps_the_device_model_and_learns_from_it(embedded, tmp_path):
    from convert.convert import load_keras
    from train.train import CHECKPOINT, main

    t = tiny()
    runs = {}
    for weight in ("0", "0.5"):
        args = train_args(t, epochs=2)
        args[args.index("--data") + 1] = str(embedded)
        args[args.index("--out") + 1] = str(tmp_path / weight)
        assert main(args + ["--embedding-weight", weight, "--seed", "3"]) == 0
        runs[weight] = load_keras(tmp_path / weight / "model.keras")
    plain, taught = runs["0"], runs["0.5"]
    assert [layer.name for layer in taught.layers] == [layer.name for layer in plain.layers]
    assert len(taught.outputs) == 1
    assert len(load_keras(tmp_path / "0.5" / CHECKPOINT).outputs) == 2  # the embedding head lives in the checkpoint only
    assert not all(np.array_equal(a, b) for a, b in zip(plain.get_weights(), taught.get_weights()))
    history = json.loads((tmp_path / "0.5" / "state.json").read_text())["history"]
    assert len(history["embedding_loss"]) == 2 and all(np.isfinite(history["embedding_loss"]))
    from convert.convert import main as convert_main  # the device's int8 step model, parity-checked, as from any run

    assert convert_main(["--model", str(tmp_path / "0.5" / "model.keras"), "--data", str(embedded), "--check", str(t.val_data),
                         "--out", str(tmp_path / "taught.tflite"), "--check-clips", "6"]) == 0
    assert "embedding_loss" not in json.loads((tmp_path / "0" / "state.json").read_text())["history"]


def test_a_teacher_run_resumes_from_its_checkpoint_and_refuses_other_settings(embedded, tmp_path, capsys):
    from train.train import main

    args = train_args(tiny(), epochs=2)
    args[args.index("--data") + 1] = str(embedded)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args + ["--embedding-weight", "0.5", "--epochs", "1"]) == 0
    state = json.loads((tmp_path / "state.json").read_text())
    state.pop("finished")
    (tmp_path / "state.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert main(args) != 0  # the same folder without the teacher
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "with --embedding-weight" in err[-1] and "Traceback" not in "".join(err)
    assert main(args + ["--embedding-weight", "0.5"]) == 0
    history = json.loads((tmp_path / "state.json").read_text())["history"]
    assert len(history["loss"]) == 2 and len(history["embedding_loss"]) == 2


def test_training_with_the_teacher_needs_its_embeddings(tmp_path, capsys):
    from train.train import main

    args = train_args(tiny(), epochs=1)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args + ["--embedding-weight", "0.5"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edge-synth embed --data" in err[0]
    assert main(args + ["--embedding-weight", "0.5", "--average-weights"]) != 0
    assert "cannot be combined" in capsys.readouterr().err


def test_load_teacher_refuses_embeddings_of_another_build(embedded, tmp_path):
    from train.teacher import TEACHER_DIR, TEACHER_FILE, load_teacher

    other = tmp_path / "other"
    shutil.copytree(embedded, other)
    record = json.loads((other / TEACHER_DIR / TEACHER_FILE).read_text())
    record["dataset_sha256"] = "0" * 64
    (other / TEACHER_DIR / TEACHER_FILE).write_text(json.dumps(record))
    with pytest.raises(DataError, match="another build"):
        load_teacher(other)
