"""Weight averaging for training: an exponential moving average of the weights over batches.

The model that is validated, kept as the best and converted is the average, not the last batch's
weights; training itself goes on from the raw weights. An average over the last few hundred
batches sits in a flatter, wider part of the loss surface than any single point of the path, which
is the usual reason it generalises better (Polyak averaging; SWA). Here it is also meant to make the
model depend less on the seed, which moves a single run's real-voice FRR by up to 15 points.

State: the averaged weights (one array per model weight, batch-norm statistics included) and the
number of batches averaged. ``reset()`` empties both; the next ``process`` then starts the
average at those weights. The state is saved beside the checkpoint, so a resumed run averages
exactly as an uninterrupted one.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError

AVERAGE_FILE = "average.npz"
"""The averaged weights and the batch count, beside ``checkpoint.keras``."""
COUNT_KEY = "batches"


@dataclass(frozen=True)
class AverageConfig:
    decay: float = 0.995
    """Weight of the old average at each batch: 0.995 remembers about 200 batches (3-4 epochs of 57)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise DataError(f"weight-average decay {self.decay} must lie strictly between 0 and 1")


class WeightAverage:
    """``process(weights)`` after each training batch; ``applied(model)`` swaps the average in for a while."""

    def __init__(self, config: AverageConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.weights: list[np.ndarray] | None = None
        self.batches = 0

    def process(self, weights: list[np.ndarray]) -> None:
        d = self.config.decay
        if self.weights is None:
            self.weights = [np.array(w, dtype=np.float32, copy=True) for w in weights]
        else:
            for avg, w in zip(self.weights, weights):
                avg *= d
                avg += (1.0 - d) * w
        self.batches += 1

    @contextmanager
    def applied(self, model):
        """Inside the block the model holds the averaged weights; afterwards its own again."""
        if self.weights is None:
            yield model
            return
        own = model.get_weights()
        model.set_weights(self.weights)
        try:
            yield model
        finally:
            model.set_weights(own)

    def save(self, folder: Path) -> None:
        if self.weights is None:
            return
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        tmp = folder / (AVERAGE_FILE + ".tmp.npz")
        np.savez(tmp, **arrays, **{COUNT_KEY: np.int64(self.batches)})
        tmp.replace(folder / AVERAGE_FILE)

    def load(self, folder: Path) -> bool:
        """Restore a saved average; False (and empty) when there is none."""
        self.reset()
        path = folder / AVERAGE_FILE
        if not path.is_file():
            return False
        with np.load(path) as z:
            n = len(z.files) - 1
            self.weights = [z[f"w{i}"].astype(np.float32) for i in range(n)]
            self.batches = int(z[COUNT_KEY])
        return True


def mean_weights(models: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several models' weights (batch-norm statistics included), in float64, as float32."""
    if not models:
        raise DataError("no models to average")
    shapes = [[w.shape for w in m] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise DataError("the models to average have different layers")
    return [np.mean([np.asarray(m[i], np.float64) for m in models], axis=0).astype(np.float32) for i in range(len(models[0]))]
