"""edge-train --keep-epochs: every epoch's model is kept, and the kept best is one of them."""

import json

import numpy as np

from .tiny import tiny, train_args


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


def test_every_epoch_is_kept_and_the_best_is_the_lowest_validation_loss(tmp_path):
    from convert.convert import load_keras
    from train.train import EPOCHS_DIR, epoch_path, main

    t = tiny()
    args = train_args(t, epochs=2)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args + ["--keep-epochs", "--patience", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / EPOCHS_DIR).iterdir()) == ["epoch-01.keras", "epoch-02.keras"]
    kept = [load_keras(epoch_path(tmp_path, e)) for e in (1, 2)]
    assert _same(kept[1], load_keras(tmp_path / "checkpoint.keras"))  # the last epoch's, no averaging
    assert not _same(kept[0], kept[1])
    losses = json.loads((tmp_path / "state.json").read_text())["history"]["val_loss"]
    assert _same(load_keras(tmp_path / "model.keras"), kept[int(np.argmin(losses))])


def test_without_the_flag_no_epoch_is_kept(tmp_path):
    from train.train import EPOCHS_DIR, main

    args = train_args(tiny(), epochs=1)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args) == 0
    assert (tmp_path / "model.keras").is_file() and not (tmp_path / EPOCHS_DIR).exists()
