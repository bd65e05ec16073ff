"""Fold the trained Keras sequence model into plain step weights (BatchNorm folded, dropout gone).

The result, ``StepWeights``, is what one 40 ms output step computes::

    window  = concat(conv_state, new_frames)            # (15, 40) frames
    c       = relu(window.flatten() @ conv_w + conv_b)  # Conv1D + BatchNorm, folded
    h1      = gru(c, h1; gru1)                           # GRU 1
    h2      = gru(h1, h2; gru2)                          # GRU 2 (GRU 1's BatchNorm folded in)
    p       = sigmoid(h2 @ out_w + out_b)                # Dense (GRU 2's BatchNorm folded in)

``numpy_step`` runs exactly that in float64 as the reference for every parity check.

An ensemble merged by ``train.ensemble`` has block-diagonal GRU matrices: ``members`` says how many
independent members the weights hold (1 for an ordinary model), and ``member_gru`` cuts one out, so
the step graph can run each member's small blocks instead of the dense, mostly-zero wide matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GruWeights:
    kernel: np.ndarray  # (in, 3u) gates z, r, h
    recurrent: np.ndarray  # (u, 3u)
    input_bias: np.ndarray  # (3u,)
    recurrent_bias: np.ndarray  # (3u,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]


@dataclass(frozen=True)
class StepWeights:
    conv_w: np.ndarray  # (kernel*channels, filters)
    conv_b: np.ndarray
    gru1: GruWeights
    gru2: GruWeights
    out_w: np.ndarray  # (units, 1)
    out_b: np.ndarray
    kernel_frames: int
    stride_frames: int
    channels: int
    members: int = 1
    """Independent members side by side (block-diagonal GRUs, found by ``find_members``)."""

    @property
    def conv_state_frames(self) -> int:
        return self.kernel_frames - self.stride_frames


GRU_GATES = 3
MAX_MEMBERS = 8


def member_columns(units: int, members: int, i: int) -> np.ndarray:
    """Columns of member ``i``'s z, r and h gates in a merged (.., 3 * units) GRU matrix: gate g of
    member i sits at ``g * units + i * units // members`` (``train.ensemble`` builds it that way)."""
    u = units // members
    return np.concatenate([np.arange(g * units + i * u, g * units + (i + 1) * u) for g in range(GRU_GATES)])


def member_gru(w: GruWeights, members: int, i: int) -> GruWeights:
    """Member ``i``'s own GRU out of a block-diagonal merged one."""
    cols = member_columns(w.units, members, i)
    r, u = w.kernel.shape[0] // members, w.units // members
    return GruWeights(w.kernel[i * r : (i + 1) * r, cols], w.recurrent[i * u : (i + 1) * u, cols],
                      w.input_bias[cols], w.recurrent_bias[cols])


def _block_diagonal(w: GruWeights, members: int) -> bool:
    if w.kernel.shape[0] % members or w.units % members:
        return False
    for matrix in (w.kernel, w.recurrent):
        inside = np.zeros(matrix.shape, dtype=bool)
        r = matrix.shape[0] // members
        for i in range(members):
            inside[np.ix_(np.arange(i * r, (i + 1) * r), member_columns(w.units, members, i))] = True
        if np.any(matrix[~inside]):
            return False
    return True


def find_members(gru1: GruWeights, gru2: GruWeights) -> int:
    """The most members both GRUs split into exactly (every weight outside the blocks is zero); 1 if none."""
    for n in range(MAX_MEMBERS, 1, -1):
        if _block_diagonal(gru1, n) and _block_diagonal(gru2, n):
            return n
    return 1


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def _gru(layer, in_scale=None, in_shift=None) -> GruWeights:
    kernel, recurrent, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    if not layer.cell.reset_after:
        raise ValueError("only reset_after=True GRUs are supported")
    input_bias, recurrent_bias = bias[0], bias[1]
    if in_scale is not None:
        input_bias = input_bias + in_shift @ kernel
        kernel = kernel * in_scale[:, None]
    return GruWeights(kernel, recurrent, input_bias, recurrent_bias)


def fold(model) -> StepWeights:
    conv = model.get_layer("conv")
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in conv.get_weights())
    k, ch, filters = kernel.shape
    scale, shift = _bn_affine(model.get_layer("conv_bn"))
    conv_w = kernel.reshape(k * ch, filters) * scale[None, :]
    conv_b = bias * scale + shift
    s1, b1 = _bn_affine(model.get_layer("gru1_bn"))
    s2, b2 = _bn_affine(model.get_layer("gru2_bn"))
    dense_w, dense_b = (np.asarray(w, dtype=np.float64) for w in model.get_layer("prob").get_weights())
    gru1, gru2 = _gru(model.get_layer("gru1")), _gru(model.get_layer("gru2"), s1, b1)
    return StepWeights(
        conv_w=conv_w,
        conv_b=conv_b,
        gru1=gru1,
        gru2=gru2,
        out_w=dense_w * s2[:, None],
        out_b=dense_b + b2 @ dense_w,
        kernel_frames=k,
        stride_frames=int(conv.strides[0]),
        channels=ch,
        members=find_members(gru1, gru2),
    )


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_step(x: np.ndarray, h: np.ndarray, w: GruWeights) -> np.ndarray:
    mx = x @ w.kernel + w.input_bias
    mh = h @ w.recurrent + w.recurrent_bias
    u = w.units
    z = _sigmoid(mx[..., :u] + mh[..., :u])
    r = _sigmoid(mx[..., u : 2 * u] + mh[..., u : 2 * u])
    hh = np.tanh(mx[..., 2 * u :] + r * mh[..., 2 * u :])
    return z * h + (1.0 - z) * hh


def numpy_sequence(weights: StepWeights, features: np.ndarray) -> np.ndarray:
    """Reference: run the folded step arithmetic over a whole (frames, channels) float input."""
    k, s = weights.kernel_frames, weights.stride_frames
    n_steps = (features.shape[0] - k) // s + 1 if features.shape[0] >= k else 0
    h1 = np.zeros(weights.gru1.units)
    h2 = np.zeros(weights.gru2.units)
    out = np.zeros(n_steps)
    for i in range(n_steps):
        window = features[i * s : i * s + k].reshape(-1)
        c = np.maximum(window @ weights.conv_w + weights.conv_b, 0.0)
        h1 = gru_step(c, h1, weights.gru1)
        h2 = gru_step(h1, h2, weights.gru2)
        out[i] = _sigmoid(h2 @ weights.out_w + weights.out_b)[0]
    return out
