"""Build the TensorFlow step function from folded weights and convert it to TFLite.

State is carried as explicit inputs/outputs (``conv_state``, ``gru1_state``,
``gru2_state``): the runner keeps three small float arrays and feeds them back on each
call. That is the simplest form for any interpreter (no resource variables, no
``reset_variables``) and lets the runner reset or inspect state in plain numpy.
The int8 model keeps float32 inputs/outputs around a fully int8 body: quantize ops at the
inputs and dequantize ops at the outputs, so a state never crosses two different int8
scales between calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .fold import GruWeights, StepWeights, member_gru

INPUT_NAMES = ("frames", "conv_state", "gru1_state", "gru2_state")
OUTPUT_NAMES = ("logit", "conv_state_out", "gru1_state_out", "gru2_state_out")
"""The score is the logit: the host applies the sigmoid in float (edge.model.LOGIT_OUTPUT)."""


def _gru_tf(tf, x, h, w, prefix: str):
    u = w.units
    kernel = tf.constant(w.kernel, tf.float32)
    recurrent = tf.constant(w.recurrent, tf.float32)
    mx = tf.matmul(x, kernel) + tf.constant(w.input_bias, tf.float32)
    mh = tf.matmul(h, recurrent) + tf.constant(w.recurrent_bias, tf.float32)
    z = tf.sigmoid(mx[:, :u] + mh[:, :u])
    r = tf.sigmoid(mx[:, u : 2 * u] + mh[:, u : 2 * u])
    hh = tf.tanh(mx[:, 2 * u :] + r * mh[:, 2 * u :])
    return tf.add(z * h, (1.0 - z) * hh, name=f"{prefix}_h")


def _gru_members_tf(tf, x, h, w: GruWeights, members: int, prefix: str):
    """A merged ensemble's GRU as its members' own small GRUs (their outputs side by side)."""
    if members == 1:
        return _gru_tf(tf, x, h, w, prefix)
    r, u = w.kernel.shape[0] // members, w.units // members
    outs = [_gru_tf(tf, x[:, i * r : (i + 1) * r], h[:, i * u : (i + 1) * u], member_gru(w, members, i), f"{prefix}_m{i}")
            for i in range(members)]
    return tf.concat(outs, axis=1, name=f"{prefix}_h")


def step_module(weights: StepWeights):
    """A tf.Module whose ``step`` is one streaming output step (batch 1)."""
    import tensorflow as tf

    ch, k, s = weights.channels, weights.kernel_frames, weights.stride_frames
    cs = weights.conv_state_frames
    u1, u2 = weights.gru1.units, weights.gru2.units
    conv_w = tf.constant(weights.conv_w, tf.float32)
    conv_b = tf.constant(weights.conv_b, tf.float32)
    out_w = tf.constant(weights.out_w, tf.float32)
    out_b = tf.constant(weights.out_b, tf.float32)

    class Step(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([1, s, ch], tf.float32, name="frames"),
                tf.TensorSpec([1, cs, ch], tf.float32, name="conv_state"),
                tf.TensorSpec([1, u1], tf.float32, name="gru1_state"),
                tf.TensorSpec([1, u2], tf.float32, name="gru2_state"),
            ]
        )
        def step(self, frames, conv_state, gru1_state, gru2_state):
            window = tf.concat([conv_state, frames], axis=1)
            c = tf.nn.relu(tf.matmul(tf.reshape(window, [1, k * ch]), conv_w) + conv_b)
            h1 = _gru_members_tf(tf, c, gru1_state, weights.gru1, weights.members, "gru1")
            h2 = _gru_members_tf(tf, h1, gru2_state, weights.gru2, weights.members, "gru2")
            logit = tf.matmul(h2, out_w) + out_b
            return {
                "logit": tf.reshape(logit, [1, 1]),
                "conv_state_out": window[:, s:, :],
                "gru1_state_out": h1,
                "gru2_state_out": h2,
            }

    return Step()


def step_states(weights: StepWeights, features: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """Yield the exact inputs of each step (frames + states) over a float feature sequence."""
    from .fold import gru_step

    k, s, cs = weights.kernel_frames, weights.stride_frames, weights.conv_state_frames
    h1 = np.zeros(weights.gru1.units)
    h2 = np.zeros(weights.gru2.units)
    n_steps = (features.shape[0] - k) // s + 1 if features.shape[0] >= k else 0
    for i in range(n_steps):
        window = features[i * s : i * s + k]
        yield {
            "frames": window[cs:][None].astype(np.float32),
            "conv_state": window[:cs][None].astype(np.float32),
            "gru1_state": h1[None].astype(np.float32),
            "gru2_state": h2[None].astype(np.float32),
        }
        c = np.maximum(window.reshape(-1) @ weights.conv_w + weights.conv_b, 0.0)
        h1 = gru_step(c, h1, weights.gru1)
        h2 = gru_step(h1, h2, weights.gru2)


def to_tflite(weights: StepWeights, representative: Iterable[dict[str, np.ndarray]] | None = None) -> bytes:
    """Float TFLite when ``representative`` is None, else full-int8 body with float I/O."""
    import tensorflow as tf

    module = step_module(weights)
    concrete = module.step.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if representative is not None:
        samples = list(representative)

        def gen():
            for sample in samples:
                yield sample

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    from train.quiet_tf import converting

    with converting():
        return converter.convert()
