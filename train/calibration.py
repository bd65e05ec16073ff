"""Thresholds for a false-accept rate, set on held-out real audio (stage 1 and the verifier).

Counting alone (the lowest threshold at which the detector fires at most rate x hours times)
needs room for several firings. On edge-word's 1.5 h of held-out audio, 0.5 FA/h allows
none, so the threshold lands just above the one loudest false accept there: its real rate
is whatever that single event says (measured on wildfire: 0.15 FA/h on the suite's 6.5 h
of unseen audio, at 59 % FRR, where 0.5 FA/h would have cost 18 %).

So when fewer than ``COUNTED_EVENTS`` firings are allowed, the threshold comes from the
tail of the held-out events instead: the peaks-over-threshold estimate with exponential
excesses, on the logit of the ``TAIL_EVENTS`` loudest event peaks. Above the level ``u`` of
the k-th loudest event the rate of events falls as ``k/hours * exp(-(z - u) / beta)``
(``z`` the logit, ``beta`` the mean excess of the louder events over ``u``); the threshold
is where that rate equals the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .evaluate import fire_positions

CALIBRATE_THRESHOLD = 0.3
"""The lowest threshold a calibration returns (and the level at which events are collected)."""
COUNTED_EVENTS = 5
"""Allowed firings (rate x hours) from which counting alone sets the threshold."""
TAIL_EVENTS = 10
"""Loudest held-out events the tail is fitted to."""
MIN_TAIL_EVENTS = 3
"""Fewer events than this: no tail to fit; counting decides."""
LOGIT_EPS = 1e-12
"""Scores are clipped to [eps, 1 - eps] before the logit (a float sigmoid can reach 1.0)."""


@dataclass(frozen=True)
class Calibration:
    threshold: float
    method: str
    """``count`` (rate x hours firings allowed, counted) or ``tail`` (the fitted tail)."""
    events: int
    """Firing events at ``CALIBRATE_THRESHOLD`` on the held-out audio."""


def logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def event_peaks(step_samples: np.ndarray, probs: np.ndarray, floor: float, refractory_samples: int) -> np.ndarray:
    """The peak score of each firing at ``floor`` (over its refractory window), loudest first."""
    fires = fire_positions(step_samples, probs, floor, refractory_samples)
    starts = np.searchsorted(step_samples, fires)
    ends = np.searchsorted(step_samples, fires + refractory_samples)
    return np.sort(np.array([probs[s:e].max() for s, e in zip(starts, ends)], np.float64))[::-1]


def counted_threshold(step_samples: np.ndarray, probs: np.ndarray, allowed: int, refractory_samples: int,
                      cap: float) -> float:
    """The lowest threshold at which the detector fires at most ``allowed`` times.

    Firings only drop as the threshold rises, so a binary search over the distinct step
    scores above ``CALIBRATE_THRESHOLD`` finds it; none needed: ``CALIBRATE_THRESHOLD``.
    """
    candidates = np.unique(probs[probs >= CALIBRATE_THRESHOLD])
    if fire_positions(step_samples, probs, CALIBRATE_THRESHOLD, refractory_samples).size <= allowed:
        return CALIBRATE_THRESHOLD
    low, high = 0, candidates.size  # the answer: just above candidates[i-1] for the smallest i that fits
    while low < high:
        mid = (low + high) // 2
        above = np.nextafter(candidates[mid], 1.0)
        if fire_positions(step_samples, probs, above, refractory_samples).size <= allowed:
            high = mid
        else:
            low = mid + 1
    return float(min(np.nextafter(candidates[min(low, candidates.size - 1)], 1.0), cap))


def tail_threshold(peaks: np.ndarray, hours: float, target_fa_per_hour: float) -> float:
    """The score at which the exponential tail fitted to the loudest ``peaks`` (sorted
    loudest first, at least ``MIN_TAIL_EVENTS``) fires ``target_fa_per_hour``."""
    z = logit(peaks[:TAIL_EVENTS])
    k = z.size
    beta = float(np.mean(z[:-1] - z[-1]))
    if beta <= 0.0:  # all the loudest events at one level (an int8 output): stay above it
        return float(np.nextafter(peaks[0], 1.0))
    return sigmoid(float(z[-1]) + beta * math.log(k / (target_fa_per_hour * hours)))


def calibrate_threshold(step_samples: np.ndarray, probs: np.ndarray, hours: float, target_fa_per_hour: float,
                        refractory_samples: int, cap: float) -> Calibration:
    """The threshold for ``target_fa_per_hour`` on held-out audio (``hours`` of it): counted
    where the rate allows ``COUNTED_EVENTS`` firings or more, else from the fitted tail."""
    allowed = int(target_fa_per_hour * hours)
    peaks = event_peaks(step_samples, probs, CALIBRATE_THRESHOLD, refractory_samples)
    if allowed >= COUNTED_EVENTS or peaks.size <= allowed or peaks.size < MIN_TAIL_EVENTS:
        return Calibration(counted_threshold(step_samples, probs, allowed, refractory_samples, cap), "count", int(peaks.size))
    threshold = min(max(tail_threshold(peaks, hours, target_fa_per_hour), CALIBRATE_THRESHOLD), cap)
    return Calibration(threshold, "tail", int(peaks.size))


def round_up(threshold: float, digits: int, cap: float) -> float:
    """``threshold`` to ``digits`` decimals, rounded up (to nearest could land below the
    score it had to stay above, and fire there), at most ``cap``."""
    stored = round(threshold, digits)
    if stored < threshold:  # a float just above a round value (nextafter) must not round down onto it
        stored = round(stored + 10.0 ** -digits, digits)
    return min(stored, cap)
