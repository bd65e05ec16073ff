"""A tiny but real pipeline run, built once per test session: synth -> train -> convert.

Small sizes keep it fast enough for CI; every stage is the real command code path.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .paths import ACTIVATE

TINY_CLIPS = 48
TINY_VAL_CLIPS = 12
TINY_EPOCHS = 2
TINY_UNITS = "16"


@dataclass(frozen=True)
class Tiny:
    root: Path
    train_data: Path
    val_data: Path
    run: Path
    keras: Path
    tflite: Path


def synth_args(out: Path, count: int, seed: int) -> list[str]:
    return [
        "build",
        "--positives", str(ACTIVATE / "positives"),
        "--negatives", str(ACTIVATE / "negatives"),
        "--backgrounds", str(ACTIVATE / "backgrounds"),
        "--out", str(out), "--count", str(count), "--seed", str(seed), "--shard-size", "16", "--workers", "2",
    ]


def train_args(t: "Tiny", epochs: int = TINY_EPOCHS) -> list[str]:
    return [
        "--data", str(t.train_data), "--val", str(t.val_data), "--out", str(t.run),
        "--epochs", str(epochs), "--filters", TINY_UNITS, "--units", TINY_UNITS, "--batch-size", "8",
    ]


@functools.cache
def tiny() -> Tiny:
    from convert.convert import main as convert_main
    from train.synth_cli import main as synth_main
    from train.train import main as train_main

    root = Path(tempfile.mkdtemp(prefix="trigger-edge-tiny-"))
    t = Tiny(root, root / "ds-train", root / "ds-val", root / "run", root / "run" / "model.keras", root / "tiny.tflite")
    assert synth_main(synth_args(t.train_data, TINY_CLIPS, 1)) == 0
    assert synth_main(synth_args(t.val_data, TINY_VAL_CLIPS, 2)) == 0
    assert train_main(train_args(t)) == 0
    rc = convert_main(["--model", str(t.keras), "--data", str(t.train_data), "--check", str(t.val_data), "--out", str(t.tflite), "--check-clips", "6"])
    assert rc == 0
    return t
