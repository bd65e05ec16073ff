"""edge-train: train the Conv1D + GRU x2 model on synthesized datasets.

    edge-train --data data/ds-train --val data/ds-val --out runs/activate [--epochs 30]
    edge-train --data data/ds-mined --val data/ds-val --out runs/tuned --init runs/activate/model.keras --lr 3e-4

Checkpoints every epoch into ``OUT/checkpoint.keras`` with ``OUT/state.json``; running
the same command again resumes from the last finished epoch. Early stopping on the
validation loss keeps the best model in ``OUT/model.keras``. A CSV log and a loss plot
are written beside it; peak memory and seconds per epoch are printed and logged.

Endless streams: besides single 10 s clips, batches of several clips laid end to end
(``TrainConfig.concat``: 1, 1 then 3 clips per sequence, cycled over batches) teach the
GRUs to run on from a non-zero state, as they do on the device.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError, run_guarded
from edge.features import MODEL_INPUT_SCALE, NOISE_FLOOR_KEY
from edge.geometry import DEFAULT_GEOMETRY
from edge.helpformat import HelpFormatter

from .averaging import AverageConfig, WeightAverage, mean_weights
from .dataset import load_dataset, manifest_hash
from .freqwarp import FreqWarp, FreqWarpConfig
from .model import ModelConfig, build_model
from .quiet_tf import quiet_tensorflow
from .specaugment import SpecAugment, SpecAugmentConfig
from .teacher import DistillStep, TeacherTargets, stage1_of, teacher_targets, with_embedding_head

STATE_FILE = "state.json"
CHECKPOINT = "checkpoint.keras"
BEST = "model.keras"
EPOCHS_DIR = "epochs"
"""With ``TrainConfig.keep_epochs``: every epoch's model, ``epochs/epoch-NN.keras`` (NN from 01)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    patience: int = 6
    concat: tuple[int, ...] = (1, 1, 3)
    """Clips per training sequence, cycled over batches (3 = 30 s sequences)."""
    positive_weight: float = 2.0
    seed: int = 0
    init: str | None = None
    """A trained ``.keras`` model of the same shape to start from (fine-tuning)."""
    spec_augment: SpecAugmentConfig | None = None
    """Mask random time and channel bands of the training batches (never of validation)."""
    freq_warp: FreqWarpConfig | None = None
    """Warp each training clip's channels as if its talker's formants were moved (``train/freqwarp.py``)."""
    average: AverageConfig | None = None
    """Validate, keep and convert a moving average of the weights over batches (``train/averaging.py``)."""
    keep_epochs: bool = False
    """Also save each epoch's model (the one validated) under ``EPOCHS_DIR``, to choose among them later."""
    epoch_average_from: int | None = None
    """Keep the mean of the weights of epochs N..last (stochastic weight averaging) instead of the lowest-val-loss
    epoch; implies ``keep_epochs`` and trains every epoch (no early stop). Measured: ``models/README.md``, 2026-12-06."""
    embedding_weight: float = 0.0
    """> 0: stage 1's first GRU also learns to predict openWakeWord's speech embedding of the training audio
    (``train/teacher.py``; the data folders need ``edge-synth embed``), this weight x its mean squared error
    added to the loss. Training only: the model the device runs is the same. Measured: ``models/README.md``, 2026-12-07."""

    @property
    def saves_epochs(self) -> bool:
        """Each epoch's model is saved under ``EPOCHS_DIR`` (asked for, or needed for the epoch average)."""
        return self.keep_epochs or self.epoch_average_from is not None


def clip_frames(n_frames: int) -> int:
    """Frames kept per clip so clips laid end to end stay on the step grid (multiple of the stride)."""
    return (n_frames // DEFAULT_GEOMETRY.stride_frames) * DEFAULT_GEOMETRY.stride_frames


def concat_labels(labels: np.ndarray, frames_per_clip: int) -> np.ndarray:
    """Labels of clips laid end to end: each clip's steps, then zeros for the straddling steps."""
    per_clip = frames_per_clip // DEFAULT_GEOMETRY.stride_frames
    k, steps = labels.shape
    total = DEFAULT_GEOMETRY.steps_for_frames(k * frames_per_clip)
    out = np.zeros(total, dtype=np.float32)
    for c in range(k):
        out[c * per_clip : c * per_clip + steps] = labels[c]
    return out


class Batches:
    """Keras PyDataset of (features, labels, weights); a fixed shuffle per epoch from the seed."""

    def __init__(self, feats: np.ndarray, labels: np.ndarray, config: TrainConfig, shuffle: bool,
                 teacher: TeacherTargets | None = None) -> None:
        self.feats = feats
        self.labels = labels
        self.teacher = teacher
        """With a teacher, each batch also gives the embedding targets and their mask."""
        self.config = config
        self.shuffle = shuffle
        self.frames = clip_frames(feats.shape[1])
        self.epoch = 0
        self._masks = SpecAugment(config.spec_augment, config.seed) if shuffle and config.spec_augment else None
        self._warp = FreqWarp(config.freq_warp, config.seed) if shuffle and config.freq_warp else None
        self._plan = self._make_plan()

    def _make_plan(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.config.seed, self.epoch])
        order = rng.permutation(len(self.feats)) if self.shuffle else np.arange(len(self.feats))
        plan, pos, b = [], 0, 0
        concat = self.config.concat if self.shuffle else (1,)
        while pos < len(order):
            k = concat[b % len(concat)]
            n = self.config.batch_size * k
            chunk = order[pos : pos + n]
            usable = (len(chunk) // k) * k
            if usable == 0:
                break
            plan.append(chunk[:usable].reshape(-1, k))
            pos += n
            b += 1
        return plan

    def __len__(self) -> int:
        return len(self._plan)

    def batch(self, i: int):
        groups = self._plan[i]
        x = self.feats[groups][:, :, : self.frames, :]  # (b, k, frames, ch)
        b, k = groups.shape
        x = x.reshape(b, k * self.frames, -1).astype(np.float32) * np.float32(MODEL_INPUT_SCALE)
        if self._warp is not None:
            x = self._warp.process(x, k, self.epoch, i)
        if self._masks is not None:
            x = self._masks.process(x, k, self.epoch, i)
        y = np.stack([concat_labels(self.labels[g], self.frames) for g in groups])[..., None]
        w = np.where(y[..., 0] > 0, self.config.positive_weight, 1.0).astype(np.float32)
        if self.teacher is None:
            return x, y, w
        return (x, y, w, *self.teacher.batch(groups, self.frames // DEFAULT_GEOMETRY.stride_frames, y.shape[1]))

    def start_epoch(self, epoch: int) -> None:
        """Jump to the shuffle of ``epoch`` (used when resuming)."""
        self.epoch = epoch
        self._plan = self._make_plan()

    def on_epoch_end(self) -> None:
        self.start_epoch(self.epoch + 1)


def run_epoch(model, batches: Batches, training: bool, log=None, after_batch=None, step=None) -> float:
    """One pass over the batches; returns the mean loss (weighted by batch). ``after_batch(model)``
    runs after each one (the weight average); ``step(*batch)`` trains on one (default: Keras's own)."""
    losses = []
    if step is None:
        keras_step = model.train_on_batch if training else model.test_on_batch

        def step(x, y, w):
            return keras_step(x, y, sample_weight=w)
    report_every = max(len(batches) // 10, 1)
    for i in range(len(batches)):
        loss = step(*batches.batch(i))
        losses.append(float(np.asarray(loss).reshape(-1)[0]))
        if after_batch is not None:
            after_batch(model)
        if log is not None and (i + 1) % report_every == 0:
            print(f"  batch {i + 1}/{len(batches)} loss {np.mean(losses):.4f}", file=log, flush=True)
    return float(np.mean(losses)) if losses else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(data: list[str], val: list[str], out: str, model_config: ModelConfig, config: TrainConfig, log=None) -> Path:
    log = log or sys.stderr
    import keras

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    feats, labels, frontend = _load_all(data)
    vfeats, vlabels, vfrontend = _load_all(val)
    if vfrontend != frontend:
        raise DataError(f"the validation data was made with another frontend than the training data ({_floor_of(vfrontend)} "
                        f"against {_floor_of(frontend)}): build both with the same --noise-floor-dbfs")
    if config.epoch_average_from is not None and not 1 <= config.epoch_average_from <= config.epochs:
        raise DataError(f"--epoch-average {config.epoch_average_from}: must lie between 1 and --epochs {config.epochs}")
    teacher = _teacher_for(data, config, len(feats), labels.shape[1])
    keras.utils.set_random_seed(config.seed)
    state_path = out_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("finished"):
        print(f"edge-train: {out_dir} already finished ({state['epoch']} epochs); best model {out_dir / BEST}", file=log)
        return out_dir / BEST
    average = WeightAverage(config.average) if config.average else None
    if (out_dir / CHECKPOINT).is_file() and state:
        model = keras.models.load_model(out_dir / CHECKPOINT)
        print(f"edge-train: resuming after epoch {state['epoch']}", file=log)
        if average is not None and not average.load(out_dir):
            print("edge-train: no saved weight average beside the checkpoint; averaging from here", file=log)
    else:
        model = build_model(model_config)
        if config.init:
            _load_initial_weights(model, config.init)
            print(f"edge-train: starting from the weights of {config.init}", file=log)
        if teacher is not None:
            model = with_embedding_head(model)
        state = {"epoch": 0, "best": None, "wait": 0, "history": {"loss": [], "val_loss": []}, "seconds_per_epoch": []}
    if (teacher is not None) != (len(model.outputs) == 2):
        raise DataError(f"{out_dir} holds a run trained {'without' if teacher is not None else 'with'} --embedding-weight; "
                        "resume it with the same settings, or use a new --out")
    stage1 = stage1_of(model)  # what is validated and kept: the model itself, or without its embedding head
    distill = DistillStep(model, config.embedding_weight) if teacher is not None else None
    train_b = Batches(feats, labels, config, shuffle=True, teacher=teacher)
    train_b.start_epoch(state["epoch"])
    val_b = Batches(vfeats, vlabels, config, shuffle=False)
    meta = {
        "model": model_config.to_dict(),
        "train": asdict(config),
        "data": data,
        "val": val,
        "frontend": frontend,
        "data_manifest_sha256": [manifest_hash(d) for d in data],
        "train_clips": int(len(feats)),
        "val_clips": int(len(vfeats)),
    }
    (out_dir / "train_config.json").write_text(json.dumps(meta, indent=1))
    for epoch in range(state["epoch"], config.epochs):
        started = time.monotonic()
        print(f"edge-train: epoch {epoch + 1}/{config.epochs}", file=log, flush=True)
        loss = run_epoch(model, train_b, training=True, log=log,
                         after_batch=(lambda m: average.process(m.get_weights())) if average else None, step=distill)
        train_b.on_epoch_end()
        with _averaged(average, model):
            val_loss = run_epoch(stage1, val_b, training=False)
        seconds = time.monotonic() - started
        state["history"]["loss"].append(loss)
        state["history"]["val_loss"].append(val_loss)
        state["seconds_per_epoch"].append(round(seconds, 1))
        if distill is not None:
            state["history"].setdefault("embedding_loss", []).append(float(np.mean(distill.aux_losses)))
            distill.aux_losses.clear()
        state["epoch"] = epoch + 1
        improved = state["best"] is None or val_loss < state["best"]
        if improved:
            state["best"] = val_loss
            state["wait"] = 0
            with _averaged(average, model):
                stage1.save(out_dir / BEST)
        else:
            state["wait"] += 1
        if config.saves_epochs:
            (out_dir / EPOCHS_DIR).mkdir(exist_ok=True)
            with _averaged(average, model):
                stage1.save(epoch_path(out_dir, epoch + 1))
        state["peak_rss_mb"] = round(peak_rss_mb(), 1)
        if average is not None:
            average.save(out_dir)
        model.save(out_dir / CHECKPOINT)
        state_path.write_text(json.dumps(state, indent=1))
        _log_epoch(out_dir, state, log)
        if state["wait"] >= config.patience and config.epoch_average_from is None:
            print(f"edge-train: early stop after epoch {epoch + 1} (no val improvement for {config.patience})", file=log)
            break
    if config.epoch_average_from is not None:
        state["kept"] = _keep_epoch_average(stage1, out_dir, config.epoch_average_from, state["epoch"], val_b, log)
    state["finished"] = True
    state_path.write_text(json.dumps(state, indent=1))
    return out_dir / BEST


def _teacher_for(data: list[str], config: TrainConfig, clips: int, clip_steps: int) -> TeacherTargets | None:
    """The embedding targets when ``config.embedding_weight`` asks for them (the weight averages refused)."""
    if config.embedding_weight < 0:
        raise DataError(f"--embedding-weight {config.embedding_weight:g}: must be 0 (off) or more")
    if config.embedding_weight == 0:
        return None
    if config.average is not None or config.epoch_average_from is not None:
        raise DataError("--embedding-weight cannot be combined with --average-weights or --epoch-average")
    return teacher_targets(data, clips, clip_steps)


def _keep_epoch_average(model, out_dir: Path, first: int, last: int, val_b: Batches, log) -> dict:
    """Save the mean weights of the kept epochs ``first..last`` as the run's model; its validation loss."""
    from convert.convert import load_keras

    model.set_weights(mean_weights([load_keras(epoch_path(out_dir, e)).get_weights() for e in range(first, last + 1)]))
    val_loss = run_epoch(model, val_b, training=False)
    model.save(out_dir / BEST)
    print(f"edge-train: kept the mean weights of epochs {first}-{last} (val_loss {val_loss:.4f})", file=log, flush=True)
    return {"epoch_average": [first, last], "val_loss": val_loss}


def epoch_path(out_dir: Path, epoch: int) -> Path:
    """Where ``keep_epochs`` saves the model of ``epoch`` (counted from 1)."""
    return Path(out_dir) / EPOCHS_DIR / f"epoch-{epoch:02d}.keras"


def _averaged(average: WeightAverage | None, model):
    """The model with its averaged weights for the block (itself when not averaging)."""
    return average.applied(model) if average is not None else nullcontext(model)


def _load_initial_weights(model, path: str) -> None:
    from convert.convert import load_keras

    source = load_keras(path)
    mine, theirs = [w.shape for w in model.get_weights()], [w.shape for w in source.get_weights()]
    if mine != theirs:
        raise DataError(f"--init {path}: its layers differ from the model being trained (check --filters/--units)")
    model.set_weights(source.get_weights())


def _log_epoch(out_dir: Path, state: dict, log) -> None:
    e = state["epoch"]
    teacher = state["history"].get("embedding_loss")
    print(
        f"edge-train: epoch {e} loss {state['history']['loss'][-1]:.4f} val_loss {state['history']['val_loss'][-1]:.4f}"
        + (f" embedding_loss {teacher[-1]:.4f}" if teacher else "")
        + f" ({state['seconds_per_epoch'][-1]:.0f} s, peak RSS {state['peak_rss_mb']:.0f} MB)",
        file=log,
        flush=True,
    )
    with open(out_dir / "log.csv", "w", encoding="utf-8") as fh:
        fh.write("epoch,loss,val_loss,seconds\n")
        for i, (a, b, s) in enumerate(zip(state["history"]["loss"], state["history"]["val_loss"], state["seconds_per_epoch"])):
            fh.write(f"{i + 1},{a:.6f},{b:.6f},{s}\n")
    try:
        from .plots import plot_history

        plot_history(out_dir / "loss.png", state["history"])
    except ImportError:
        pass


def _load_all(folders: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Features and labels of all folders, and the frontend (dict) they were all made with."""
    if not folders:
        raise DataError("no dataset folders given")
    parts = [load_dataset(f) for f in folders]
    shapes = {p[0].shape[1:] for p in parts}
    if len(shapes) != 1:
        raise DataError(f"datasets have different clip shapes: {sorted(shapes)}")
    frontends = [p[2].get("frontend", {}) for p in parts]
    if any(f != frontends[0] for f in frontends):
        floors = ", ".join(f"{folder}: {_floor_of(f)}" for folder, f in zip(folders, frontends))
        raise DataError(f"datasets made with other frontends ({floors}): build them all with the same --noise-floor-dbfs")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), frontends[0]


def _floor_of(frontend: dict) -> str:
    level = frontend.get(NOISE_FLOOR_KEY)
    return "no noise floor" if level is None else f"noise floor {level:g} dBFS"


def _decay(text: str) -> float:
    try:
        value = float(text)
        AverageConfig(value)
    except (ValueError, DataError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number strictly between 0 and 1") from exc
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-train", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="training dataset folder(s) from edge-synth build")
    p.add_argument("--val", nargs="+", required=True, help="validation dataset folder(s)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, model.keras, log and plot")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="most epochs to train")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="sequences per batch")
    p.add_argument("--patience", type=int, default=TrainConfig.patience, help="stop after this many epochs without a better validation loss")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and the initial weights")
    p.add_argument("--filters", type=int, default=ModelConfig.filters, help="Conv1D filters")
    p.add_argument("--units", type=int, default=ModelConfig.gru_units, help="units of each GRU layer")
    p.add_argument("--dropout", type=float, default=ModelConfig.dropout, help="dropout rate")
    p.add_argument("--lr", type=float, default=ModelConfig.learning_rate, help="learning rate (Adam)")
    p.add_argument("--init", metavar="MODEL.keras", help="start from this trained model's weights (fine-tuning)")
    p.add_argument("--spec-augment", action="store_true",
                   help="mask random time and channel bands of the training batches (SpecAugment; train/specaugment.py)")
    p.add_argument("--freq-warp", action="store_true",
                   help="warp each training clip's channels by a factor of 0.9-1.1, as if its talker's vocal tract "
                        "were shorter or longer (VTLP; train/freqwarp.py)")
    p.add_argument("--average-weights", action="store_true",
                   help="validate, keep and convert a moving average of the weights over batches (train/averaging.py)")
    p.add_argument("--average-decay", type=_decay, default=AverageConfig.decay,
                   help="with --average-weights: weight of the old average at each batch")
    p.add_argument("--epoch-average", type=int, metavar="N",
                   help="keep the mean of the weights of epochs N to the last (stochastic weight averaging) instead of "
                        "the epoch with the lowest validation loss; trains every epoch (no early stop)")
    p.add_argument("--embedding-weight", type=float, default=TrainConfig.embedding_weight, metavar="W",
                   help="> 0: stage 1's first GRU also learns to predict openWakeWord's speech embedding of the training audio, "
                        "W x its squared error added to the loss (training only; make the embeddings first with "
                        "edge-synth embed --data DIR...); 0.5 measured")
    p.add_argument("--keep-epochs", action="store_true",
                   help="also save every epoch's model as OUT/epochs/epoch-NN.keras (to choose among them later)")
    args = p.parse_args(argv)
    quiet_tensorflow()
    mc = ModelConfig(filters=args.filters, gru_units=args.units, dropout=args.dropout, learning_rate=args.lr)
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience, seed=args.seed,
                     init=args.init, spec_augment=SpecAugmentConfig() if args.spec_augment else None,
                     freq_warp=FreqWarpConfig() if args.freq_warp else None,
                     average=AverageConfig(args.average_decay) if args.average_weights else None,
                     keep_epochs=args.keep_epochs, epoch_average_from=args.epoch_average,
                     embedding_weight=args.embedding_weight)
    code, best = run_guarded("edge-train", train, args.data, args.val, args.out, mc, tc, resumable=True)
    if code is not None:
        return code
    print(f"best model: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
