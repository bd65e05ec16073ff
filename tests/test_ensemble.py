"""Ensembles merged into one step model: exact logit mean, block structure found again, int8 conversion
with the members run as their own blocks, and the bad inputs."""

import json

import numpy as np
import pytest

from convert.fold import find_members, fold, member_gru, numpy_sequence
from train.ensemble import merge
from train.model import ModelConfig, build_model

from .tiny import tiny

SMALL = ModelConfig(filters=12, gru_units=8)


def random_model(seed: int, config: ModelConfig = SMALL):
    """A model with random weights everywhere, batch-norm statistics included (as if trained)."""
    model = build_model(config)
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        v = rng.normal(0.0, 0.3, w.shape).astype(np.float32)
        weights.append(np.abs(v) + 0.5 if w.ndim == 1 and np.all(w == 1.0) else v)  # BN gamma / variance > 0
    model.set_weights(weights)
    return model


def logit(p):
    p = p.astype(np.float64)
    return np.log(p / (1.0 - p))


def test_merged_output_is_the_mean_of_the_members_logits():
    members = [random_model(s) for s in (1, 2, 3)]
    merged = merge(members)
    x = np.random.default_rng(0).uniform(0.0, 2.0, (2, 200, SMALL.channels)).astype(np.float32)
    want = np.mean([logit(m.predict(x, verbose=0)) for m in members], axis=0)
    got = logit(merged.predict(x, verbose=0))
    assert np.abs(got - want).max() < 1e-4
    assert merged.get_layer("conv").filters == 3 * SMALL.filters and merged.get_layer("gru1").units == 3 * SMALL.gru_units


def test_fold_finds_the_members_and_cuts_each_one_out_exactly():
    a, b = random_model(4), random_model(5)
    w = fold(merge([a, b]))
    assert w.members == 2 and fold(a).members == 1
    for i, member in enumerate((a, b)):
        own = fold(member)
        for merged_gru, own_gru in ((w.gru1, own.gru1), (w.gru2, own.gru2)):
            cut = member_gru(merged_gru, 2, i)
            assert np.array_equal(cut.recurrent, own_gru.recurrent) and np.array_equal(cut.recurrent_bias, own_gru.recurrent_bias)
            assert np.allclose(cut.kernel, own_gru.kernel, rtol=0, atol=1e-12)


def test_one_weight_outside_the_blocks_makes_it_one_dense_model():
    w = fold(merge([random_model(6), random_model(7)]))
    kernel = w.gru2.kernel.copy()
    kernel[0, -1] = 1e-3  # member 0's input reaching member 1's last h gate
    dense = type(w.gru2)(kernel, w.gru2.recurrent, w.gru2.input_bias, w.gru2.recurrent_bias)
    assert find_members(w.gru1, dense) == 1
    # and the reference arithmetic is the same either way
    x = np.random.default_rng(1).uniform(0, 2, (60, SMALL.channels))
    assert np.abs(numpy_sequence(w, x) - numpy_sequence(fold(merge([random_model(6), random_model(7)])), x)).max() == 0.0


def test_a_merged_pair_converts_to_int8_with_its_members_as_blocks(tmp_path):
    """The tiny pipeline's trained model and a perturbed copy, merged, through edge-convert: the
    float step model matches Keras, int8 agrees on detections, the state is twice as wide."""
    from convert.convert import load_keras
    from convert.convert import main as convert_main
    from edge.model import StreamingModel
    from train.ensemble import main as ensemble_main

    t = tiny()
    other = load_keras(t.keras)
    rng = np.random.default_rng(3)
    other.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) if w.ndim > 1 else w for w in other.get_weights()])
    other_path = tmp_path / "other.keras"
    other.save(other_path)
    merged = tmp_path / "ensemble.keras"
    assert ensemble_main(["--models", str(t.keras), str(other_path), "--out", str(merged)]) == 0
    out = tmp_path / "pair.tflite"
    assert convert_main(["--model", str(merged), "--data", str(t.train_data), "--check", str(t.val_data),
                         "--out", str(out), "--check-clips", "6"]) == 0
    report = json.loads((tmp_path / "pair-parity.json").read_text())
    assert report["float_step_vs_keras_max_abs_dp"] <= 1e-4
    assert report["detection_agreement"] >= 0.9
    single = StreamingModel(t.tflite).metadata.gru_units
    assert StreamingModel(out).metadata.gru_units == tuple(2 * u for u in single)


def test_models_of_other_shapes_are_refused_with_one_line(tmp_path, capsys):
    from train.ensemble import main

    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    random_model(1).save(a)
    random_model(2, ModelConfig(filters=12, gru_units=16)).save(b)
    assert main(["--models", str(a), str(b), "--out", str(tmp_path / "m.keras")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ in shape" in err[0]
    assert main(["--models", str(a), "--out", str(tmp_path / "m.keras")]) != 0
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists()


def test_a_missing_member_is_one_line(tmp_path, capsys):
    from train.ensemble import main

    assert main(["--models", str(tmp_path / "nope.keras"), str(tmp_path / "nope2.keras"), "--out", str(tmp_path / "m.keras")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_weight_buffers_over_a_megabyte_pass_the_structure_check_and_a_cut_file_does_not():
    """A three-member ensemble's float conv weights are 1.4 MB in one buffer; the FlatBuffer check
    capped every vector at a million items and called such a model corrupt."""
    from convert.fold import GruWeights, StepWeights
    from convert.tflite import to_tflite
    from edge.errors import ModelError
    from edge.tflite_check import check_tflite

    rng = np.random.default_rng(0)
    k, ch, f, u = 15, 40, 600, 8  # conv_w: 600 x 600 float32 = 1.44 MB

    def gru(n_in):
        return GruWeights(rng.normal(size=(n_in, 3 * u)), rng.normal(size=(u, 3 * u)), np.zeros(3 * u), np.zeros(3 * u))

    w = StepWeights(rng.normal(size=(k * ch, f)), np.zeros(f), gru(f), gru(u), rng.normal(size=(u, 1)), np.zeros(1), k, 4, ch)
    data = to_tflite(w)
    assert len(data) > 1_440_000
    check_tflite(data, "big.tflite")
    with pytest.raises(ModelError, match="cut.tflite: corrupt TFLite model .*past the end"):
        check_tflite(data[: len(data) // 2], "cut.tflite")
