"""The noise floor under stage 1's input: exact integers, streaming equals batch, reset, saturation,
and a model's metadata choosing it for every path that runs the model (pipeline, evaluation)."""

import json

import numpy as np
import pytest

from edge.audio import INT16_FULL_SCALE, read_audio
from edge.errors import ModelError
from edge.features import DEFAULT_FRONTEND, NOISE_FLOOR_KEY, Frontend, compute_features
from edge.model import StreamingModel
from edge.noise_floor import RECIPE_LEVEL_DBFS, NOISE_TABLE_SAMPLES, NoiseFloor, NoiseFloorConfig, noise_table, unit_noise
from edge.pipeline import Pipeline
from train.evaluate import tflite_scorer

from .paths import DEV
from .shipped import shipped_model_as, shipped_model_with_frontend

LEVEL = -60.0


@pytest.fixture(scope="module")
def clip():
    return read_audio(DEV / "coursera__1.wav")


def floored_model(folder, level, word="activate"):
    return shipped_model_with_frontend(folder, NOISE_FLOOR_KEY, level, word)


def test_table_is_fixed_white_and_at_its_level():
    unit = unit_noise()
    assert unit.shape == (NOISE_TABLE_SAMPLES,)
    assert abs(unit.mean()) < 0.02 and abs(unit.std() - 1.0) < 0.02
    assert abs(np.corrcoef(unit[:-1], unit[1:])[0, 1]) < 0.02  # white: neighbours uncorrelated
    table = noise_table(LEVEL)
    assert table.dtype == np.int32 and not table.flags.writeable
    want_rms = INT16_FULL_SCALE * 10 ** (LEVEL / 20)
    assert abs(np.sqrt(np.mean(table.astype(float) ** 2)) / want_rms - 1) < 0.02
    assert np.array_equal(table, np.rint(unit * want_rms).astype(np.int32))


def test_floor_adds_the_table_at_the_stream_position_exactly():
    floor = NoiseFloor(NoiseFloorConfig(LEVEL))
    table = noise_table(LEVEL)
    silence = np.zeros(1000, np.int16)
    assert np.array_equal(floor.process(silence), table[:1000].astype(np.int16))
    ramp = np.arange(-500, 500, dtype=np.int16)
    assert np.array_equal(floor.process(ramp), (ramp + table[1000:2000]).astype(np.int16))
    assert floor.position == 2000


@pytest.mark.parametrize("chunk", [1, 161, 4097, NOISE_TABLE_SAMPLES + 3])
def test_floor_streaming_equals_batch_across_the_table_period(chunk):
    audio = np.random.default_rng(0).integers(-2000, 2000, 2 * NOISE_TABLE_SAMPLES + 777).astype(np.int16)
    batch = NoiseFloor(NoiseFloorConfig(LEVEL)).process(audio)
    floor = NoiseFloor(NoiseFloorConfig(LEVEL))
    parts = np.concatenate([floor.process(audio[i : i + chunk]) for i in range(0, audio.size, chunk)])
    assert np.array_equal(parts, batch)
    # the table repeats with its period
    diff = batch.astype(np.int32) - audio
    assert np.array_equal(diff[:NOISE_TABLE_SAMPLES], diff[NOISE_TABLE_SAMPLES : 2 * NOISE_TABLE_SAMPLES])


def test_reset_returns_to_position_zero():
    floor = NoiseFloor(NoiseFloorConfig(LEVEL))
    first = floor.process(np.zeros(500, np.int16))
    floor.process(np.zeros(123, np.int16))
    floor.reset()
    assert floor.position == 0
    assert np.array_equal(floor.process(np.zeros(500, np.int16)), first)


def test_floor_saturates_at_int16_limits():
    floor = NoiseFloor(NoiseFloorConfig(-20.0))  # loud, so many samples overflow
    table = noise_table(-20.0)[:4000]
    top = floor.process(np.full(4000, 32767, np.int16))
    assert top[table > 0].tolist() == [32767] * int((table > 0).sum())
    assert np.array_equal(top[table <= 0], (32767 + table[table <= 0]).astype(np.int16))
    floor.reset()
    bottom = floor.process(np.full(4000, -32768, np.int16))
    assert bottom[table < 0].tolist() == [-32768] * int((table < 0).sum())


def test_no_floor_is_bit_exact_identity(clip):
    out = NoiseFloor().process(clip)
    assert np.array_equal(out, clip)
    assert np.array_equal(compute_features(clip), Frontend(DEFAULT_FRONTEND.with_noise_floor(None)).process(clip))


@pytest.mark.parametrize("chunk", [7, 160, 1283])
def test_frontend_with_floor_streams_equal_to_batch(clip, chunk):
    config = DEFAULT_FRONTEND.with_noise_floor(LEVEL)
    batch = compute_features(clip, config)
    fe = Frontend(config)
    parts = np.concatenate([fe.process(clip[i : i + chunk]) for i in range(0, clip.size, chunk)])
    assert np.array_equal(parts, batch)
    fe.reset()
    assert np.array_equal(fe.process(clip), batch)
    # the floor is the same as adding the table to the audio by hand
    by_hand = np.clip(clip.astype(np.int32) + np.resize(noise_table(LEVEL), clip.size), -32768, 32767).astype(np.int16)
    assert np.array_equal(compute_features(by_hand), batch)


def test_floor_lifts_digital_silence_but_not_the_frontend_geometry():
    silence = np.zeros(16000, np.int16)
    plain = compute_features(silence)
    floored = compute_features(silence, DEFAULT_FRONTEND.with_noise_floor(LEVEL))
    assert plain.shape == floored.shape
    assert plain.max() == 0 and floored.max() > 0


def test_model_metadata_chooses_the_floor_for_pipeline_and_evaluation(tmp_path, clip):
    (tmp_path / "plain").mkdir()
    plain_model = StreamingModel(shipped_model_as("activate", tmp_path / "plain"))
    assert plain_model.metadata.frontend_config == DEFAULT_FRONTEND
    (tmp_path / "floor").mkdir()
    path = floored_model(tmp_path / "floor", LEVEL)
    model = StreamingModel(path)
    assert model.metadata.frontend_config.noise_floor_dbfs == LEVEL
    chunked = Pipeline(model, trace=True)
    assert chunked.frontend.config.noise_floor_dbfs == LEVEL
    for i in range(0, clip.size, 640):
        chunked.process(clip[i : i + 640])
    model.reset()
    whole = Pipeline(model, trace=True)
    whole.process(clip)
    assert whole.trace.probabilities == chunked.trace.probabilities
    score, _ = tflite_scorer(path)
    _, scored = score(clip)
    assert np.allclose(whole.trace.probabilities, scored, atol=1e-6)
    plain_score, _ = tflite_scorer(plain_model.path)
    _, plain = plain_score(clip)
    assert plain.shape == scored.shape and not np.allclose(plain, scored)


def test_two_words_with_different_floors_get_their_own_frontends(tmp_path, clip):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = StreamingModel(shipped_model_as("activate", tmp_path / "a"))
    b = StreamingModel(floored_model(tmp_path / "b", LEVEL, word="other"))
    pipe = Pipeline([a, b], trace=True)
    assert len(pipe.frontends) == 2
    pipe.process(clip)
    for word, model in zip(pipe.words, (a, b)):
        alone = Pipeline(StreamingModel(model.path), trace=True)
        alone.process(clip)
        assert word.trace.probabilities == alone.trace.probabilities


@pytest.mark.parametrize("value", [0, -200, "loud", True])
def test_a_bad_floor_in_metadata_is_a_one_line_error(tmp_path, value):
    path = floored_model(tmp_path, value)
    with pytest.raises(ModelError) as err:
        StreamingModel(path)
    assert "noise_floor_dbfs" in str(err.value) and "\n" not in str(err.value)


def test_a_dataset_built_with_a_floor_gives_its_model_the_floor(tmp_path):
    """edge-synth build --noise-floor-dbfs: the features are the floored frontend's, the dataset says
    so, and edge-convert writes it into the model's metadata, so the device adds the same floor."""
    from convert.convert import main as convert_main
    from train.dataset import load_dataset
    from train.synth_cli import main as synth_main

    from .tiny import synth_args, tiny

    t = tiny()
    plain, floored = tmp_path / "plain", tmp_path / "floored"
    assert synth_main([*synth_args(plain, 8, 5), "--noise-floor-dbfs", "off"]) == 0
    assert synth_main(synth_args(floored, 8, 5)) == 0  # the recipe's floor by default
    pf, pl, pmeta = load_dataset(plain)
    ff, fl, fmeta = load_dataset(floored)
    assert NOISE_FLOOR_KEY not in pmeta["frontend"] and fmeta["frontend"][NOISE_FLOOR_KEY] == LEVEL
    assert np.array_equal(pl, fl) and pf.shape == ff.shape  # the same clips and labels ...
    assert not np.array_equal(pf, ff)  # ... through another frontend
    out = tmp_path / "floored.tflite"
    assert convert_main(["--model", str(t.keras), "--data", str(floored), "--out", str(out), "--check-clips", "2"]) == 0
    assert StreamingModel(out).metadata.frontend_config.noise_floor_dbfs == LEVEL == RECIPE_LEVEL_DBFS
    assert convert_main(["--model", str(t.keras), "--data", str(plain), "--out", str(tmp_path / "plain.tflite"), "--check-clips", "2"]) == 0
    assert NOISE_FLOOR_KEY not in json.loads((tmp_path / "plain.json").read_text())["frontend"]


def test_training_refuses_datasets_of_other_floors_and_records_its_own(tmp_path, capsys):
    """edge-train takes the floor from its datasets, says it in train_config.json (edge-eval's Keras path
    reads it there), and refuses to mix a floored and an unfloored dataset."""
    from train.evaluate import keras_scorer
    from train.synth_cli import main as synth_main
    from train.train import main as train_main

    from .tiny import TINY_UNITS, synth_args, tiny

    t = tiny()
    plain = tmp_path / "plain"
    assert synth_main([*synth_args(plain, 4, 6), "--noise-floor-dbfs", "off"]) == 0
    args = ["--epochs", "1", "--filters", TINY_UNITS, "--units", TINY_UNITS, "--batch-size", "4"]
    capsys.readouterr()  # the builds' progress lines
    assert train_main(["--data", str(t.train_data), "--val", str(plain), "--out", str(tmp_path / "mixed"), *args]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another frontend than the training data (no noise floor against noise floor -60 dBFS)" in err[0]
    record = json.loads((t.run / "train_config.json").read_text())
    assert record["frontend"][NOISE_FLOOR_KEY] == RECIPE_LEVEL_DBFS
    score, _ = keras_scorer(t.keras)
    audio = read_audio(DEV / "coursera__1.wav")
    _, p = score(audio)
    (tmp_path / "alone").mkdir()
    alone = tmp_path / "alone" / "model.keras"
    alone.write_bytes(t.keras.read_bytes())  # no train_config.json beside it: no floor
    _, q = keras_scorer(alone)[0](audio)
    assert p.shape == q.shape and not np.allclose(p, q)
