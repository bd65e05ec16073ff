"""A level control in front of stage 1: the word reaches the frontend at one level, however loud the microphone.

Real recordings of a word come at any level: the Precise microphone takes of "amelia" have speech levels from
-41 to -4 dBFS (5th to 95th percentile), "athena"'s from -68 to -12, while stage 1 was trained on mixes of a
20 dB range. The TFLite Micro frontend's PCAN does not undo this: stage 1 missed most quiet and clipped takes.
This stage tracks the loudest recent 10 ms block (a peak hold: instant attack, a slow release of
``release_db_per_s``) and applies the gain that brings that peak to ``target_dbfs``, within
``+-max_gain_db``. It runs before the noise floor and the frontend, on stage 1's audio only: the verifier's
speech embedding is not level-sensitive (levelling its input changed nothing, measured on amelia).

It is causal with no latency: the gain of a block comes from the blocks before it, so a word's first 10 ms
go through at the gain of what came before (after a silence, the largest), and the output has exactly as many samples as the input.
Everything is integer arithmetic on fixed-point units (``LEVEL_UNITS_PER_DB``, ``GAIN_FRACTION_BITS``), so
the output depends only on the samples since ``reset()``: streaming equals batch, bit for bit.

It is off unless a model's metadata asks for it (``frontend.level_control``; ``edge-eval --suite real
--level-control`` measures any model behind it). Measured on the real-voice suite (models/README.md, "A level
control in front of stage 1"): microphone words gain in quiet rooms (athena's cascade 13.6 -> 9.3 % at 0.5 FA/h,
amelia's stage 1 alone 70.4 -> 54.3 % at 1 FA/h) but amelia loses 7-8 points in noise and rooms, and telephone
audio (wildfire) 5: a gain that moves with the speech also moves the noise under it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .audio import INT16_FULL_SCALE, INT16_MAX, INT16_MIN, SAMPLE_RATE

BLOCK_SAMPLES = 160
"""The level is measured per 10 ms block (the frontend's step)."""
LEVEL_UNITS_PER_DB = 100
"""Levels and gains are integers in hundredths of a dB."""
GAIN_FRACTION_BITS = 12
"""The linear gain is an integer with this many fraction bits (Q12): ``y = (x * gain + half) >> 12``."""
DEFAULT_TARGET_DBFS = -14.0
"""The loudest 10 ms block of a word is brought here: about -20 dBFS of speech level (the mean power of the
louder half of 25 ms frames) for a short word; measured on the amelia takes, a block peak is 3-7 dB above that."""
DEFAULT_RELEASE_DB_PER_S = 6.0
"""After the loudest block, the held level falls this fast: across one word the gain rises by under 4 dB."""
DEFAULT_MAX_GAIN_DB = 30.0
TARGET_RANGE_DBFS = (-40.0, -3.0)
RELEASE_RANGE_DB_PER_S = (1.0, 100.0)
MAX_GAIN_RANGE_DB = (0.0, 40.0)
LEVEL_KEY = "level_control"
"""The metadata key (in the model JSON's ``frontend`` block) of this stage's settings; absent = none."""


@dataclass(frozen=True)
class LevelConfig:
    """The target of a block peak (dBFS), how fast the held peak falls (dB/s), the largest gain or cut (dB)."""

    target_dbfs: float = DEFAULT_TARGET_DBFS
    release_db_per_s: float = DEFAULT_RELEASE_DB_PER_S
    max_gain_db: float = DEFAULT_MAX_GAIN_DB

    def __post_init__(self) -> None:
        for name, (low, high) in (("target_dbfs", TARGET_RANGE_DBFS), ("release_db_per_s", RELEASE_RANGE_DB_PER_S),
                                  ("max_gain_db", MAX_GAIN_RANGE_DB)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")

    def to_dict(self) -> dict:
        return {"target_dbfs": self.target_dbfs, "release_db_per_s": self.release_db_per_s, "max_gain_db": self.max_gain_db}

    @classmethod
    def from_dict(cls, data: dict) -> "LevelConfig":
        """The settings a model's metadata gives; ValueError (one line) for unknown keys or values out of range."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a table of settings, got {data!r}")
        unknown = sorted(set(data) - set(cls().to_dict()))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        return cls(**data)

    @property
    def target_units(self) -> int:
        return round(self.target_dbfs * LEVEL_UNITS_PER_DB)

    @property
    def release_units_per_block(self) -> int:
        """The release in whole hundredths of a dB per 10 ms block: ``release_db_per_s`` in steps of 1 dB/s."""
        return round(self.release_db_per_s * LEVEL_UNITS_PER_DB * BLOCK_SAMPLES / SAMPLE_RATE)

    @property
    def max_gain_units(self) -> int:
        return round(self.max_gain_db * LEVEL_UNITS_PER_DB)


BLOCK_FULL_SCALE_ENERGY = BLOCK_SAMPLES * INT16_FULL_SCALE**2
"""The summed squares of a 10 ms block of full-scale square wave: 0 dBFS."""
SILENCE_DBFS = 10.0 * math.log10(1.0 / BLOCK_FULL_SCALE_ENERGY)
"""The level of a block of digital silence, counted as one unit of energy (-112.3 dBFS)."""
SILENCE_UNITS = math.floor(SILENCE_DBFS * LEVEL_UNITS_PER_DB)


def block_level_units(energy: int) -> int:
    """The level of a block in hundredths of a dB from its summed squared samples (digital silence counts as one
    unit of energy: ``SILENCE_DBFS``). Plain Python floats, one path for every chunking: the same integers."""
    return math.floor(10.0 * LEVEL_UNITS_PER_DB * math.log10(max(energy, 1) / BLOCK_FULL_SCALE_ENERGY))


def gain_q(gain_units: np.ndarray) -> np.ndarray:
    """Gains in hundredths of a dB as Q12 integer multipliers (int64)."""
    units = np.asarray(gain_units, dtype=np.float64)
    return np.rint((1 << GAIN_FRACTION_BITS) * np.power(10.0, units / (20.0 * LEVEL_UNITS_PER_DB))).astype(np.int64)


class LevelControl:
    """int16 samples in, the same count of levelled int16 samples out.

    State: the held level (hundredths of a dB), the summed squares and sample count of the block under way,
    and the gain that block goes through. ``reset()`` returns to the state of a new object, that of a long
    silence: the held level at ``target_dbfs - max_gain_db`` (the gain at its largest), no block under way. So a
    short recording of a quiet word is lifted from its second block on, and a loud one saturates for 10 ms.
    """

    def __init__(self, config: LevelConfig | None = None) -> None:
        self.config = config or LevelConfig()
        self._target = self.config.target_units
        self._release = self.config.release_units_per_block
        self._max_gain = self.config.max_gain_units
        self._table = gain_q(np.arange(-self._max_gain, self._max_gain + 1)).tolist()
        self.reset()

    def reset(self) -> None:
        self.level_units = self._target - self._max_gain
        self._energy = 0
        self._fill = 0
        self._gain = self._gain_after(self.level_units)

    def _gain_after(self, level_units: int) -> int:
        """The Q12 gain that follows a held level (a table lookup: ``gain_q`` of every gain in range, made once)."""
        return self._table[min(max(self._target - level_units, -self._max_gain), self._max_gain) + self._max_gain]

    @property
    def gain_db(self) -> float:
        """The gain the next sample goes through (dB)."""
        return 20.0 * math.log10(self._gain / (1 << GAIN_FRACTION_BITS))

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.int16).reshape(-1).astype(np.int64)
        if x.size == 0:
            return np.zeros(0, dtype=np.int16)
        if self._fill == 0 and x.size % BLOCK_SAMPLES == 0:  # whole blocks (a microphone's chunks): no bookkeeping
            blocks = x.reshape(-1, BLOCK_SAMPLES)
            gains = self._advance(np.einsum("ij,ij->i", blocks, blocks))[:-1]
            return self._apply(blocks, gains[:, None]).reshape(-1)
        block = (self._fill + np.arange(x.size)) // BLOCK_SAMPLES  # 0: the block under way
        energy = np.bincount(block, weights=(x * x).astype(np.float64)).astype(np.int64)  # exact: under 2**53
        energy[0] += self._energy
        done = (self._fill + x.size) // BLOCK_SAMPLES
        gains = self._advance(energy[:done])
        self._energy = int(energy[done]) if done < energy.size else 0
        self._fill = (self._fill + x.size) % BLOCK_SAMPLES
        return self._apply(x, gains[block])

    def _advance(self, energy: np.ndarray) -> np.ndarray:
        """Finish blocks of these summed squares: the held level (``max(power, previous - release)``) moves on;
        returns the gain of the block under way and of the block after each finished one. A plain loop: a
        microphone chunk holds 2-8 blocks, where a dozen numpy calls would cost more than the arithmetic."""
        gains, level, r = [self._gain], self.level_units, self._release
        for e in energy.tolist():
            level = max(block_level_units(e), level - r, SILENCE_UNITS)
            gains.append(self._gain_after(level))
        self.level_units, self._gain = level, gains[-1]
        return np.array(gains, dtype=np.int64)

    @staticmethod
    def _apply(x: np.ndarray, gains: np.ndarray) -> np.ndarray:
        y = x * gains
        y += 1 << (GAIN_FRACTION_BITS - 1)
        y >>= GAIN_FRACTION_BITS
        np.clip(y, INT16_MIN, INT16_MAX, out=y)
        return y.astype(np.int16)
