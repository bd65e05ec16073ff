"""edge-train --epoch-average N: the kept model is the exact mean of the epochs N..last, and no early stop."""

import json

import numpy as np
import pytest

from train.averaging import mean_weights

from .tiny import tiny, train_args


def test_mean_weights_is_exact_and_float32():
    a = [np.array([1.0, 2.0], np.float32), np.array([[3.0]], np.float32)]
    b = [np.array([2.0, 4.0], np.float32), np.array([[6.0]], np.float32)]
    mean = mean_weights([a, b])
    assert [w.tolist() for w in mean] == [[1.5, 3.0], [[4.5]]]
    assert all(w.dtype == np.float32 for w in mean)


def test_mean_weights_refuses_models_of_other_layers():
    from edge.errors import DataError

    with pytest.raises(DataError, match="different layers"):
        mean_weights([[np.zeros(2)], [np.zeros(3)]])


def test_the_kept_model_is_the_mean_of_the_epochs_and_training_runs_to_the_end(tmp_path):
    from convert.convert import load_keras
    from train.train import epoch_path, main

    args = train_args(tiny(), epochs=3)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args + ["--epoch-average", "2", "--patience", "0"]) == 0  # patience 0 alone stops after epoch 1
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 3 and state["kept"]["epoch_average"] == [2, 3]
    expected = mean_weights([load_keras(epoch_path(tmp_path, e)).get_weights() for e in (2, 3)])
    kept = load_keras(tmp_path / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, expected))
    assert np.isfinite(state["kept"]["val_loss"])


def test_an_average_past_the_last_epoch_is_one_line_and_non_zero(tmp_path, capsys):
    from train.train import main

    args = train_args(tiny(), epochs=2)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args + ["--epoch-average", "3"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "--epoch-average 3" in err[-1] and "Traceback" not in "\n".join(err)
