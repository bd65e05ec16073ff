"""The real-voice benchmark (edge-eval --suite real): its sets, its split, its arithmetic
(exact counts on hand-made score traces) and a real run of the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE
from train import suite
from train.sources import says

from .paths import REPO, SHARED

STEP = 640


def _set(name, kind, probs, words=(), hours=1.0, language="en", groups=None):
    steps = np.arange(len(probs), dtype=np.int64) * STEP
    return suite.ScoredSet(name, kind, language, hours, steps, np.asarray(probs, dtype=np.float32), list(words),
                           groups or [{"gender": "f"}] * len(words))


def test_analyse_counts_hits_false_accepts_and_languages_exactly():
    far = 10 * SAMPLE_RATE // STEP  # steps further apart than the 2 s refractory period
    neg = np.zeros(4 * far, np.float32)
    neg[[0, far, 2 * far]] = [0.999, 0.9, 0.6]  # three separate firings at low thresholds
    music = np.zeros(far, np.float32)
    music[5] = 0.95
    pos = np.zeros(2 * far, np.float32)
    pos[10], pos[far + 10] = 0.97, 0.7  # word 1 peaks at 0.97, word 2 at 0.7
    words = [(9 * STEP, 10 * STEP), ((far + 9) * STEP, (far + 10) * STEP)]
    scored = [_set("pos", "positive", pos, words, groups=[{"gender": "f"}, {"gender": "m"}]),
              _set("speech", "negative", neg, hours=1.0), _set("tunes", "negative", music, hours=1.0, language="music")]
    a = suite.analyse(scored)
    assert a["negative_hours"] == 2.0
    one = a["targets"]["1"]  # <= 2 false accepts in 2 h
    assert one["false_accepts"] == 2 and one["fa_per_hour"] == 1.0
    assert one["frr"]["pos"] == 0.5 and one["words"]["pos"] == 2  # threshold above 0.7 and up to 0.9
    assert one["frr_by_group"] == {"gender=f": {"words": 1, "frr": 0.0}, "gender=m": {"words": 1, "frr": 1.0}}
    assert one["false_accepts_by_language"] == {"en": 1, "music": 1}
    assert a["targets"]["0.5"]["false_accepts"] == 1 and a["targets"]["0.5"]["frr"]["pos"] == 0.5  # only the 0.999 left
    assert a["targets"]["0.1"] is None  # nothing scores above the top negative (0.999): not reachable
    assert a["det"]["pos"][0] == (2.0, 0.0)  # lowest threshold: both words, every firing


def test_candidate_recall_counts_every_word_a_candidate_reached_even_right_after_another():
    far = 10 * SAMPLE_RATE // STEP
    cascade = np.zeros(3 * far, np.float32)
    cascade[5] = 0.01  # a candidate in the context, 0.13 s before word 1: inside a firing's 2 s refractory period
    cascade[13] = 0.02  # word 1's own candidate
    cascade[2 * far + 50] = 0.3  # 1.6 s after word 3 ends: too late for its 1 s hit window
    words = [(9 * STEP, 10 * STEP), ((far + 9) * STEP, (far + 10) * STEP), ((2 * far + 9) * STEP, (2 * far + 10) * STEP)]
    scored = [_set("pos", "positive", cascade, words), _set("speech", "negative", np.zeros(far, np.float32))]
    assert suite.candidate_recall(scored) == {"pos": pytest.approx(1 / 3)}
    cascade[far + 12] = 1e-6  # any candidate at all counts, however low its score
    assert suite.candidate_recall(scored) == {"pos": pytest.approx(2 / 3)}
    assert suite.candidate_recall([_set("none", "positive", cascade, [])]) == {"none": None}


def test_wuw_split_is_fixed_by_session_and_about_half():
    sessions = [f"{i:05d}" for i in range(317)]
    first = [suite.wuw_split(s) for s in sessions]
    assert first == [suite.wuw_split(s) for s in sessions]
    assert 120 < first.count("eval") < 200


def test_sets_for_a_wuw_word_keep_its_recordings_out_of_the_negatives():
    paths = suite.SuitePaths(SHARED, None)
    pos = suite.positive_sets("voyager", paths, limit=3)
    neg = suite.negative_sets("voyager", paths, limit=3)
    clips = pos[0].load()
    assert len(clips) == 3 and all(len(c.words) == 1 for c in clips)
    assert set(clips[0].groups) == {"gender", "dialect", "phone", "style"}
    labels = json.loads((SHARED / "data" / "wuw" / "labels.json").read_text())
    assert [s.name for s in neg if "voyager" in s.name.lower()] == []
    loaded = suite._wuw_loader(SHARED / "data" / "wuw", tuple(k for k in suite.WUW_KEYWORDS if k != "voyager"), "eval", False, None)()
    expected = [r for r, i in labels.items() if i["keyword"] != "voyager" and suite.wuw_split(i["session"]) == "eval"]
    assert len(loaded) == len(expected) and all(not c.words for c in loaded)
    with pytest.raises(suite.DataError, match="no recordings of 'banana'"):
        suite.positive_sets("banana", paths)


def test_wuw_negatives_leave_out_the_takes_that_say_the_word():
    labels = json.loads((SHARED / "data" / "wuw" / "labels.json").read_text())
    # a voyager take in which the caller says wildfire twice: a wildfire model must not count it as a false accept
    assert "use wildfire in a sentence" in labels["sentence/voyager/WUWII00026_010.flac"]["transcript"]
    assert says(labels["sentence/voyager/WUWII00026_010.flac"], "wildfire")
    assert says({"transcript": "in my next life I want to work at T{breath}hinkEngine"}, "thinkengine")
    assert says({"transcript": "Hey, chatterbox!"}, "hey chatterbox") and not says({"transcript": "wild fires"}, "fire ant")
    others = tuple(k for k in suite.WUW_KEYWORDS if k != "wildfire")
    eval_takes = [(r, i) for r, i in labels.items() if i["keyword"] in others and suite.wuw_split(i["session"]) == "eval"]
    saying = sorted(r for r, i in eval_takes if says(i, "wildfire"))
    assert saying == ["sentence/thinkengine/WUWII00026_007.flac", "sentence/voyager/WUWII00026_010.flac"]
    (wuw,) = [s for s in suite.negative_sets("wildfire", suite.SuitePaths(SHARED, None)) if s.name.startswith("WUW")]
    assert wuw.left_out == 2 and "the model's word" in wuw.left_out_why
    assert len(wuw.load()) == len(eval_takes) - 2


def test_wuw_takes_without_a_time_or_a_whole_word_are_left_out_of_the_positives():
    labels = json.loads((SHARED / "data" / "wuw" / "labels.json").read_text())
    voyager = {r: i for r, i in labels.items() if i["keyword"] == "voyager"}
    untimed = sorted(r for r, i in voyager.items() if i["end"] <= i["start"])
    assert "alone/voyager/WUWII00048_005.flac" in untimed and len(untimed) == 27  # start = end = 0
    assert suite.wuw_span(voyager[untimed[0]]) is None
    assert suite.wuw_span({"start": 0.5, "end": 1.25, "keyword": "voyager", "transcript": "Voyager"}) == (8000, 20000)
    timed = {"start": 0.5, "end": 1.25, "keyword": "thinkengine"}
    assert suite.wuw_word_said(dict(timed, transcript="{click} T{breath}hinkEngine [static]"))
    assert suite.wuw_word_said(dict(timed, transcript="((ThinkEngine)) is it"))
    for cut_or_other in ("ThinkEn-", "-inkEngine", "{lip smack} done", ""):
        assert suite.wuw_span(dict(timed, transcript=cut_or_other)) is None
    not_said = [r for r, i in voyager.items() if i["end"] > i["start"] and not suite.wuw_word_said(i)]
    assert len(not_said) == 9 and any(voyager[r]["transcript"].strip() == "Voyag-" for r in not_said)
    (positives,) = suite.positive_sets("voyager", suite.SuitePaths(SHARED, None))
    assert positives.left_out == 27 + 9
    clips = positives.load()
    assert len(clips) == len(voyager) - 36 == 580
    assert all(len(c.words) == 1 and c.words[0][1] > c.words[0][0] for c in clips)
    assert positives.left_out_why == "their labels give the word no time, or their transcript has no whole word"
    report = suite.table({"model": "m", "word": "voyager", "conditions": {},
                          "left_out": {positives.name: {"recordings": 36, "why": positives.left_out_why}}})
    assert f"{positives.name}: 36 recordings left out (their labels give the word no time, or their transcript" in report


def test_conditions_are_repeatable_and_keep_the_length():
    rng = np.random.default_rng(0)
    clip = (rng.normal(0, 3000, SAMPLE_RATE)).astype(np.int16)
    noise = [(rng.normal(0, 1000, 3 * SAMPLE_RATE)).astype(np.int16)]
    cond = suite.Conditions(noise)
    assert cond.apply("clean", clip, 0) is clip
    for name in ("noise-10db", "reverb"):
        a, b = cond.apply(name, clip, 3), cond.apply(name, clip, 3)
        assert a.dtype == np.int16 and a.size == clip.size and np.array_equal(a, b) and not np.array_equal(a, clip)
    added = cond.apply("noise-10db", clip, 3).astype(np.float64) - clip
    snr = 20 * np.log10(np.sqrt(np.mean(clip.astype(np.float64) ** 2)) / np.sqrt(np.mean(added**2)))
    assert abs(snr - suite.NOISE_SNR_DB) < 0.5


@pytest.mark.timeout(900)
def test_edge_eval_suite_real_on_the_shipped_model(tmp_path):
    out = tmp_path / "suite"
    cmd = [sys.executable, "-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--suite", "real",
           "--limit", "4", "--min-hours", "0", "--conditions", "clean,noise-10db", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stderr[-2000:]
    held_out = "activate: held-out speakers (ite5th, coursera 3-4)"
    assert "FRR@0.5FA/h" in done.stdout and held_out in done.stdout
    data = json.loads((out / "suite.json").read_text())
    assert data["word"] == "activate" and set(data["conditions"]) == {"clean", "noise-10db"}
    clean = data["conditions"]["clean"]
    assert clean["at_model_threshold"]["words"] == {held_out: 4,
                                                    "activate: dev clips in sentences (training speakers)": 3}
    assert (out / "suite-det.png").stat().st_size > 0
    # too few hours for a figure: one line, exit 2
    short = subprocess.run(cmd[:-6] + ["--limit", "1", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=800)
    assert short.returncode == 2 and "h of negative audio (the suite needs 6 h)" in short.stderr
    assert "Traceback" not in short.stderr
    # an output folder that cannot be made: said before any work
    bad = subprocess.run(cmd[:-1] + ["/proc/no-such/suite"], cwd=REPO, capture_output=True, text=True, timeout=800)
    assert bad.returncode == 2 and "cannot create the output folder" in bad.stderr and "loading sets" not in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.timeout(900)
def test_readme_suite_lines(tmp_path):
    """The README's two suite lines as written (the fetch into the default cache, which
    re-running skips), the second at --limit scale."""
    from .test_readme_commands import RUN_BY_TEST_SUITE

    fetch, run = sorted(RUN_BY_TEST_SUITE)
    done = subprocess.run(fetch, shell=True, cwd=REPO, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0 and "fetch_eval_audio: ready in" in done.stdout, done.stderr[-2000:]
    root = REPO / ".cache" / "eval-audio" / "root"
    assert (root / suite.SOUNDS / "ru_RU_f_IvrvoiceRU").is_dir() and (root / "usr/share/games/ufoai/base/0music-pk3").is_dir()
    assert list((root / suite.SOUNDS / "es").glob("*.gsm.wav")), "GSM prompts converted"
    line = run.replace("edge-eval", f"{sys.executable} -m train.evaluate").replace("--out eval-real", f"--out {tmp_path / 'eval-real'}")
    done = subprocess.run(f"{line} --limit 2 --min-hours 0 --conditions clean --json", shell=True, cwd=REPO, capture_output=True,
                          text=True, timeout=800)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    languages = {v["language"] for v in data["conditions"]["clean"]["negative_sets"].values()}
    assert languages == {"en", "es", "fr", "it", "ru", "music"}


@pytest.mark.timeout(900)
def test_suite_candidate_threshold_trades_verifier_runs_for_recall(tmp_path):
    """--candidate-threshold / --hold-seconds override the model's verifier settings for a
    trade-off sweep: a stricter gate runs the verifier less often and never finds more words."""
    runs = {}
    for p in ("0.05", "0.9"):
        out = tmp_path / p
        cmd = [sys.executable, "-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--suite", "real",
               "--limit", "2", "--min-hours", "0", "--conditions", "clean", "--stage2-conditions", "", "--out", str(out),
               "--candidate-threshold", p, "--hold-seconds", "0.24"]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=800)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"candidates at p >= {p}, held 0.24 s" in done.stdout
        runs[p] = json.loads((out / "suite.json").read_text())
        assert runs[p]["verifier"]["candidate_threshold"] == float(p) and runs[p]["verifier"]["hold_seconds"] == 0.24
        assert runs[p]["verifier"]["overridden"] == ["candidate_threshold", "hold_seconds"]
    low, high = (runs[p]["variants"]["cascade"]["clean"] for p in ("0.05", "0.9"))
    assert high["verifications_per_hour"] < low["verifications_per_hour"]
    for name, recall in high["candidate_recall"].items():
        assert recall is None or recall <= low["candidate_recall"][name]
    _tradeoff_of(tmp_path, runs)
    bad = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--suite", "real",
                          "--candidate-threshold", "1.5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--candidate-threshold: must be between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr


def _tradeoff_of(tmp_path, runs):
    """train.tradeoff on those two suite runs and real edge-bench runs of the model gated the same."""
    from .shipped import shipped_model_as

    benches = []
    for p in runs:
        folder = tmp_path / f"gated-{p}"
        folder.mkdir()
        model = shipped_model_as("activate", folder)
        meta = json.loads(model.with_suffix(".json").read_text())
        meta["verifier"]["candidate_threshold"] = float(p)
        model.with_suffix(".json").write_text(json.dumps(meta))
        bench = subprocess.run([sys.executable, "-m", "edge.bench", "--model", str(model), "--seconds", "20", "--engines", "trigger-edge",
                                "pymicro-wakeword", "--models", "1", "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert bench.returncode == 0, bench.stderr[-2000:]
        benches.append(tmp_path / f"bench-{p}.json")
        benches[-1].write_text(bench.stdout)
        assert json.loads(bench.stdout)[0]["candidate_threshold"] == float(p)
    plot = tmp_path / "tradeoff.png"
    done = subprocess.run([sys.executable, "-m", "train.tradeoff", "--suite", *(str(tmp_path / p) for p in runs), "--bench", *map(str, benches),
                           "--out", str(plot), "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    points = {pt["gate"]: pt for pt in json.loads(done.stdout)}
    assert sorted(points) == [0.05, 0.9]
    for p, data in runs.items():
        clean = data["variants"]["cascade"]["clean"]
        pt = points[float(p)]
        assert pt["verifications_per_hour"] == clean["verifications_per_hour"]
        for target, row in clean["targets"].items():
            if row is None:
                assert pt["frr"][target] is None
            else:  # every word of every set, pooled
                missed = sum(round(row["frr"][k] * n) for k, n in row["words"].items())
                assert pt["frr"][target] == pytest.approx(missed / sum(row["words"].values()))
        bench = json.loads((tmp_path / f"bench-{p}.json").read_text())
        assert pt["rtf"] == bench[0]["rtf"] and pt["peer_rtf"] == bench[1]["rtf"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = subprocess.run([sys.executable, "-m", "train.tradeoff", "--suite", str(tmp_path / "0.05")], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert table.returncode == 0 and table.stdout.splitlines()[3].split()[0] == "0.05", table.stdout
    wrong = subprocess.run([sys.executable, "-m", "train.tradeoff", "--suite", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert wrong.returncode == 2 and "not a suite run" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("flag, value", [("--conditions", "clean,noise"), ("--stage2-conditions", "none")])
def test_suite_refuses_an_unknown_condition_with_one_line(tmp_path, flag, value):
    """A typo used to skip a condition silently (stage 2) or fail deep in the run; now it is named at once."""
    bad = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--suite", "real",
                          flag, value, "--out", str(tmp_path / "s")], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode != 0 and len(lines) == 1 and "Traceback" not in bad.stderr
    assert "unknown condition(s)" in lines[0] and "the suite has clean, noise-10db, reverb" in lines[0]


def test_suite_refuses_a_hold_beyond_the_verifiers_bound_with_one_line(tmp_path):
    """--hold-seconds 50 used to end in a ValueError traceback from the verifier's settings."""
    bad = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", str(REPO / "models" / "activate.tflite"), "--suite", "real",
                          "--hold-seconds", "50", "--limit", "1", "--out", str(tmp_path / "s")], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert "verifier hold must be within [0, 10] s" in lines[-1]


@pytest.mark.timeout(900)
def test_suite_level_control_puts_stage_1_behind_it(tmp_path):
    """--level-control: the same model and audio, stage 1 behind edge.level (the report says so); the verifier's
    input is not levelled, and a model whose metadata has the level control is reported as levelled too."""
    from edge.level import LEVEL_KEY, LevelConfig

    from .shipped import shipped_model_with_frontend

    base = dict(limit=2, require_hours=0.0, conditions=("clean",), stage2_conditions=())
    model = REPO / "models" / "activate.tflite"
    plain = suite.run_suite(suite.SuiteConfig(model=model, out=tmp_path / "plain", **base))
    flagged = suite.run_suite(suite.SuiteConfig(model=model, out=tmp_path / "flagged", level_control=True, **base))
    assert not plain["level_control"] and flagged["level_control"]
    assert "behind the level control" in suite.table(flagged) and "behind the level control" not in suite.table(plain)
    stage1 = [d["variants"][suite.STAGE1]["clean"]["det"] for d in (plain, flagged)]
    assert stage1[0] != stage1[1]
    (tmp_path / "meta").mkdir()
    path = shipped_model_with_frontend(tmp_path / "meta", LEVEL_KEY, LevelConfig().to_dict())
    by_metadata = suite.run_suite(suite.SuiteConfig(model=path, out=tmp_path / "meta-out", **base))
    assert by_metadata["level_control"]
    assert by_metadata["variants"][suite.STAGE1]["clean"]["det"] == flagged["variants"][suite.STAGE1]["clean"]["det"]
