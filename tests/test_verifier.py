"""Stage 2: the speech embedding, the verifier head and the cascade, with the real models.

The embedding models are the real ones inside the pyopen-wakeword wheel; the head is trained
here at toy scale by ``edge-verifier`` itself (real TensorFlow, real int8 conversion), and
the shipped model's verifier is checked on the real example recordings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.embedding import (CHUNK_SAMPLES, EMBEDDING_DIM, EmbeddingStream, SpeechEmbedding, embeddings_for,
                            find_embedding_files)
from edge.errors import ModelError
from edge.model import StreamingModel, default_model_path
from edge.pipeline import Pipeline
from edge.speaker import SpeakerGate
from edge.verifier import (STAGE1_LOGIT_LIMIT, Cascade, EnrolledHead, Stage1Peak, VerifierConfig, VerifierHead, cascade_for, cascade_track,
                           load_enrolled, load_verifier, peak_logits, sigmoid, stage1_logit, verify_chunk)
from train.verifier import CANDIDATE_THRESHOLD, MINE_THRESHOLD

from .paths import ACTIVATE, DATA, DEV, REPO, TF_NOISE

CLIP = DEV / "coursera__1.wav"
README_LINES = [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
                for line in block.splitlines()]


def readme_line(start: str) -> str:
    return next(line for line in README_LINES if line.startswith(start))
WINDOW = 16
CHUNK_SIZES = (1, 160, 999, 1280, 4000)


@pytest.fixture(scope="module")
def embedding():
    return SpeechEmbedding()


@pytest.fixture(scope="module")
def clip():
    return read_audio(CLIP)


# --- the embedding: device ring buffer == whole clip ------------------------------------------


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_streamed_windows_equal_whole_clip_embeddings(embedding, clip, size):
    whole = embeddings_for(embedding, clip)
    assert whole.shape == (clip.size // CHUNK_SAMPLES, EMBEDDING_DIM)
    stream = EmbeddingStream(SpeechEmbedding(), WINDOW)
    checked = 0
    for start in range(0, clip.size, size):
        stream.process(clip[start: start + size])
        chunk = stream.last_chunk
        if chunk >= WINDOW - 1 and chunk % 3 == 0:
            np.testing.assert_array_equal(stream.window_at(chunk), whole[chunk - WINDOW + 1: chunk + 1])
            checked += 1
    assert checked >= 10


def test_ring_at_stream_start_reads_silence_before_the_first_sample(embedding, clip):
    """Less than 2 s of history: the missing audio is silence, as in the whole-clip version."""
    stream = EmbeddingStream(SpeechEmbedding(), WINDOW)
    stream.process(clip[: 3 * CHUNK_SAMPLES + 17])
    assert stream.last_chunk == 2
    early = stream.window_at(2)
    assert early.shape == (WINDOW, EMBEDDING_DIM)
    np.testing.assert_array_equal(early, embeddings_for(embedding, clip[: 3 * CHUNK_SAMPLES], np.arange(2 - WINDOW + 1, 3)))
    silent = embeddings_for(embedding, np.zeros(CHUNK_SAMPLES, np.int16), np.array([-5]))[0]
    np.testing.assert_array_equal(early[0], silent)  # chunks before the stream: the embedding of silence
    assert not np.array_equal(early[-1], silent)


def test_cache_shares_embeddings_between_nearby_windows(clip):
    stream = EmbeddingStream(SpeechEmbedding(), WINDOW)
    stream.process(clip[: 40 * CHUNK_SAMPLES])
    stream.window_at(38)
    assert stream.computed == WINDOW
    stream.window_at(39)  # one new chunk: one new embedding
    assert stream.computed == WINDOW + 1
    with pytest.raises(ModelError, match="older than the verifier's audio ring"):
        stream.window_at(10)
    stream.reset()
    assert stream.samples_seen == 0 and stream.last_chunk == -1


def test_mel_model_clamps_per_window_so_batches_are_not_used(embedding, clip):
    """Why mel windows go one per call: the model's log floor follows the loudest value of its input."""
    quiet = np.zeros((2, 1760), np.float32)
    loud = quiet.copy()
    loud[1] = clip[CHUNK_SAMPLES * 20: CHUNK_SAMPLES * 20 + 1760]
    alone = embedding.mel_windows(quiet[:1])[0]
    assert not np.array_equal(embedding.mel_windows(loud)[0], alone)
    np.testing.assert_array_equal(embedding.mel_windows(quiet[:1])[0], alone)


# --- a toy verifier, trained by the real command -------------------------------------------------


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """edge-verifier end to end at toy scale: examples, Keras head, int8 head, threshold, metadata."""
    root = tmp_path_factory.mktemp("verifier")
    for suffix in (".tflite", ".json"):
        shutil.copy(default_model_path().with_suffix(suffix), root / f"toy{suffix}")
    meta = json.loads((root / "toy.json").read_text())
    meta.pop("verifier", None)
    (root / "toy.json").write_text(json.dumps(meta))
    line = readme_line("edge-verifier ")  # the README's line, on the toy model, at toy scale
    line = line.replace("data/computer/computer.tflite", str(root / "toy.tflite")).replace("data/computer/verifier", str(root / "work"))
    line = line.replace("data/computer/tts/positives", f"'{ACTIVATE / 'positives' / 'coursera__[12]*'}'")
    line = line.replace("edge-verifier", f"{sys.executable} -m train.verifier", 1)
    toy_flags = (f"--negatives {DATA / 'speech' / 'ljspeech'}:fit --hard-negatives {ACTIVATE / 'negatives'} "
                 f"--calibration {DATA / 'speech' / 'asterisk_prompts'}:holdout "
                 "--positive-examples 30 --hard-examples 10 --negative-hours 0.02 --epochs 2")
    done = subprocess.run(f"{line} {toy_flags}", shell=True, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return root / "toy.tflite", done.stderr


def test_edge_verifier_writes_one_versioned_metadata_file(toy):
    model, log = toy
    block = json.loads(model.with_suffix(".json").read_text())["verifier"]
    assert block["format"] == "trigger-edge-verifier" and block["version"] == 2
    assert block["stage1_weight"] == 1.0 and block["peak_seconds"] == 1.0  # the score fuses stage 1's peak logit
    assert (model.parent / block["head"]).is_file()
    assert block["embedding"] == find_embedding_files().describe()
    assert 0 < block["threshold"] < 1 and block["candidate_threshold"] == CANDIDATE_THRESHOLD == 0.2
    # the head learns from windows mined below the gate (what a noisier room lifts over it)
    assert block["training"]["mine_threshold"] == MINE_THRESHOLD == 0.05
    assert block["training"]["parity"]["decision_agreement"] >= 0.95
    assert block["calibration"]["negative_hours"] > 0
    assert block["calibration"]["conditions"] == ["clean", "augmented"]  # the held-out audio twice: as it is, and in rooms and noise
    assert "ready: threshold" in log
    assert not [line for line in log.splitlines() if any(n in line for n in TF_NOISE)], log  # TensorFlow's chatter hidden
    head = VerifierHead(model.parent / block["head"], block["head_sha256"], WINDOW)
    assert head.window == WINDOW
    # the score scale keeps scores below 1: the parity windows' 99th-percentile |logit| maps to 8
    p99 = block["training"]["parity"]["abs_logit_p99"]
    assert block["score_scale"] == round(min(1.0, 8.0 / p99), 6) and 0 < block["score_scale"] <= 1


def test_the_score_is_the_sigmoid_of_the_scaled_logit(toy):
    from edge.verifier import load_verifier, sigmoid

    model, _ = toy
    block = dict(json.loads(model.with_suffix(".json").read_text())["verifier"], score_scale=0.25)
    head, config, _ = load_verifier(model, block)
    assert config.score_scale == 0.25 and head.score_scale == 0.25
    windows = np.random.default_rng(3).normal(0, 1, (5, WINDOW, EMBEDDING_DIM)).astype(np.float32)
    for w in windows:
        assert head.score(w) == sigmoid(0.25 * head.logit(w))
    # a block from before the scale (the shipped model's) keeps the plain sigmoid
    del block["score_scale"]
    head, config, _ = load_verifier(model, block)
    assert config.score_scale == 1.0 and head.score(windows[0]) == sigmoid(head.logit(windows[0]))
    for bad in (0, -1, "inf", "x"):
        with pytest.raises(ModelError, match="incomplete or invalid"):
            load_verifier(model, dict(block, score_scale=bad))


def test_rerun_resumes_from_the_examples(toy):
    model, _ = toy
    work = model.parent / "work"
    assert (work / "examples.npz").is_file() and (work / "head.keras").is_file()


@pytest.mark.parametrize("stage1_weight", [0.0, 1.0])
def test_streaming_cascade_equals_whole_clip_track(toy, clip, stage1_weight):
    model_path, _ = toy
    model = StreamingModel(model_path)
    block = json.loads(model_path.with_suffix(".json").read_text())["verifier"]
    head, _, emb = load_verifier(model_path, block)
    config = VerifierConfig(candidate_threshold=0.02, threshold=0.5, hold_seconds=0.48, window=WINDOW, stage1_weight=stage1_weight,
                            score_scale=head.score_scale)
    cascade = Cascade(head, config, emb)
    pipe = Pipeline(model, trace=True, verifier=cascade)
    for start in range(0, clip.size, 700):
        pipe.process(clip[start: start + 700])
    streamed = pipe.trace.verified
    assert streamed, "stage 1 opened no candidate on a clip with the word"
    whole = embeddings_for(SpeechEmbedding(), clip)

    def logit_chunk(chunks):
        return head.logits(np.stack([whole[c - WINDOW + 1: c + 1] for c in chunks]))

    positions, scores = cascade_track(np.array(pipe.trace.samples), np.array(pipe.trace.probabilities), config, logit_chunk)
    assert [s for s, _ in streamed] == positions.tolist()
    np.testing.assert_allclose([v for _, v in streamed], scores, rtol=0, atol=1e-12)
    assert cascade.verifications == len(streamed)
    if stage1_weight == 0.0:  # the head alone: its own score
        chunks = [verify_chunk(p) for p in positions.tolist()]
        np.testing.assert_allclose(scores, [head.score(whole[c - WINDOW + 1: c + 1]) for c in chunks], rtol=0, atol=1e-12)


def test_two_candidates_close_together_share_embeddings(toy, clip):
    """Two stage-1 candidates 0.5 s apart: the second verifies only chunks not seen before."""
    model_path, _ = toy
    block = json.loads(model_path.with_suffix(".json").read_text())["verifier"]
    head, _, emb = load_verifier(model_path, block)
    config = VerifierConfig(candidate_threshold=0.5, threshold=0.5, hold_seconds=0.08, window=WINDOW)
    cascade = Cascade(head, config, emb)
    fed = 0

    def step(probability, sample):
        nonlocal fed
        cascade.process_audio(clip[fed:sample])  # the audio arrives with its steps, as in the pipeline
        fed = sample
        return cascade.process(probability, sample)

    first = [step(0.9, s) for s in range(30 * CHUNK_SAMPLES, 31 * CHUNK_SAMPLES + 1, 640)]
    computed = cascade.stream.computed
    assert computed == WINDOW + 1  # chunk 29's window, then chunk 30 adds one
    second = [step(0.9, s) for s in range(36 * CHUNK_SAMPLES, 37 * CHUNK_SAMPLES + 1, 640)]
    assert sum(v is not None for v in first) == 2 and sum(v is not None for v in second) == 2
    assert cascade.stream.computed - computed == 6  # chunks 31..36: only the ones not cached
    assert step(0.0, 45 * CHUNK_SAMPLES) is None  # closed: stage 1 below the candidate threshold


def test_runner_uses_the_verifier_and_no_verifier_turns_it_off(toy):
    model, _ = toy
    run = [sys.executable, "-m", "edge.cli", "--model", str(model), "--input", str(CLIP), "-v"]
    with_v = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120)
    without = subprocess.run([*run, "--no-verifier"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert with_v.returncode == 0 and without.returncode == 0, with_v.stderr[-2000:] + without.stderr[-2000:]
    assert "(verifier; candidates at" in with_v.stderr
    assert "(verifier;" not in without.stderr


def test_mismatched_embedding_is_refused_with_one_line(toy, tmp_path):
    model, _ = toy
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["verifier"]["embedding"]["embedding_sha256"] = "0" * 64
    for suffix in (".tflite",):
        shutil.copy(model, tmp_path / f"m{suffix}")
    shutil.copy(model.parent / meta["verifier"]["head"], tmp_path / meta["verifier"]["head"])
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="trained with pyopen-wakeword"):
        cascade_for(StreamingModel(tmp_path / "m.tflite"))
    done = subprocess.run([sys.executable, "-m", "edge.cli", "--model", str(tmp_path / "m.tflite"), "--input", str(CLIP)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip install pyopen-wakeword==1.1.0" in done.stderr
    ok = subprocess.run([sys.executable, "-m", "edge.cli", "--model", str(tmp_path / "m.tflite"), "--input", str(CLIP), "--no-verifier"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0


def test_replaced_head_fails_its_sha256(toy, tmp_path):
    model, _ = toy
    meta = json.loads(model.with_suffix(".json").read_text())
    head = model.parent / meta["verifier"]["head"]
    with pytest.raises(ModelError, match="sha256"):
        VerifierHead(head, "f" * 64, WINDOW)
    with pytest.raises(ModelError, match="incomplete or invalid"):
        load_verifier(model, {k: v for k, v in meta["verifier"].items() if k != "threshold"})
    with pytest.raises(ModelError, match="version 7 not supported"):
        load_verifier(model, dict(meta["verifier"], version=7))


def test_bad_verifier_settings_are_refused():
    with pytest.raises(ValueError, match="candidate threshold"):
        VerifierConfig(candidate_threshold=0.0)
    with pytest.raises(ValueError, match="window"):
        VerifierConfig(window=0)
    for hold in (1e308, float("nan"), -0.1):  # a huge hold overflowed once a candidate opened
        with pytest.raises(ValueError, match="verifier hold"):
            VerifierConfig(hold_seconds=hold)
    for bad in ({"stage1_weight": -0.5}, {"stage1_weight": float("inf")}, {"stage1_weight": 1e308}, {"peak_seconds": 0.0},
                {"peak_seconds": 1e308}, {"peak_seconds": float("nan")}):
        with pytest.raises(ValueError, match="stage-1 weight"):
            VerifierConfig(**bad)


# --- fusion: the verifier's score also hears stage 1 ---------------------------------------------


def test_stage1_logit_is_clipped_and_exact():
    assert stage1_logit(0.5) == 0.0
    assert stage1_logit(0.0) == -STAGE1_LOGIT_LIMIT and stage1_logit(1.0) == STAGE1_LOGIT_LIMIT
    assert stage1_logit(1e-9) == -STAGE1_LOGIT_LIMIT
    assert abs(stage1_logit(0.9) - np.log(9.0)) < 1e-12


def test_fused_score_is_the_weighted_mean_of_the_two_logits():
    config = VerifierConfig(score_scale=0.5, stage1_weight=1.0)
    assert config.score(4.0, -2.0) == sigmoid(0.5 * 1.0)
    assert VerifierConfig(score_scale=0.5, stage1_weight=3.0).score(4.0, 0.0) == sigmoid(0.5 * 1.0)
    alone = VerifierConfig(score_scale=0.5)
    assert alone.score(4.0, -16.0) == sigmoid(2.0)  # weight 0: stage 1 does not count
    np.testing.assert_array_equal(config.scores([4.0, 2.0], [-2.0, 2.0]), [sigmoid(0.5), sigmoid(1.0)])
    np.testing.assert_array_equal(config.scores([4.0, 2.0], None), [sigmoid(2.0), sigmoid(1.0)])  # stage 2 alone


def test_stage1_peak_holds_the_highest_logit_of_the_last_second_then_forgets_it():
    config = VerifierConfig(stage1_weight=1.0, peak_seconds=0.1)  # 1,600 samples
    peak = Stage1Peak(config)
    assert peak.process(0.5, 640) == 0.0
    assert abs(peak.process(0.9, 1280) - np.log(9)) < 1e-12
    assert abs(peak.process(0.1, 1920) - np.log(9)) < 1e-12  # 0.9 at 1280 is still inside (320, 1920]
    assert abs(peak.process(0.2, 2880) - np.log(0.25)) < 1e-12  # 1280 <= 2880 - 1600: forgotten; 0.2 beats 0.1
    peak.reset()
    assert peak.process(0.1, 100) == stage1_logit(0.1)  # reset: nothing before


def test_streamed_stage1_peak_equals_whole_clip_peaks():
    rng = np.random.default_rng(7)
    config = VerifierConfig(stage1_weight=1.0)
    steps = np.arange(1, 400) * 640
    probs = rng.random(steps.size) ** 4
    peak = Stage1Peak(config)
    streamed = [peak.process(p, s) for p, s in zip(probs.tolist(), steps.tolist())]
    np.testing.assert_array_equal(streamed, peak_logits(steps, probs, steps, config))


def test_metadata_versions_fusion_and_refuses_what_it_cannot_read(toy):
    model, _ = toy
    block = json.loads(model.with_suffix(".json").read_text())["verifier"]
    _, config, _ = load_verifier(model, block)
    assert config.stage1_weight == 1.0 and config.peak_seconds == 1.0
    old = {k: v for k, v in block.items() if k not in ("stage1_weight", "peak_seconds")} | {"version": 1}
    assert load_verifier(model, old)[1].stage1_weight == 0.0  # a version-1 block: the head alone, as it was built
    with pytest.raises(ModelError, match="incomplete or invalid"):
        load_verifier(model, dict(old, version=2))  # version 2 must say how it fuses
    with pytest.raises(ModelError, match="version 3 not supported"):
        load_verifier(model, dict(block, version=3))
    with pytest.raises(ModelError, match="incomplete or invalid"):
        load_verifier(model, dict(block, stage1_weight=-1))


def test_threshold_only_resets_the_threshold_for_another_fusion_weight(toy, tmp_path):
    model, _ = toy
    for suffix in (".tflite", ".json"):
        shutil.copy(model.with_suffix(suffix), tmp_path / f"toy{suffix}")
    before = json.loads(model.with_suffix(".json").read_text())["verifier"]
    shutil.copy(model.parent / before["head"], tmp_path / before["head"])
    line = [sys.executable, "-m", "train.verifier", "--model", str(tmp_path / "toy.tflite"),
            "--threshold-only", "--calibration", f"{DATA / 'speech' / 'asterisk_prompts'}:holdout"]  # no --out: nothing to keep
    done = subprocess.run(line + ["--stage1-weight", "0"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    after = json.loads((tmp_path / "toy.json").read_text())["verifier"]
    assert after["version"] == 1 and "stage1_weight" not in after and after["head_sha256"] == before["head_sha256"]
    assert after["candidate_threshold"] == before["candidate_threshold"]  # the gate stays unless asked
    assert after["training"] == before["training"] and after["calibration"]["negative_hours"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["toy.tflite", "toy.json", before["head"]])  # nothing trained or left
    done = subprocess.run(line + ["--stage1-weight", "2"], capture_output=True, text=True, timeout=600, cwd=REPO)
    again = json.loads((tmp_path / "toy.json").read_text())["verifier"]
    assert done.returncode == 0 and again["version"] == 2 and again["stage1_weight"] == 2.0
    assert load_verifier(tmp_path / "toy.tflite", again)[1].stage1_weight == 2.0
    # --candidate-threshold moves the gate: a narrower gate verifies a subset of the same chunks
    done = subprocess.run(line + ["--stage1-weight", "2", "--candidate-threshold", "0.6"], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    narrow = json.loads((tmp_path / "toy.json").read_text())["verifier"]
    assert done.returncode == 0 and narrow["candidate_threshold"] == 0.6 and "candidates at 0.6" in done.stderr
    assert load_verifier(tmp_path / "toy.tflite", narrow)[1].candidate_threshold == 0.6
    assert narrow["calibration"]["verifications_per_hour"] < again["calibration"]["verifications_per_hour"]
    for bad, says in ((["--stage1-weight", "-1"], "--stage1-weight must be"), ([], "--positives and --out are needed"),
                      (["--candidate-threshold", "1.5"], "--candidate-threshold must be between 0 and 1")):
        args = line[:5] if not bad else line + bad  # without --threshold-only, or with a bad weight
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode != 0 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


# --- enrollment --------------------------------------------------------------------------------


ENROLL_TAKES = sorted((ACTIVATE / "positives").glob("ite5th__*.wav")) + [ACTIVATE / "positives" / "coursera__3.wav"]


@pytest.fixture(scope="module")
def enrolled(toy, tmp_path_factory):
    """The README's edge-enroll line on the toy model at toy scale: (out folder, its log, the original's files before)."""
    model, _ = toy
    before = model.with_suffix(".json").read_bytes(), (model.parent / "toy-verifier.tflite").read_bytes()
    root = tmp_path_factory.mktemp("enroll")
    for i, take in enumerate(ENROLL_TAKES, 1):  # the README's file names
        shutil.copy(take, root / f"me-{i}.wav")
    out = root / "mine"
    line = readme_line("edge-enroll ").replace("edge-enroll", f"{sys.executable} -m train.enroll --model {model}", 1)
    line = line.replace("--out my-activate", f"--out {out}")
    toy_flags = (f"--negatives {DATA / 'speech' / 'ljspeech'}:fit --copies 3 --negative-hours 0.01 --epochs 1 "
                 f"--held-out {DATA / 'speech' / 'asterisk_prompts'}:holdout --guard-hours 0.05")
    done = subprocess.run(f"{line} {toy_flags}", shell=True, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done, before


def test_edge_enroll_from_wav_files_end_to_end(toy, enrolled):
    """A household's takes -> a new model folder with an adapted head behind a speaker gate; the original is untouched."""
    model, _ = toy
    out, done, before = enrolled
    takes = ENROLL_TAKES
    assert "edge-enroll:" in done.stderr and f"ready ({len(takes)} take(s))" in done.stderr
    assert not [line for line in done.stderr.splitlines() if any(n in line for n in TF_NOISE)], done.stderr
    meta = json.loads((out / "toy.json").read_text())
    block = meta["verifier"]
    original = json.loads(model.with_suffix(".json").read_text())["verifier"]
    enrollment = block.pop("enrollment")
    assert block == original  # the original head still decides for everyone else, at its own threshold
    assert (out / block["head"]).read_bytes() == before[1] and (out / "toy.tflite").read_bytes() == model.read_bytes()
    assert enrollment["takes"] == len(takes) and enrollment["head"] == "toy-enrolled.tflite"
    assert (out / enrollment["head"]).read_bytes() != before[1]
    gate = enrollment["speaker_gate"]
    assert gate["encoder"] == "toy-speaker.tflite" and gate["encoder_conversion"]["min_cosine_to_onnx"] >= 0.95 and len(gate["voice"]) == 256 and -1 <= gate["threshold"] <= 1
    assert abs(np.linalg.norm(gate["voice"]) - 1) < 1e-5 and gate["segment_seconds"] == 1.2
    held = gate["held_out"]  # set on held-out audio; there the gated pair fires no more than each head alone
    assert held["hours"] > 0.04 and held["percentile"] == 99 and held["points"] >= 20
    assert held["firings_original"] <= held["firings_gated"] <= held["firings_original"] + held["firings_adapted_alone"]
    assert f"behind the speaker gate (cosine >= {gate['threshold']})" in done.stderr
    from train.enroll import float_head  # the adapted float weights travel with it, without optimizer state
    weights = out / enrollment["head_weights"]
    assert weights.stat().st_size < 1.5 * 4 * float_head(out / "toy.tflite", block, WINDOW).count_params()
    assert (model.with_suffix(".json").read_bytes(), (model.parent / "toy-verifier.tflite").read_bytes()) == before
    run = subprocess.run([sys.executable, "-m", "edge.cli", "--model", str(out / "toy.tflite"), "--input", str(CLIP), "-v"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "(verifier; candidates at" in run.stderr, run.stderr[-2000:]
    assert f"enrolled voice: adapted head behind a speaker gate at cosine {gate['threshold']:g})" in run.stderr


def test_edge_enroll_without_held_out_audio_stops_before_adapting(toy, tmp_path):
    """The speaker gate's threshold needs held-out audio: without it, one line and exit 2, before minutes of work."""
    model, _ = toy
    done = subprocess.run([sys.executable, "-m", "train.enroll", "--model", str(model), "--wav", str(ENROLL_TAKES[0]),
                           "--out", str(tmp_path / "mine"), "--held-out"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("edge-enroll: error: the speaker gate needs held-out real audio")
    assert not (tmp_path / "mine").exists()


class _RecordingGate(SpeakerGate):
    """The real gate, keeping the audio it was handed."""

    def __init__(self, gate: SpeakerGate, threshold: float) -> None:
        super().__init__(gate.encoder, dataclasses.replace(gate.config, threshold=threshold))
        self.seen: list[np.ndarray] = []

    def passes(self, segment_int16: np.ndarray) -> bool:
        self.seen.append(np.array(segment_int16))
        return super().passes(segment_int16)


@pytest.mark.parametrize("gate_threshold", [-1.0, 1.0])
def test_streaming_enrolled_cascade_equals_whole_clip(toy, enrolled, clip, gate_threshold):
    """The device's Cascade with an enrolled head and the suite's whole-clip scoring agree: same scores, and the
    speaker gate hears the same samples (the 1.2 s before each candidate it checks). Gate open (-1): the
    adapted head's score wherever it alone would confirm; shut (1): the original's everywhere."""
    out, _, _ = enrolled
    model_path = out / "toy.tflite"
    block = json.loads(model_path.with_suffix(".json").read_text())["verifier"]
    head, config, emb = load_verifier(model_path, block)
    config = dataclasses.replace(config, candidate_threshold=0.02, stage1_weight=1.0)
    loaded = load_enrolled(model_path, block, config)
    assert loaded is not None and loaded.head.score_scale == head.score_scale
    model = StreamingModel(model_path)
    pipe = Pipeline(model, trace=True)
    pipe.process(clip)
    steps, probs = np.array(pipe.trace.samples), np.array(pipe.trace.probabilities)
    whole = embeddings_for(SpeechEmbedding(), clip)

    def logits_of(h):
        return lambda chunks: h.logits(np.stack([whole[c - WINDOW + 1: c + 1] for c in chunks]))

    positions, original = cascade_track(steps, probs, config, logits_of(head))
    _, adapted = cascade_track(steps, probs, config, logits_of(loaded.head))
    warmer = np.flatnonzero(adapted > original)
    assert warmer.size, "the adapted head scores no candidate of the clip above the original"
    threshold = float(adapted[warmer[len(warmer) // 2]])  # a threshold the adapted head alone reaches there
    config = dataclasses.replace(config, threshold=threshold)
    gates = [_RecordingGate(loaded.gate, gate_threshold) for _ in range(2)]
    expected = EnrolledHead(loaded.head, gates[0], threshold).choose_track(positions, original, adapted, clip)
    streaming = EnrolledHead(loaded.head, gates[1], threshold)
    cascade = Cascade(head, config, emb, streaming)
    pipe = Pipeline(StreamingModel(model_path), trace=True, verifier=cascade)
    for start in range(0, clip.size, 700):
        pipe.process(clip[start: start + 700])
    assert [p for p, _ in pipe.trace.verified] == positions.tolist()
    np.testing.assert_allclose([v for _, v in pipe.trace.verified], expected, rtol=0, atol=1e-12)
    assert streaming.checks == len(gates[0].seen) == len(gates[1].seen) >= 1
    assert all(np.array_equal(a, b) and a.size == int(1.2 * SAMPLE_RATE) for a, b in zip(gates[0].seen, gates[1].seen))
    chosen = np.isclose(expected, adapted, rtol=0, atol=1e-12) & ~np.isclose(expected, original, rtol=0, atol=1e-12)
    assert (streaming.passed == chosen.sum() >= 1) if gate_threshold < 0 else (streaming.passed == 0 and not chosen.any())


def test_suite_scores_an_enrolled_model_on_one_set_of_embeddings(toy, enrolled, clip, monkeypatch):
    """The suite's cascade of an enrolled model is the two heads' tracks as its gate chooses between them, and
    both heads read the same windows: the candidates' embeddings are computed once, not once per head."""
    import train.verifier
    from train.suite import verifier_scorers

    out, _, _ = enrolled
    model_path = out / "toy.tflite"
    block = json.loads(model_path.with_suffix(".json").read_text())["verifier"]
    scorers = verifier_scorers(model_path, block, {"candidate_threshold": 0.02, "stage1_weight": 1.0})
    assert scorers.enrolled is not None
    pipe = Pipeline(StreamingModel(model_path), trace=True)
    pipe.process(clip)
    steps, probs = np.array(pipe.trace.samples), np.array(pipe.trace.probabilities)
    whole = embeddings_for(SpeechEmbedding(), clip)

    def logits_of(h):
        return lambda chunks: h.logits(np.stack([whole[c - WINDOW + 1: c + 1] for c in chunks]))

    positions, original = cascade_track(steps, probs, scorers.config, logits_of(scorers.head))
    _, adapted = cascade_track(steps, probs, scorers.config, logits_of(scorers.enrolled.head))
    assert positions.size >= 2 and not np.allclose(original, adapted)
    expected = scorers.enrolled.choose_track(positions, original, adapted, clip)
    computed = []
    real = train.verifier.chunk_windows
    monkeypatch.setattr(train.verifier, "chunk_windows", lambda *a, **k: computed.append(a[2]) or real(*a, **k))
    got_positions, got = scorers.cascade(steps, probs, clip)
    np.testing.assert_array_equal(got_positions, positions)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len(computed) == 1 and computed[0].size == positions.size


def test_enroll_adapts_against_the_words_own_training_negatives(tmp_path):
    """By default the adapted head must keep rejecting edge-word's :fit audio for the model's word:
    WUW callers of the other keywords (their takes that say the word left out), LJ Speech and the
    prompts' fit halves; never the word's own WUW recordings, never a held-out or evaluation part."""
    from train.enroll import default_negatives

    model = tmp_path / "wildfire.tflite"
    model.with_suffix(".json").write_text(json.dumps({"word": "wildfire"}))
    specs = default_negatives(model)
    wuw = [s for s in specs if "/wuw/" in s]
    assert wuw and all(s.endswith(":fit!wildfire") for s in wuw)
    assert not [s for s in wuw if "/wildfire:" in s]
    assert f"{DATA / 'speech' / 'ljspeech'}:fit" in specs and f"{DATA / 'speech' / 'asterisk_prompts'}:fit" in specs
    assert not [s for s in specs if ":holdout" in s or ":eval" in s]
    assert all(os.path.isdir(s.split(":")[0]) for s in specs)


class _AngleEncoder:
    """A speaker encoder whose embedding of a segment points at an angle set by the segment's last sample."""

    def embed(self, audio: np.ndarray) -> np.ndarray:
        angle = float(audio[-1]) / 1000.0
        out = np.zeros(256, np.float32)
        out[:2] = np.cos(angle), np.sin(angle)
        return out


class _LogitHead:
    """A head whose logit of window i is ``logits[i]``."""

    score_scale = 1.0

    def __init__(self, logits) -> None:
        self.values = np.asarray(logits, np.float64)

    def logits(self, windows: np.ndarray) -> np.ndarray:
        return self.values[np.asarray(windows, int)]


def test_enroll_sets_the_speaker_gate_on_held_out_candidates_or_segments():
    """The gate's threshold is the 99th percentile (an observed value) of the held-out cosines: at stage 1's
    candidates when there are at least 20, else before every 1.2 s; the pair fires only where the original
    does or the adapted head does behind the gate."""
    from train.enroll import MIN_GATE_CANDIDATES, Candidates, gate_on

    voice = np.zeros(256, np.float32)
    voice[0] = 1.0
    held = (np.arange(120 * SAMPLE_RATE) % 1500).astype(np.int16)
    config = VerifierConfig(threshold=0.5)
    n = MIN_GATE_CANDIDATES + 5
    positions = (np.arange(1, n + 1) * 4 * SAMPLE_RATE).astype(np.int64)  # refractory apart
    many = Candidates(positions, np.arange(n), np.zeros(n))
    original = _LogitHead(np.where(np.arange(n) == 0, 3.0, -3.0))  # fires once
    adapted = _LogitHead(np.full(n, 3.0))  # fires everywhere
    gate = gate_on(held, many, config, original, adapted, _AngleEncoder(), voice)
    cosines = np.cos(held[positions - 1].astype(np.float64) / 1000.0)
    assert gate["basis"] == "candidates" and gate["points"] == n and gate["percentile"] == 99
    assert gate["threshold"] == pytest.approx(np.percentile(cosines, 99, method="higher"), abs=1e-6) and gate["threshold"] in np.round(cosines, 6)
    assert gate["firings_original"] == 1 and gate["firings_adapted_alone"] == n
    assert gate["firings_gated"] == 1 + int(np.sum(cosines[1:] >= gate["threshold"] - 1e-7))
    few = Candidates(positions[:3], np.arange(3), np.zeros(3))
    gate = gate_on(held, few, config, original, adapted, _AngleEncoder(), voice)
    ends = np.arange(19200, held.size + 1, 19200)
    assert gate["basis"] == "segments" and gate["points"] == ends.size
    assert gate["threshold"] == pytest.approx(np.percentile(np.cos(held[ends - 1] / 1000.0), 99, method="higher"), abs=1e-6)


def test_enroll_starts_from_the_trained_float_head(toy):
    """Heads trained since 2026-12-06 keep their float weights beside the model, named and hashed in the metadata
    with the head's shape: edge-enroll's head gives the trained Keras head's logits exactly."""
    import keras

    from train.enroll import float_head
    from train.verifier import DEFAULT_HEAD

    model, _ = toy
    block = json.loads(model.with_suffix(".json").read_text())["verifier"]
    assert block["head_shape"] == {"hidden": list(DEFAULT_HEAD.hidden), "layer_norm": DEFAULT_HEAD.layer_norm}
    assert block["head_weights"] == "toy-verifier.weights.h5"
    windows = np.random.default_rng(3).normal(0, 1, (20, WINDOW, EMBEDDING_DIM)).astype(np.float32)
    trained = keras.models.load_model(model.parent / "work" / "head.keras").predict(windows, verbose=0)
    head = float_head(model, block, WINDOW)
    np.testing.assert_allclose(head.predict(windows, verbose=0), trained, rtol=1e-5, atol=1e-5)
    assert (model.parent / block["head_weights"]).stat().st_size < 1.5 * 4 * head.count_params()  # no optimizer state
    damaged = model.parent / "damaged-verifier.weights.h5"
    damaged.write_bytes((model.parent / block["head_weights"]).read_bytes()[:-8])
    with pytest.raises(ModelError, match="sha256"):
        float_head(model, dict(block, head_weights=damaged.name), WINDOW)


def test_a_layer_normalised_head_converts_and_needs_its_weights_file(tmp_path):
    """edge-verifier --layer-norm: the int8 head keeps the normalisation (Keras' logits within parity), and
    edge-enroll cannot rebuild such a head from the int8 file alone: it says so in one line."""
    import keras

    from train import verifier as tv
    from train.enroll import float_head

    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    head = tv.make_head(WINDOW, tv.NORMED_HEAD)
    for layer in head.layers:  # scale and offset as a trained head has them
        if isinstance(layer, keras.layers.LayerNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i == 0 else rng.normal(0, 0.2, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    head.save(tmp_path / "head.keras")
    assert tv.HeadShape.of_keras(head) == tv.NORMED_HEAD  # what the metadata records is read off the trained head
    examples = {k: rng.normal(0, 1, (300, WINDOW, EMBEDDING_DIM)).astype(np.float32) for k in ("positives", "dense", "mined")}
    parity = tv.convert_head(tmp_path / "head.keras", examples, tmp_path / "n-verifier.tflite")
    assert parity["quantization"] == "int8" and parity["decision_agreement"] >= 0.95
    block = {"head": "n-verifier.tflite", "head_shape": tv.NORMED_HEAD.to_dict()}
    with pytest.raises(ModelError, match="weights file"):
        float_head(tmp_path / "n.tflite", block, WINDOW)


def test_enroll_rebuilds_a_legacy_float_head_from_the_int8_one(tmp_path):
    """Heads from before the weights file (the shipped activate's: Dense layers only) are dequantized from
    the int8 head: the trained Keras weights to within one quantization step."""
    import keras

    from train import verifier as tv
    from train.enroll import float_head, head_weights

    keras.utils.set_random_seed(2)
    path = tmp_path / "head.keras"
    rng = np.random.default_rng(0)
    head = tv.make_head(WINDOW, tv.LEGACY_HEAD)
    for layer in head.layers:  # biases as a trained head has them (the converter drops all-zero ones)
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([layer.get_weights()[0], rng.normal(0, 0.1, layer.get_weights()[1].shape)])
    head.save(path)
    examples = {k: rng.normal(0, 1, (300, WINDOW, EMBEDDING_DIM)).astype(np.float32) for k in ("positives", "dense", "mined")}
    tv.convert_head(path, examples, tmp_path / "old-verifier.tflite")
    layers = head_weights(tmp_path / "old-verifier.tflite")
    assert [k.shape for k, _ in layers] == [(WINDOW * EMBEDDING_DIM, 128), (128, 64), (64, 1)]
    trained = [layer.get_weights() for layer in keras.models.load_model(path).layers if isinstance(layer, keras.layers.Dense)]
    for (kernel, bias), (want_kernel, want_bias) in zip(layers, trained):
        step = np.abs(want_kernel).max(axis=0) / 127.0  # per output channel
        assert np.all(np.abs(kernel - want_kernel) <= step * 0.51 + 1e-7)
        assert np.allclose(bias, want_bias, atol=1e-3 * max(1.0, float(np.abs(want_bias).max())))
    legacy_block = {"head": "old-verifier.tflite"}  # no head_shape: a block from before 2026-12-06
    rebuilt = float_head(tmp_path / "old.tflite", legacy_block, WINDOW)
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for layer in trained for w in layer]


def test_enroll_bad_input_is_one_line(toy, tmp_path):
    model, _ = toy
    silent = tmp_path / "silent.wav"
    from edge.audio import write_wav

    write_wav(silent, np.zeros(16000, np.int16))
    for args, message in ((["--wav", str(silent)], "no word in it"), (["--wav", str(tmp_path / "none.wav")], "unreadable take"),
                          (["--model", str(tmp_path / "x.tflite"), "--wav", str(silent)], "not a step model")):
        cmd = [sys.executable, "-m", "train.enroll", "--out", str(tmp_path / "o"), *(["--model", str(model)] if "--model" not in args else []), *args]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]
    take = str(ACTIVATE / "positives" / "coursera__3.wav")  # a good take, but no shared data for the default negatives
    cmd = [sys.executable, "-m", "train.enroll", "--out", str(tmp_path / "o"), "--model", str(model), "--wav", take]
    env = dict(os.environ, TRIGGER_EDGE_SHARED=str(tmp_path / "no-shared"), TRIGGER_EDGE_CACHE=str(tmp_path / "no-cache"))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "pass --negatives DIR" in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_fetch_embedding_line_unpacks_the_same_models(tmp_path):
    """The README's line for a Pi: the two files from the wheel, identical to the installed ones, usable via the variable."""
    line = readme_line("bash scripts/fetch_embedding.sh")
    done = subprocess.run(f"{line} {tmp_path / 'emb'}", shell=True, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHON=sys.executable))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"export TRIGGER_EDGE_EMBEDDING_DIR={tmp_path / 'emb'}" in done.stdout
    installed = find_embedding_files()
    for name in ("melspectrogram.tflite", "embedding_model.tflite"):
        assert (tmp_path / "emb" / name).read_bytes() == (installed.folder / name).read_bytes()
    from edge.embedding import EmbeddingFiles

    EmbeddingFiles(tmp_path / "emb", "?").check(installed.describe(), "test")  # same digests: accepted


def test_one_big_chunk_gives_the_same_detections_as_microphone_chunks(clip):
    """The shipped cascade: a whole clip in one call (a file, a Wyoming chunk) equals 40 ms chunks."""
    model = StreamingModel()
    whole = Pipeline(model, verifier=cascade_for(model)).process(np.concatenate([clip, clip]))
    model2 = StreamingModel()
    pipe = Pipeline(model2, verifier=cascade_for(model2))
    both = np.concatenate([clip, clip])
    small = [d for i in range(0, both.size, 640) for d in pipe.process(both[i: i + 640])]
    assert whole and [(d.sample, d.score) for d in whole] == [(d.sample, d.score) for d in small]


def test_shipped_cascade_rejects_a_stage1_false_accept_and_accepts_the_word():
    """Real audio: a WUW caller's sentence where the step model alone fires (0.99), then a real
    "activate"; the verifier rejects the first and confirms the second."""
    sentence = read_audio(DATA / "wuw" / "sentence" / "operator" / "WUWII00029_006.flac")
    stream = np.concatenate([sentence, read_audio(CLIP)])
    word_end = sentence.size + int(2.6 * 16000)  # "activate" ends near 2.6 s in the clip (labels.json)
    alone = Pipeline(StreamingModel()).process(stream)
    assert len(alone) == 2 and alone[0].sample < sentence.size  # stage 1 alone: a false accept in the sentence
    model = StreamingModel()
    both = Pipeline(model, verifier=cascade_for(model)).process(stream)
    assert len(both) == 1 and sentence.size < both[0].sample <= word_end + 16000
    assert both[0].score >= json.loads(default_model_path().with_suffix(".json").read_text())["verifier"]["threshold"]


def test_enrollment_trials_skip_callers_whose_takes_cannot_be_placed():
    from train.enroll_eval import trials
    from train.suite import SuitePaths, wuw_span

    labels = json.loads((DATA / "wuw" / "labels.json").read_text())
    untimed = {i["session"] for i in labels.values() if i["keyword"] == "voyager" and wuw_span(i) is None}
    assert "00048" in untimed
    got = trials("voyager", SuitePaths(DATA.parent, None), callers=1000)
    sessions = {who.split()[-1] for who, _, _, _ in got}
    assert sessions and not sessions & untimed
    assert all(span[1] > span[0] and take[0].size for _, take, _, span in got)


def test_a_head_int8_cannot_hold_falls_back_to_int8_weights_then_float(tmp_path, monkeypatch):
    from train import verifier as tv
    from train.quiet_tf import quiet_tensorflow

    quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(1)
    path = tmp_path / "head.keras"
    tv.make_head(WINDOW).save(path)
    rng = np.random.default_rng(0)
    examples = {k: rng.normal(0, 1, (300, WINDOW, EMBEDDING_DIM)).astype(np.float32) for k in ("positives", "dense", "mined")}
    full = tv.convert_head(path, examples, tmp_path / "a.tflite")
    assert full["quantization"] == "int8"
    want = keras.models.load_model(path).predict(np.concatenate([examples["positives"], examples["mined"]]), verbose=0).reshape(-1)
    (tmp_path / "b.tflite").write_bytes(tv._tflite_head(keras.models.load_model(path), WINDOW, None))
    weights_only = tv.head_parity(want, VerifierHead(tmp_path / "b.tflite", window=WINDOW), np.concatenate([examples["positives"], examples["mined"]]))
    share = lambda p: p["p99_logit_error"] / max(p["logit_range"], 1.0)  # noqa: E731
    assert share(weights_only) < share(full)  # float activations are the closer of the two
    monkeypatch.setattr(tv, "PARITY_MAX_RELATIVE_ERROR", (share(weights_only) + share(full)) / 2)
    fallback = tv.convert_head(path, examples, tmp_path / "c.tflite")
    assert fallback["quantization"] == "int8 weights" and fallback["p99_logit_error"] == weights_only["p99_logit_error"]
    assert (tmp_path / "c.tflite").stat().st_size < 0.5 * 4 * (WINDOW * EMBEDDING_DIM * tv.DEFAULT_HEAD.hidden[0])  # weights stay 8 bits
    (tmp_path / "e.tflite").write_bytes(tv._tflite_head(keras.models.load_model(path), WINDOW, None, quantized=False))
    exact = tv.head_parity(want, VerifierHead(tmp_path / "e.tflite", window=WINDOW), np.concatenate([examples["positives"], examples["mined"]]))
    assert share(exact) < share(weights_only) and exact["max_logit_error"] < 1e-3  # float: Keras's own logits
    monkeypatch.setattr(tv, "PARITY_MAX_RELATIVE_ERROR", (share(exact) + share(weights_only)) / 2)
    last = tv.convert_head(path, examples, tmp_path / "f.tflite")
    assert last["quantization"] == "float" and (tmp_path / "f.tflite").stat().st_size > 4 * WINDOW * EMBEDDING_DIM * 128
    monkeypatch.setattr(tv, "PARITY_MAX_RELATIVE_ERROR", -1.0)
    with pytest.raises(tv.DataError, match=r"differs from Keras .* by int8: [0-9.]+, int8 weights: [0-9.]+, float: [0-9.]+ over a range"):
        tv.convert_head(path, examples, tmp_path / "d.tflite")
    assert not (tmp_path / "d.tflite").exists()  # no half-checked head left for a runner to pick up
