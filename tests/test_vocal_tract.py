"""Vocal tract length perturbation: formants move by the factor; pitch, length and level do not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter, welch

from edge.audio import SAMPLE_RATE
from train.vocal_tract import OFF, VocalTractConfig, warp_formants

F0 = 160.0
"""A pitch whose period is a whole number of samples (100), so harmonics fall on exact bins."""
FORMANTS = ((700.0, 80.0), (1800.0, 120.0))
BANDS = ((300.0, 1250.0), (1300.0, 2800.0))
"""Where each formant's peak is looked for, before and after the warp."""
WINDOW = 12000


def vowel(excitation: np.ndarray) -> np.ndarray:
    """``excitation`` through two formant resonators."""
    x = excitation
    for freq, bandwidth in FORMANTS:
        r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), r * r], x)
    return x


def voiced() -> np.ndarray:
    """One second of a glottal pulse train at F0 through the formants."""
    pulses = np.zeros(SAMPLE_RATE)
    pulses[:: int(SAMPLE_RATE / F0)] = 1.0
    return vowel(pulses)


def whispered() -> np.ndarray:
    """Two seconds of white noise through the formants: a smooth spectrum whose peaks are the formants."""
    return vowel(np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE))


def peak(y: np.ndarray, low: float, high: float) -> float:
    freqs, power = welch(y, fs=SAMPLE_RATE, nperseg=2048)
    band = (freqs > low) & (freqs < high)
    return float(freqs[band][np.argmax(power[band])])


def harmonics(y: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """The magnitude spectrum at k * F0 + offset (k = 1..15), mid-clip."""
    start = (y.size - WINDOW) // 2
    spec = np.abs(np.fft.rfft(y[start: start + WINDOW] * np.hanning(WINDOW)))
    return spec[np.round((np.arange(1, 16) * F0 + offset) * WINDOW / SAMPLE_RATE).astype(int)]


@pytest.mark.parametrize("factor", [0.88, 0.9, 1.1, 1.14])
def test_formants_move_by_about_the_factor(factor):
    x = whispered()
    y = warp_formants(x, factor)
    for (freq, _), (low, high) in zip(FORMANTS, BANDS):
        assert peak(x, low, high) == pytest.approx(freq, rel=0.02)
        moved = peak(y, low * factor, high * factor) / peak(x, low, high) - 1.0
        # the peak moves the asked way, by most of the asked amount (the lowest formant a little less)
        assert 0.5 < moved / (factor - 1.0) < 1.25


@pytest.mark.parametrize("factor", [0.88, 1.14])
def test_pitch_length_and_level_stay(factor):
    x = voiced()
    y = warp_formants(x, factor)
    assert y.size == x.size
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-9)
    # the energy stays on the harmonics of the same pitch, far above the gaps between them
    assert np.mean(harmonics(y)) > 100 * np.mean(harmonics(y, offset=F0 / 2))


def test_factor_one_is_a_copy():
    x = voiced()
    y = warp_formants(x, 1.0)
    assert y is not x and np.array_equal(y, x)
    short = np.arange(100, dtype=np.int16)
    assert np.array_equal(warp_formants(short, 1.2), short.astype(np.float64))
    assert np.array_equal(warp_formants(np.zeros(4000), 1.2), np.zeros(4000))


def test_draws():
    assert {OFF.draw(np.random.default_rng(s)) for s in range(50)} == {1.0}
    always = VocalTractConfig(factor_range=(0.9, 1.1), probability=1.0)
    draws = [always.draw(np.random.default_rng(s)) for s in range(200)]
    assert min(draws) >= 0.9 and max(draws) <= 1.1 and len(set(draws)) == 200
    half = VocalTractConfig(factor_range=(0.9, 1.1), probability=0.5)
    unchanged = sum(half.draw(np.random.default_rng(s)) == 1.0 for s in range(400))
    assert 150 < unchanged < 250
