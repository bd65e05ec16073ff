"""edge-eval: hit / false-accept counting on hand-built streams with known answers, sweep, DET, errors."""

import json

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE
from train.evaluate import at_fa_targets, build_streams, count_events, fire_positions, main, sweep, Stream

from .paths import ACTIVATE
from .tiny import tiny

S = SAMPLE_RATE


def test_hits_and_false_accepts_on_known_stream():
    words = [(10 * S, 11 * S), (30 * S, 31 * S), (50 * S, 51 * S)]
    fired = np.array([5 * S, 11 * S + S // 2, 31 * S + S + 1, 50 * S + 100, 70 * S])
    c = count_events(fired, words)
    # word 1 hit 0.5 s after its end; word 2 missed (fires 1 s + 1 sample after its end);
    # word 3 hit during the word; 5 s, 32 s and 70 s are false accepts
    assert (c.hits, c.misses, c.false_accepts) == (2, 1, 3)
    assert c.latencies == pytest.approx((0.5, (50 * S + 100 - 51 * S) / S))


def test_two_firings_on_one_word_count_once_and_no_false_accept():
    c = count_events(np.array([10 * S, 10 * S + 200]), [(9 * S, 10 * S)])
    assert (c.hits, c.false_accepts) == (1, 0)


def test_fire_positions_respects_threshold_and_refractory():
    steps = np.arange(10) * 640
    probs = np.array([0.1, 0.9, 0.95, 0.2, 0.9, 0.1, 0.1, 0.1, 0.1, 0.99])
    assert fire_positions(steps, probs, 0.5, 0).tolist() == [640, 1280, 2560, 5760]
    assert fire_positions(steps, probs, 0.5, 3 * 640).tolist() == [640, 2560, 5760]
    assert fire_positions(steps, probs, 0.96, 0).tolist() == [5760]


def test_sweep_and_targets_on_synthetic_scores():
    pos = Stream(np.zeros(60 * S, np.int16), [(10 * S, 11 * S), (40 * S, 41 * S)])
    steps = np.arange(0, 60 * S, 640)
    p = np.zeros(steps.size)
    p[np.searchsorted(steps, 11 * S)] = 0.8  # word 1: strong
    p[np.searchsorted(steps, 41 * S)] = 0.3  # word 2: weak
    neg_steps = np.arange(0, 3600 * S, 640 * 100)
    n = np.zeros(neg_steps.size)
    n[5] = 0.5  # one false accept per hour at thresholds <= 0.5
    rows = sweep((steps, p), (neg_steps, n), pos, neg_hours=1.0, refractory=1.0)
    by_t = {round(r["threshold"], 2): r for r in rows}
    assert by_t[0.2]["frr"] == 0.0 and by_t[0.2]["false_accepts"] == 1
    assert by_t[0.4]["frr"] == 0.5 and by_t[0.6]["frr"] == 0.5 and by_t[0.6]["false_accepts"] == 0
    assert by_t[0.9]["frr"] == 1.0
    targets = at_fa_targets(rows)
    assert targets["0.1"]["frr"] == 0.5 and targets["1"]["frr"] == 0.0


def test_streams_place_each_positive_once():
    from train.sources import ClipPool

    pos = ClipPool.load("positive", [str(ACTIVATE / "positives")], trim=True)
    neg = ClipPool.load("negative", [str(ACTIVATE / "negatives")])
    ps, ns = build_streams(pos, neg)
    assert len(ps.words) == len(pos)
    for (s, e), clip in zip(ps.words, pos.clips):
        assert np.array_equal(ps.audio[s:e], clip)
    assert ns.audio.size >= sum(c.size for c in neg.clips)


def test_edge_eval_end_to_end_on_tiny_model(tmp_path, capsys):
    t = tiny()
    capsys.readouterr()  # drop what building the tiny model printed
    out = tmp_path / "ev"
    rc = main([
        "--model", str(t.tflite), "--positives", str(ACTIVATE / "positives"), "--negatives", str(ACTIVATE / "negatives"),
        "--backgrounds", str(ACTIVATE / "backgrounds"), "--snr", "10", "--out", str(out), "--json",
    ])
    assert rc == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["positives"] == 14 and result["negative_hours"] > 0
    assert set(result["frr_at_fa_per_hour"]) == {"0.1", "0.5", "1"}
    assert (out / "det.png").stat().st_size > 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["at_model_threshold"] == result["at_model_threshold"]
    # the Keras model goes through the same counting
    rc = main(["--model", str(t.keras), "--positives", str(ACTIVATE / "positives"), "--negatives", str(ACTIVATE / "negatives"), "--out", str(tmp_path / "k")])
    assert rc == 0


def test_edge_eval_bad_inputs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    t = tiny()
    cases = [
        ["--model", str(tmp_path / "none.tflite"), "--positives", str(tmp_path), "--negatives", str(tmp_path)],
        ["--model", str(t.tflite), "--positives", str(tmp_path / "empty"), "--negatives", str(ACTIVATE / "negatives")],
        ["--model", str(t.tflite), "--positives", str(ACTIVATE / "positives"), "--negatives", str(tmp_path / "missing")],
    ]
    for args in cases:
        assert main(args + ["--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("edge-eval: error:")


@pytest.mark.parametrize("extra, named", [
    (["--positives", "P", "--negatives", "N", "--level-control"], "--level-control works only with --suite real"),
    (["--positives", "P", "--negatives", "N", "--conditions", "clean"], "--conditions works only with --suite real"),
    (["--suite", "real", "--snr", "0"], "--snr works only without --suite real"),
    (["--suite", "real", "--negatives", "N"], "--negatives works only without --suite real"),
])
def test_edge_eval_names_an_option_its_mode_would_ignore(tmp_path, capsys, extra, named):
    """An option the chosen mode never reads (a suite option on folders, a folder option on the suite) used to be
    dropped silently, so a run measured something other than what was asked: now one line and exit 2, before any work."""
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path / "m.tflite"), *extra, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and err[-1] == f"edge-eval: error: {named}"
    assert not (tmp_path / "o").exists()


def test_after_hours_scores_positives_after_continuous_audio(tmp_path, capsys):
    t = tiny()
    capsys.readouterr()
    rc = main([
        "--model", str(t.tflite), "--positives", str(ACTIVATE / "positives"), "--negatives", str(ACTIVATE / "negatives"),
        "--after-hours", "0.02", "--out", str(tmp_path / "ev"),
    ])
    assert rc == 0
    after = json.loads((tmp_path / "ev" / "eval.json").read_text())["after_continuous_audio"]
    assert after["hours_before"] == 0.02
    assert len(after["word_peak_probability_after"]) == len(after["word_peak_probability_fresh"]) == 14
    assert "after 0.02 h of continuous audio" in capsys.readouterr().out


def test_edge_eval_scores_the_cascade_a_model_runs_unless_told_not_to(tmp_path, capsys):
    """Folders of your own recordings are scored through what edge-run runs: the cascade where the
    metadata names a verifier (at the verifier's threshold), stage 1 alone with --no-verifier."""
    from .paths import REPO

    model = REPO / "models" / "activate.tflite"
    meta = json.loads(model.with_suffix(".json").read_text())
    base = ["--model", str(model), "--positives", str(ACTIVATE / "positives"), "--negatives", str(ACTIVATE / "negatives")]
    results = {}
    for flags in ([], ["--no-verifier"]):
        out = tmp_path / ("stage1" if flags else "cascade")
        assert main(base + flags + ["--out", str(out)]) == 0
        results[tuple(flags)] = json.loads((out / "eval.json").read_text())
        assert f"({results[tuple(flags)]['variant']})" in capsys.readouterr().out
    cascade, stage1 = results[()], results[("--no-verifier",)]
    assert (cascade["variant"], stage1["variant"]) == ("cascade", "stage 1")
    grid = np.array([r["threshold"] for r in cascade["sweep"]])
    for result, wanted in ((cascade, meta["verifier"]["threshold"]), (stage1, meta["detector"]["threshold"])):
        assert result["at_model_threshold"]["threshold"] == grid[np.argmin(np.abs(grid - wanted))]
    assert [r["hits"] for r in cascade["sweep"]] != [r["hits"] for r in stage1["sweep"]]  # two different scorers
    # --after-hours is about stage 1's state: with the cascade, one line and exit 2
    assert main(base + ["--after-hours", "0.01", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["edge-eval: error: --after-hours scores stage 1's state after hours of audio: add --no-verifier"]
