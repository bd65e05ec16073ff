"""Data synthesis: the assignment's overlap and label rules (ported), reproducibility, manifest, bad inputs."""

import json
import re

import numpy as np
import pytest

from edge.errors import DataError
from edge.geometry import DEFAULT_GEOMETRY as G
from train.dataset import BuildSpec, build, load_dataset, manifest_hash
from train.sources import ClipPool, in_split, trim_silence
from train.synth import ExampleSynth, SynthConfig, insert_ones, is_overlapping, random_segment

from .paths import ACTIVATE, DATA


# --- the assignment's checks -----------------------------------------------------------------

def test_overlap_rule_from_the_assignment():
    assert is_overlapping((950, 1430), [(2000, 2550), (260, 949)]) is False
    assert is_overlapping((2305, 2950), [(824, 1532), (1900, 2305), (3424, 3600)]) is True
    assert is_overlapping((100, 200), [(200, 250)]) is True
    assert is_overlapping((100, 199), [(200, 250)]) is False
    assert is_overlapping((3000, 3600), [(1000, 1800), (3400, 4500)]) is True
    assert is_overlapping((0, 10), []) is False


def test_insert_ones_on_our_step_grid():
    # the assignment: ones strictly after the step in which the word ends, label_steps of them
    assert G.label_steps == 9  # 360 ms of 40 ms steps (the assignment: 50 of 1375 steps ~ 364 ms)
    n = G.steps_for_samples(160000)
    end = 5 * 16000  # word ends at 5.0 s
    y = insert_ones(np.zeros(n, np.uint8), end)
    ones = np.flatnonzero(y)
    assert ones.size == 9
    last_before = G.step_at(end)
    assert ones[0] == last_before + 1
    assert G.step_end_sample(ones[0]) > end  # strictly after the word's end
    assert G.step_end_sample(last_before) <= end


def test_insert_ones_does_not_run_off_the_end():
    n = G.steps_for_samples(160000)
    y = insert_ones(np.zeros(n, np.uint8), 159000)
    assert y[-1] == 1 and y.sum() < 9


def test_random_segment_stays_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s, e = random_segment(rng, 500, 1000)
        assert 0 <= s and e <= 999 and e - s + 1 == 500


# --- synthesis --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth():
    pos = ClipPool.load("positive", [str(ACTIVATE / "positives")], trim=True)
    neg = ClipPool.load("negative", [str(ACTIVATE / "negatives")], trim=True)
    bg = ClipPool.load("background", [str(ACTIVATE / "backgrounds")])
    return ExampleSynth(pos, neg, bg, rirs=[np.r_[1.0, np.zeros(99), 0.3].astype(np.float32)])


def test_examples_are_labelled_after_each_positive(synth):
    for i in range(30):
        ex = synth.make(seed=4, index=i)
        assert ex.audio.dtype == np.int16 and ex.audio.size == 160000
        positives = [e for e in ex.record["events"] if e["kind"] == "positive"]
        expected = np.zeros_like(ex.labels)
        for e in positives:
            insert_ones(expected, e["end"])
        assert np.array_equal(ex.labels, expected)
        spans = [e.get("span", [e["start"], e["end"]]) for e in ex.record["events"]]
        segs = [(start, end - 1) for start, end in spans]
        for k, seg in enumerate(segs):
            assert not is_overlapping(seg, segs[:k] + segs[k + 1 :])
        assert len(positives) <= 4 and len(ex.record["events"]) - len(positives) <= 2


def test_words_inside_a_sentence_are_labelled_where_the_word_ends(synth):
    cfg = SynthConfig(lead_in_prob=1.0, trail_prob=1.0, context_gap_ms=(50.0, 50.0), snr_db=(30.0, 30.0))
    sentence = ExampleSynth(synth.positives, synth.negatives, synth.backgrounds, synth.rirs, cfg)
    seen = 0
    for i in range(12):
        ex = sentence.make(seed=5, index=i)
        expected = np.zeros_like(ex.labels)
        for e in ex.record["events"]:
            if e["kind"] != "positive":
                continue
            seen += 1
            span_start, span_end = e["span"]
            assert span_start < e["start"] < e["end"] < span_end
            assert e["start"] - span_start == e["lead_in"]["samples"] + 50 * 16
            assert span_end - e["end"] == e["trail"]["samples"] + 50 * 16
            insert_ones(expected, e["end"])
            # the speech before the word is really there (louder than the 30 dB-down background)
            before = ex.audio[span_start : span_start + e["lead_in"]["samples"]].astype(np.float64)
            word = ex.audio[e["start"] : e["end"]].astype(np.float64)
            assert np.sqrt(np.mean(before**2)) > 0.1 * np.sqrt(np.mean(word**2))
        assert np.array_equal(ex.labels, expected)
    assert seen >= 12


def test_source_shares_set_how_often_each_source_is_drawn():
    pool = ClipPool.load("positive", [str(ACTIVATE / "positives/coursera__*"), str(ACTIVATE / "positives/ite5th__*@0.5")])
    ite = np.array(["ite5th__" in p for p in pool.paths])
    assert 0 < ite.sum() < len(pool) and pool.probabilities[ite].sum() == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    draws = np.array([pool.draw(rng) for _ in range(4000)])
    assert abs(ite[draws].mean() - 0.5) < 0.03
    plain = ClipPool.load("positive", [str(ACTIVATE / "positives")])
    assert plain.probabilities is None


@pytest.mark.parametrize("spec, message", [
    ("positives@x", "between 0 and 1"),
    ("positives@1.5", "not in (0, 1]"),
    ("positives@1.0", "leave room"),
])
def test_bad_source_shares_are_refused(spec, message):
    specs = [str(ACTIVATE / spec), str(ACTIVATE / "negatives")]
    with pytest.raises(DataError, match=re.escape(message)):
        ClipPool.load("positive", specs)


def test_same_seed_same_bits_other_seed_differs(synth):
    a, b, c = synth.make(7, 3), synth.make(7, 3), synth.make(8, 3)
    assert np.array_equal(a.audio, b.audio) and a.record == b.record
    assert not np.array_equal(a.audio, c.audio)


def test_loudness_is_normalised(synth):
    cfg = SynthConfig()
    for i in range(10):
        ex = synth.make(1, i)
        rms_db = 20 * np.log10(np.sqrt(np.mean((ex.audio / 32768.0) ** 2)))
        assert cfg.target_dbfs[0] - 1.0 <= rms_db <= cfg.target_dbfs[1] + 0.5


def test_trim_silence_cuts_padding():
    x = np.zeros(16000, np.int16)
    x[6000:8000] = (np.sin(np.arange(2000)) * 8000).astype(np.int16)
    y = trim_silence(x)
    assert 2000 <= y.size <= 2000 + 2 * 3 * 160 + 320


def test_split_is_deterministic_and_disjoint():
    files = sorted((DATA / "speech" / "ljspeech").glob("*.flac"))
    train = {f for f in files if in_split(f, "train")}
    ev = {f for f in files if in_split(f, "eval")}
    assert train and ev and not train & ev and train | ev == set(files)


# --- datasets ---------------------------------------------------------------------------------

def spec(out, **kw):
    base = dict(
        positives=(str(ACTIVATE / "positives"),),
        negatives=(str(ACTIVATE / "negatives"),),
        backgrounds=(str(ACTIVATE / "backgrounds"),),
        out=str(out),
        count=12,
        seed=5,
        shard_size=5,
        workers=1,
    )
    base.update(kw)
    return BuildSpec(**base)


def test_dataset_build_manifest_resume_and_regeneration(tmp_path, capsys):
    out = build(spec(tmp_path / "a"))
    feats, labels, meta = load_dataset(out)
    assert feats.shape == (12, 998, 40) and feats.dtype == np.uint16
    assert labels.shape == (12, 246)
    assert meta["count"] == 12 and meta["seed"] == 5
    assert len(meta["sources"]["positives"]["files"]) == 14
    records = [json.loads(l) for s in range(3) for l in (out / f"shard-{s:05d}.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(12))
    assert all("events" in r and "target_dbfs" in r for r in records)
    assert (out / "examples" / "example-0.wav").is_file() and (out / "examples" / "examples.png").is_file()
    assert "12/12" in capsys.readouterr().err
    # resume: delete one shard, rebuild, get the very same bytes back
    before = (out / "shard-00001.npz").read_bytes()
    (out / "shard-00001.npz").unlink()
    build(spec(tmp_path / "a"))
    assert np.array_equal(np.load(out / "shard-00001.npz")["features"], np.load(__import__("io").BytesIO(before))["features"])
    # regeneration in another folder from the seed alone is bit-identical
    other = build(spec(tmp_path / "b", workers=2))
    f2, l2, _ = load_dataset(other)
    assert np.array_equal(f2, feats) and np.array_equal(l2, labels)
    assert manifest_hash(out) == manifest_hash(other)


def test_build_says_once_what_it_skipped_and_no_eta_before_the_first_shard(tmp_path, capfd):
    import shutil

    from edge.audio import write_wav

    negatives = tmp_path / "negatives"
    shutil.copytree(ACTIVATE / "negatives", negatives)
    write_wav(negatives / "empty.wav", np.zeros(0, np.int16))  # packaged prompt collections have such files
    build(spec(tmp_path / "a", negatives=(str(negatives),), workers=2))
    err = capfd.readouterr().err
    assert err.count("skipped 1 file(s) with no audio samples") == 1  # said by the parent, not again by each worker
    assert err.splitlines()[1] == "synth: 0/12 clips (0.0 clips/s, eta ?)"
    assert "nan" not in err and "12/12 clips" in err


def test_dataset_refuses_mixing_settings(tmp_path):
    build(spec(tmp_path / "a"))
    with pytest.raises(DataError, match="other sources/settings"):
        build(spec(tmp_path / "a", seed=6))


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files for positive"):
        build(spec(tmp_path / "x", positives=(str(tmp_path / "empty"),)))


def test_unreadable_clip_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="broken.wav"):
        build(spec(tmp_path / "x", negatives=(str(bad),)))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        build(spec(tmp_path / "x", backgrounds=(str(tmp_path / "nowhere"),)))


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    from train.synth_cli import main

    rc = main(["build", "--positives", str(tmp_path / "nowhere"), "--negatives", str(tmp_path), "--backgrounds", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("edge-synth: error:")
