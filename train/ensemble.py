"""Merge several trained step models into one model of the same kind: an ensemble the device runs as one.

    edge-ensemble --models run1/model.keras run1-b/model.keras --out run1/ensemble.keras

Members are models of the same shape (``edge-train`` with other seeds). The merged model is again
Conv1D -> BatchNorm -> GRU -> BatchNorm -> GRU -> BatchNorm -> Dense(sigmoid), only wider:

- the Conv1D's filters and every BatchNorm's channels are the members' side by side;
- each GRU's kernel and recurrent matrices are block-diagonal, gate by gate (z, r, h), so member
  ``i``'s units see only member ``i``'s inputs and state: the merged GRU *is* the members' GRUs;
- the Dense layer averages the members' logits (weights and bias divided by the member count).

So its output is exactly ``sigmoid(mean of the members' logits)``, and everything downstream
(``edge-convert``, its parity check, ``edge-mine``, the verifier, the runner) takes it unchanged.
``convert.fold`` finds the block structure again and the step graph runs each member's blocks as
their own small matrices, so the device pays the members' cost, not a dense wider model's.

Why: one run's real-voice FRR moves by up to 15 points with the seed alone; the mean of two seeds'
logits ranks real words better than either (models/README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from convert.fold import GRU_GATES, member_columns
from edge.errors import DataError, run_guarded
from edge.helpformat import HelpFormatter

from .model import ModelConfig, build_model

BN_LAYERS = ("conv_bn", "gru1_bn", "gru2_bn")
GRU_LAYERS = ("gru1", "gru2")


def member_config(model) -> ModelConfig:
    conv = model.get_layer("conv")
    gru1, gru2 = (model.get_layer(n) for n in GRU_LAYERS)
    if gru1.units != gru2.units:
        raise DataError(f"{model.name}: GRUs of {gru1.units} and {gru2.units} units (members need equal layers)")
    return ModelConfig(filters=conv.filters, kernel_frames=conv.kernel_size[0], stride_frames=conv.strides[0],
                       gru_units=gru1.units, channels=conv.input.shape[-1])


def block_diagonal(blocks: list[np.ndarray], units: int) -> np.ndarray:
    """A GRU matrix (rows, 3u) per member -> one (sum rows, 3 * n * u): member i's rows at its input
    rows, its gates at ``convert.fold.member_columns``; everything else is zero."""
    n = len(blocks)
    out = np.zeros((sum(b.shape[0] for b in blocks), GRU_GATES * n * units), dtype=np.float32)
    r = 0
    for i, b in enumerate(blocks):
        out[r : r + b.shape[0], member_columns(n * units, n, i)] = b
        r += b.shape[0]
    return out


def gate_concat(parts: list[np.ndarray], units: int) -> np.ndarray:
    """GRU biases (..., 3u) per member -> (..., 3 * n * u) in the merged gate layout."""
    n = len(parts)
    out = np.zeros(parts[0].shape[:-1] + (GRU_GATES * n * units,), dtype=np.float32)
    for i, p in enumerate(parts):
        out[..., member_columns(n * units, n, i)] = p
    return out


def merge(members: list) -> object:
    """The Keras model whose output is sigmoid(mean of the members' logits)."""
    if len(members) < 2:
        raise DataError("an ensemble needs at least two models")
    configs = {member_config(m) for m in members}
    if len(configs) != 1:
        raise DataError("the models differ in shape (filters, units, kernel); train every member with the same settings")
    c = configs.pop()
    n, u = len(members), c.gru_units
    merged = build_model(ModelConfig(filters=n * c.filters, kernel_frames=c.kernel_frames, stride_frames=c.stride_frames,
                                     gru_units=n * u, dropout=c.dropout, channels=c.channels))

    def layers(name: str) -> list[list[np.ndarray]]:
        return [m.get_layer(name).get_weights() for m in members]

    merged.get_layer("conv").set_weights([np.concatenate([k for k, _ in layers("conv")], axis=-1),
                                          np.concatenate([b for _, b in layers("conv")])])
    for name in BN_LAYERS:
        merged.get_layer(name).set_weights([np.concatenate(parts) for parts in zip(*layers(name))])
    for name in GRU_LAYERS:
        weights = layers(name)
        merged.get_layer(name).set_weights([block_diagonal([w[0] for w in weights], u),
                                            block_diagonal([w[1] for w in weights], u),
                                            gate_concat([w[2] for w in weights], u)])
    dense = layers("prob")
    merged.get_layer("prob").set_weights([np.concatenate([w for w, _ in dense]) / n, np.mean([b for _, b in dense], axis=0)])
    return merged


def merge_files(paths: list[str], out: str, log=None) -> Path:
    from convert.convert import load_keras

    members = [load_keras(p) for p in paths]
    model = merge(members)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    shape = member_config(model)
    print(f"edge-ensemble: {len(members)} models -> {out_path} ({shape.filters} filters, {shape.gru_units} units)",
          file=log or sys.stderr)
    return out_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-ensemble", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="trained .keras models of the same shape (two or more)")
    p.add_argument("--out", required=True, help="the merged .keras model")
    args = p.parse_args(argv)
    from .quiet_tf import quiet_tensorflow

    quiet_tensorflow()
    code, _ = run_guarded("edge-ensemble", merge_files, args.models, args.out)
    return 0 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
