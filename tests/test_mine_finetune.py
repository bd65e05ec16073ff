"""Hard-negative mining (edge-mine) and fine-tuning from a trained model (edge-train --init),
on the tiny real run."""

import json

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.detector import DetectorConfig
from edge.model import StreamingModel
from edge.pipeline import Pipeline

from train.mine import PAD_SECONDS

from .paths import ACTIVATE
from .tiny import TINY_UNITS, tiny, train_args


@pytest.fixture(scope="module")
def t():
    return tiny()


def lowest_useful_threshold(t) -> float:
    """A threshold at which the tiny model fires somewhere on the real negatives (it is weak)."""
    model = StreamingModel(t.tflite)
    from edge.features import compute_features

    peaks = []
    for path in sorted((ACTIVATE / "negatives").glob("*.wav")):
        model.reset()
        peaks.append(float(model.process(compute_features(read_audio(path))).max()))
    return float(np.clip(np.median(peaks), 0.01, 0.98))


def test_mine_cuts_every_firing_and_reruns_identically(t, tmp_path):
    from train.mine import main

    threshold = round(lowest_useful_threshold(t), 4)
    out = tmp_path / "mined"
    args = ["--model", str(t.tflite), "--negatives", str(ACTIVATE / "negatives"), "--out", str(out),
            "--threshold", str(threshold), "--before", "1.0", "--after", "0.2"]
    assert main(args) == 0
    manifest = json.loads((out / "mined.json").read_text())
    clips = manifest["clips"]
    assert clips, "the threshold was chosen so that the model fires"
    assert sorted(p.name for p in out.glob("mined-*.wav")) == [c["file"] for c in clips]
    pipeline = Pipeline(StreamingModel(t.tflite), DetectorConfig(threshold=threshold, refractory_seconds=1.0))
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.int16)
    for c in clips:
        audio = read_audio(out / c["file"])
        assert 0 < audio.size <= int(1.2 * SAMPLE_RATE)
        assert c["score"] >= threshold
        # the firing is really there: the source file, run the device's way, fires at that time
        pipeline.reset()
        fired = [d.seconds - PAD_SECONDS for d in pipeline.process(np.concatenate([pad, read_audio(c["source"]), pad]))]
        assert any(abs(f - c["time"]) < 1e-3 for f in fired)
    first = {p.name: p.read_bytes() for p in out.glob("mined-*.wav")}
    assert main(args) == 0
    assert {p.name: p.read_bytes() for p in out.glob("mined-*.wav")} == first
    assert json.loads((out / "mined.json").read_text()) == manifest


def test_mine_refuses_a_bad_threshold(t, tmp_path, capsys):
    from train.mine import main

    code = main(["--model", str(t.tflite), "--negatives", str(ACTIVATE / "negatives"), "--out", str(tmp_path), "--threshold", "1.5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edge-mine: error: --threshold") and "Traceback" not in err


def test_init_starts_from_the_given_weights(t):
    import keras

    from train.model import ModelConfig, build_model
    from train.train import _load_initial_weights

    model = build_model(ModelConfig(filters=int(TINY_UNITS), gru_units=int(TINY_UNITS)))
    _load_initial_weights(model, str(t.keras))
    source = keras.models.load_model(t.keras, compile=False)
    for mine, theirs in zip(model.get_weights(), source.get_weights()):
        assert np.array_equal(mine, theirs)


def test_finetune_run_says_where_it_started(t, tmp_path, capsys):
    from train.train import main

    args = train_args(t, epochs=1)
    args[args.index("--out") + 1] = str(tmp_path / "tuned")
    assert main(args + ["--init", str(t.keras), "--lr", "3e-4"]) == 0
    assert f"starting from the weights of {t.keras}" in capsys.readouterr().err
    meta = json.loads((tmp_path / "tuned" / "train_config.json").read_text())
    assert meta["train"]["init"] == str(t.keras)


@pytest.mark.parametrize("units, message", [("32", "its layers differ"), (None, "Keras model not found")])
def test_init_with_the_wrong_model_is_one_line(t, tmp_path, capsys, units, message):
    from train.train import main

    args = train_args(t, epochs=1)
    args[args.index("--out") + 1] = str(tmp_path / "bad")
    init = str(t.keras) if units else str(tmp_path / "missing.keras")
    if units:
        args[args.index("--units") + 1] = units
    assert main(args + ["--init", init]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
