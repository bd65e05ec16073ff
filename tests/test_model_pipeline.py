"""Train -> convert -> device model, on a tiny real run: streaming == whole clip, float step == Keras,
int8 close to float, checkpoints resume, bad models give one-line errors."""

import json
import shutil

import numpy as np
import pytest

from edge.audio import read_audio
from edge.errors import EdgeError, ModelError
from edge.features import compute_features, to_model_input
from edge.model import StreamingModel
from edge.pipeline import Pipeline

from .paths import DEV
from .tiny import tiny, train_args


@pytest.fixture(scope="module")
def t():
    return tiny()


@pytest.fixture(scope="module")
def keras_model(t):
    from convert.convert import load_keras

    return load_keras(t.keras)


def test_training_wrote_log_plot_and_state(t):
    state = json.loads((t.run / "state.json").read_text())
    assert state["finished"] and state["epoch"] == 2
    assert len(state["history"]["val_loss"]) == 2 and state["peak_rss_mb"] > 0
    assert (t.run / "loss.png").stat().st_size > 0
    assert (t.run / "log.csv").read_text().startswith("epoch,loss,val_loss,seconds")


def test_resume_continues_from_checkpoint(t, tmp_path):
    from train.train import main

    run = tmp_path / "run"
    shutil.copytree(t.run, run)
    state = json.loads((run / "state.json").read_text())
    state["finished"] = False
    (run / "state.json").write_text(json.dumps(state))
    args = train_args(t, epochs=3)
    args[args.index("--out") + 1] = str(run)
    assert main(args) == 0
    after = json.loads((run / "state.json").read_text())
    assert after["epoch"] == 3 and after["history"]["loss"][:2] == state["history"]["loss"]


def test_conversion_parity_report(t):
    report = json.loads(t.tflite.with_name("tiny-parity.json").read_text())
    assert report["float_step_vs_keras_max_abs_dp"] <= 1e-4
    assert report["int8_vs_keras_mean_abs_dp"] < 0.05
    assert report["size_bytes"] == t.tflite.stat().st_size


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("kind", ["converted", "shipped"])
def test_metadata_carries_no_absolute_path(t, kind):
    """A model's JSON travels to other machines: no path of the build machine in it."""
    from edge.model import default_model_path

    model = t.tflite if kind == "converted" else default_model_path()
    for name in (model.with_suffix(".json"), model.with_name(model.stem + "-parity.json")):
        meta = json.loads(name.read_text())
        assert not [s for s in _strings(meta) if s.startswith("/")], name
    meta = json.loads(model.with_suffix(".json").read_text())
    assert (model.parent / meta["source_model"]).resolve() == (t.keras if kind == "converted" else model.with_suffix(".keras")).resolve()


def test_int8_model_has_no_float_compute(t):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # without the XNNPACK delegate, so the ops are listed as the file holds them
    interp = Interpreter(model_path=str(t.tflite), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    for op in interp._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for idx in list(op["inputs"]) + list(op["outputs"]):
            if idx >= 0:
                assert details[idx]["dtype"] in (np.int8, np.int32, np.int16), (op["op_name"], details[idx]["name"])


def test_streaming_model_equals_keras_sequence_on_a_real_clip(t, keras_model):
    audio = read_audio(DEV / "coursera__2.wav")
    feats = compute_features(audio)
    ref = keras_model.predict(to_model_input(feats)[None], verbose=0)[0, :, 0]
    model = StreamingModel(t.tflite)
    whole = model.process(feats)
    assert whole.shape == ref.shape
    assert np.max(np.abs(whole - ref)) < 0.1
    # streaming in odd pieces == whole clip, bit for bit
    model.reset()
    pieces = np.concatenate([model.process(feats[i : i + 3]) for i in range(0, len(feats), 3)])
    assert np.array_equal(pieces, whole)


def test_pipeline_audio_chunks_equal_whole_clip(t):
    audio = read_audio(DEV / "coursera__1.wav")
    p = Pipeline(StreamingModel(t.tflite), trace=True)
    whole = p.process(audio)
    probs = list(p.trace.probabilities)
    p.reset()
    chunked = []
    for i in range(0, audio.size, 1001):
        chunked += p.process(audio[i : i + 1001])
    assert chunked == whole and p.trace.probabilities == probs


def test_model_errors_are_one_line(t, tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        StreamingModel(tmp_path / "none.tflite")
    truncated = tmp_path / "trunc.tflite"
    truncated.write_bytes(t.tflite.read_bytes()[:1000])
    shutil.copy(t.tflite.with_suffix(".json"), truncated.with_suffix(".json"))
    with pytest.raises(ModelError, match="trunc.tflite"):
        StreamingModel(truncated)
    notflite = tmp_path / "text.tflite"
    notflite.write_text("hello")
    shutil.copy(t.tflite.with_suffix(".json"), notflite.with_suffix(".json"))
    with pytest.raises(ModelError, match="not a TFLite model"):
        StreamingModel(notflite)
    nometa = tmp_path / "nometa.tflite"
    shutil.copy(t.tflite, nometa)
    with pytest.raises(ModelError, match="metadata missing"):
        StreamingModel(nometa)


def test_frontend_mismatch_is_refused(t, tmp_path):
    bad = tmp_path / "bad.tflite"
    shutil.copy(t.tflite, bad)
    meta = json.loads(t.tflite.with_suffix(".json").read_text())
    meta["frontend"]["channels"] = 32
    bad.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="another frontend: channels=32"):
        StreamingModel(bad)


def test_convert_cli_rejects_a_bad_keras_file(tmp_path, capsys):
    from convert.convert import main

    bad = tmp_path / "bad.keras"
    bad.write_text("nope")
    rc = main(["--model", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "o.tflite")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("edge-convert: error:") and "bad.keras" in err[-1]


def test_train_cli_rejects_missing_dataset(tmp_path, capsys):
    from train.train import main

    rc = main(["--data", str(tmp_path / "none"), "--val", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("edge-train: error:") and "not a dataset" in err[-1]


def test_errors_inherit_root(t):
    assert issubclass(ModelError, EdgeError) and issubclass(ModelError, ValueError)


def test_step_model_outputs_the_logit_and_the_host_applies_the_sigmoid(t):
    """The int8 body ends before the sigmoid (so scores near 1 keep their resolution); the
    probability StreamingModel returns is exactly the float sigmoid of the logit tensor."""
    import math

    meta = json.loads(t.tflite.with_suffix(".json").read_text())
    assert meta["output"] == "logit"
    model = StreamingModel(t.tflite)
    frames = compute_features(read_audio(DEV / "coursera__1.wav"))
    probs = model.process(frames)
    interp = model._interp
    logit = float(interp.get_tensor(model._outputs["logit"]).reshape(-1)[0])
    assert probs[-1] == np.float32(1.0 / (1.0 + math.exp(-logit)))
    detail = next(d for d in interp.get_output_details() if d["index"] == model._outputs["logit"])
    assert detail["dtype"] == np.float32  # dequantized: float I/O around the int8 body


def test_unknown_score_output_is_refused(t, tmp_path):
    meta = json.loads(t.tflite.with_suffix(".json").read_text())
    meta["output"] = "softmax"
    shutil.copy(t.tflite, tmp_path / "m.tflite")
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="output 'softmax' is not one of probability, logit"):
        StreamingModel(tmp_path / "m.tflite")
