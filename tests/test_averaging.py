"""Weight averaging in edge-train: exact arithmetic, swap in and back, saved state, and a real run."""

import json

import numpy as np
import pytest

from train.averaging import AVERAGE_FILE, AverageConfig, WeightAverage

from .tiny import TINY_CLIPS, tiny, train_args


def test_average_is_exact_and_starts_at_the_first_weights():
    avg = WeightAverage(AverageConfig(decay=0.75))
    avg.process([np.array([4.0, 8.0]), np.array([[1.0]])])
    assert [w.tolist() for w in avg.weights] == [[4.0, 8.0], [[1.0]]]
    avg.process([np.array([0.0, 0.0]), np.array([[5.0]])])
    # 0.75 * old + 0.25 * new, all exact in binary floating point
    assert [w.tolist() for w in avg.weights] == [[3.0, 6.0], [[2.0]]]
    assert avg.batches == 2
    avg.reset()
    assert avg.weights is None and avg.batches == 0


def test_process_never_changes_its_input():
    w = np.array([1.0, 2.0], dtype=np.float32)
    avg = WeightAverage(AverageConfig(decay=0.5))
    avg.process([w])
    avg.process([np.array([3.0, 4.0], dtype=np.float32)])
    assert w.tolist() == [1.0, 2.0] and avg.weights[0].tolist() == [2.0, 3.0]


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    from edge.errors import DataError

    with pytest.raises(DataError, match="strictly between 0 and 1"):
        AverageConfig(decay)


def test_saved_average_restores_exactly(tmp_path):
    avg = WeightAverage(AverageConfig(decay=0.5))
    avg.process([np.arange(3, dtype=np.float32), np.ones((2, 2), np.float32)])
    avg.process([np.zeros(3, np.float32), np.zeros((2, 2), np.float32)])
    avg.save(tmp_path)
    back = WeightAverage(AverageConfig(decay=0.5))
    assert back.load(tmp_path)
    assert back.batches == 2
    assert [w.tolist() for w in back.weights] == [[0.0, 0.5, 1.0], [[0.5, 0.5], [0.5, 0.5]]]
    assert not WeightAverage(AverageConfig()).load(tmp_path / "nothing-here")


def test_applied_swaps_the_average_in_and_the_own_weights_back():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    own = [w.copy() for w in model.get_weights()]
    avg = WeightAverage(AverageConfig(decay=0.5))
    avg.process([np.full_like(w, 7.0) for w in own])
    with avg.applied(model) as m:
        assert all((w == 7.0).all() for w in m.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), own))


def test_edge_train_keeps_the_average_as_its_model_and_trains_on_from_its_own(tmp_path):
    """One epoch: the best model is epoch 1's average, saved beside the checkpoint, which holds
    the raw weights; re-running with more epochs resumes the average from that file."""
    from convert.convert import load_keras
    from train.train import Batches, TrainConfig, main

    t = tiny()
    run = tmp_path / "run"
    args = train_args(t, epochs=1)
    args[args.index("--out") + 1] = str(run)
    assert main(args + ["--average-weights", "--average-decay", "0.9"]) == 0
    with np.load(run / AVERAGE_FILE) as z:
        saved = [z[f"w{i}"] for i in range(len(z.files) - 1)]
        batches = int(z["batches"])
    state = json.loads((run / "state.json").read_text())
    plan = Batches(np.zeros((TINY_CLIPS, 30, 40), np.uint16), np.zeros((TINY_CLIPS, 1), np.float32),
                   TrainConfig(batch_size=8), shuffle=True)
    assert batches == len(plan)  # every training batch of the epoch was averaged, once
    best = load_keras(run / "model.keras").get_weights()
    raw = load_keras(run / "checkpoint.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(best, saved))
    assert not all(np.array_equal(a, b) for a, b in zip(best, raw))
    config = json.loads((run / "train_config.json").read_text())
    assert config["train"]["average"] == {"decay": 0.9}

    state["finished"] = False
    (run / "state.json").write_text(json.dumps(state))
    args2 = train_args(t, epochs=2)
    args2[args2.index("--out") + 1] = str(run)
    assert main(args2 + ["--average-weights", "--average-decay", "0.9"]) == 0
    with np.load(run / AVERAGE_FILE) as z:
        assert int(z["batches"]) == 2 * batches


def test_bad_decay_is_one_line_and_exit_2(capsys):
    from train.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--data", "x", "--val", "y", "--out", "z", "--average-weights", "--average-decay", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "strictly between 0 and 1" in err[-1] and "Traceback" not in "\n".join(err)
