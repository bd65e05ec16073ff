"""The level control in front of stage 1: exact integers, streaming equals batch, reset, limits, the same
word at any level coming out at one level, and a model's metadata choosing it for every path that runs it."""

import numpy as np
import pytest

from edge.audio import read_audio
from edge.errors import ModelError
from edge.features import DEFAULT_FRONTEND, Frontend, compute_features
from edge.level import (BLOCK_SAMPLES, GAIN_FRACTION_BITS, LEVEL_KEY, SILENCE_UNITS, LevelConfig, LevelControl,
                        block_level_units, gain_q)
from edge.model import StreamingModel
from edge.pipeline import Pipeline
from train.evaluate import tflite_scorer

from .paths import DEV
from .shipped import shipped_model_as, shipped_model_with_frontend

UNITY = 1 << GAIN_FRACTION_BITS
A_20DB = 3277
"""A square wave of this amplitude is -20.0 dBFS (20 log10(3277 / 32768) = -19.9995)."""


@pytest.fixture(scope="module")
def clip():
    return read_audio(DEV / "coursera__1.wav")


def square(amplitude: int, blocks: int) -> np.ndarray:
    return np.tile(np.array([amplitude, -amplitude], np.int16), blocks * BLOCK_SAMPLES // 2)


def levelled_model(folder, level: dict | object):
    return shipped_model_with_frontend(folder, LEVEL_KEY, level)


def test_block_levels_and_gains_are_exact_integers():
    energies = [BLOCK_SAMPLES * A_20DB**2, 0, BLOCK_SAMPLES * 32767**2]
    assert [block_level_units(e) for e in energies] == [-2000, SILENCE_UNITS, -1]  # hundredths of a dB
    assert SILENCE_UNITS == -11236  # one unit of energy in a block: -112.36 dBFS
    assert gain_q(np.array([0, 6, 3000, -1399])).tolist() == [UNITY, 4124, 129527, 818]


def test_a_steady_tone_leaves_at_the_target_from_its_second_block():
    """Default target -14 dBFS. A new object is in the state of a long silence (gain +30 dB), so the first
    block of a -20 dBFS tone saturates; from the second block its gain is 6 dB (8173 / 4096): -14 dBFS."""
    level = LevelControl()
    out = level.process(square(A_20DB, 3))
    assert out[:2].tolist() == [32767, -32768]
    assert out[BLOCK_SAMPLES:].tolist() == [6539, -6539] * BLOCK_SAMPLES
    assert level.level_units == -2000 and abs(level.gain_db - 6.0) < 0.01


def test_silence_stays_silent_and_a_louder_sound_is_cut_at_once():
    """The held level falls 6 hundredths of a dB per 10 ms block (6 dB/s); the gain stops at +30 dB."""
    level = LevelControl()
    assert not level.process(np.zeros(600 * BLOCK_SAMPLES, np.int16)).any()
    assert level.level_units == -1400 - 3000 - 600 * 6
    assert abs(level.gain_db - 30.0) < 1e-4
    assert level.process(np.full(BLOCK_SAMPLES, 100, np.int16))[:3].tolist() == [3162] * 3  # 100 x 31.62
    assert level.level_units == -5031  # the block's own level (-50.31 dBFS), above the held one
    loud = level.process(np.full(2 * BLOCK_SAMPLES, 32767, np.int16))
    assert loud[0] == 32767 and loud[BLOCK_SAMPLES - 1] == 32767  # the first loud block saturates ...
    assert loud[BLOCK_SAMPLES:].tolist() == [6544] * BLOCK_SAMPLES  # ... then -14 dB: 32767 x 818 / 4096
    assert level.level_units == -1
    level.process(np.zeros(100 * BLOCK_SAMPLES, np.int16))
    assert level.level_units == -1 - 100 * 6  # one second later: 6 dB lower


@pytest.mark.parametrize("chunks", [[1], [159], [160], [1280], [7, 333, 1999, 160]])
def test_streaming_equals_batch_bit_for_bit(chunks):
    rng = np.random.default_rng(0)
    envelope = np.repeat(rng.uniform(3, 20000, 90), 1600)  # 0.1 s steps from near silence to clipping
    audio = np.clip(rng.standard_normal(envelope.size) * envelope, -32768, 32767).astype(np.int16)
    batch = LevelControl().process(audio)
    assert batch.size == audio.size
    level, parts, i, k = LevelControl(), [], 0, 0
    while i < audio.size:
        n = chunks[k % len(chunks)]
        parts.append(level.process(audio[i : i + n]))
        i, k = i + n, k + 1
    assert np.array_equal(np.concatenate(parts), batch)


def test_reset_returns_to_a_new_objects_state():
    audio = np.random.default_rng(1).integers(-9000, 9000, 5000).astype(np.int16)
    level = LevelControl()
    first = level.process(audio)
    level.process(np.zeros(777, np.int16))
    level.reset()
    assert level.level_units == LevelConfig().target_units - LevelConfig().max_gain_units
    assert np.array_equal(level.process(audio), first)


def test_the_same_sound_20_db_apart_comes_out_the_same():
    """A speech-like burst (noise under three syllables) after a second of room noise, recorded 20 dB apart:
    once the first syllable has peaked (before it, each goes through at the gain held from the quiet before)
    the two leave the control as one sound, within rounding; what went in differed tenfold."""
    rng = np.random.default_rng(2)
    room = rng.standard_normal(16000) * 0.001
    syllables = np.abs(np.sin(np.linspace(0, 3 * np.pi, 8000))) * rng.standard_normal(8000)
    sound = np.concatenate([room, syllables / np.abs(syllables).max()])

    def levelled(scale_db):
        x = np.clip(np.rint(sound * 32767 * 10 ** (scale_db / 20)), -32768, 32767).astype(np.int16)
        return x, LevelControl().process(x).astype(np.float64)

    quiet_in, quiet = levelled(-30.0)
    loud_in, loud = levelled(-10.0)
    burst = slice(16000 + 1400, None)  # the first syllable peaks 1333 samples in
    assert np.abs(loud_in[burst]).max() > 9 * np.abs(quiet_in[burst]).max()
    assert np.abs(quiet[burst] - loud[burst]).max() <= 0.01 * np.abs(loud[burst]).max() + 2


@pytest.mark.parametrize("settings, word", [({"target_dbfs": 5}, "target_dbfs"), ({"release_db_per_s": 0}, "release"),
                                            ({"max_gain_db": "lots"}, "max_gain_db"), ({"gain": 3}, "unknown"),
                                            ("on", "table")])
def test_bad_settings_are_one_line_errors(tmp_path, settings, word):
    with pytest.raises(ValueError) as err:
        LevelConfig.from_dict(settings)
    assert word in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError) as err:
        StreamingModel(levelled_model(tmp_path, settings))
    assert LEVEL_KEY in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("chunk", [7, 160, 1283])
def test_frontend_with_level_control_streams_equal_to_batch(clip, chunk):
    config = DEFAULT_FRONTEND.with_noise_floor(-60.0).with_level(LevelConfig())
    batch = compute_features(clip, config)
    fe = Frontend(config)
    assert np.array_equal(np.concatenate([fe.process(clip[i : i + chunk]) for i in range(0, clip.size, chunk)]), batch)
    fe.reset()
    assert np.array_equal(fe.process(clip), batch)
    # the level control comes first: the same as levelling the audio by hand, then the floored frontend
    by_hand = LevelControl().process(clip)
    assert np.array_equal(compute_features(by_hand, DEFAULT_FRONTEND.with_noise_floor(-60.0)), batch)
    assert not np.array_equal(compute_features(clip, DEFAULT_FRONTEND.with_noise_floor(-60.0)), batch)


def test_model_metadata_chooses_the_level_control_for_pipeline_and_evaluation(tmp_path, clip):
    (tmp_path / "empty").mkdir()
    assert StreamingModel(levelled_model(tmp_path / "empty", {})).metadata.frontend_config.level == LevelConfig()  # the README's {}
    path = levelled_model(tmp_path, LevelConfig().to_dict())
    model = StreamingModel(path)
    assert model.metadata.frontend_config.level == LevelConfig()
    assert model.metadata.frontend_config.to_dict()[LEVEL_KEY] == LevelConfig().to_dict()
    pipe = Pipeline(model, trace=True)
    assert pipe.frontend.config.level == LevelConfig()
    for i in range(0, clip.size, 640):
        pipe.process(clip[i : i + 640])
    score, _ = tflite_scorer(path)
    _, scored = score(clip)
    assert np.allclose(pipe.trace.probabilities, scored, atol=1e-6)
    plain_score, _ = tflite_scorer(shipped_model_as("plain", tmp_path))
    _, plain = plain_score(clip)
    assert plain.shape == scored.shape and not np.allclose(plain, scored)


def test_edge_run_says_when_stage_1_is_behind_the_level_control(tmp_path, clip):
    import subprocess
    import sys

    from edge.audio import write_wav

    from .paths import REPO

    wav = tmp_path / "clip.wav"
    write_wav(wav, clip)
    path = levelled_model(tmp_path, {})
    run = [sys.executable, "-m", "edge.cli", "--input", str(wav), "--model"]
    levelled = subprocess.run(run + [str(path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    plain = subprocess.run(run + [str(REPO / "models" / "activate.tflite")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert levelled.returncode == 0 and plain.returncode == 0, levelled.stderr[-500:]
    assert "stage 1 behind the level control (target -14 dBFS)" in levelled.stderr
    assert "level control" not in plain.stderr
    assert "detected 'activate'" in levelled.stderr  # the dev clip's word is still found

