"""Vocal tract length perturbation: move a voice's formants, keep its pitch and timing.

A TTS mix has far fewer distinct speakers than real callers (``edge-synth speakers``). The
largest difference between adult speakers that a voice's pitch does not carry is the length
of the vocal tract, which scales every formant by about the same factor (women's formants sit
about 15-20 % above men's). :func:`warp_formants` does it as a source-filter edit, frame by
frame: linear prediction (:data:`ORDER` poles) splits a frame into its vocal tract filter
and the excitation (the residual, which carries the pitch); the filter's complex poles are
turned to ``factor`` times their angle (their radii, hence stability and bandwidths in
hertz, kept), and the residual is played back through the moved filter. Frames overlap by
half under a periodic Hann window, which adds up to one. ``factor`` > 1 sounds like a shorter
vocal tract (higher formants), < 1 a longer one. Pitch and duration stay as they are;
``change_speed`` in :mod:`train.augment` moves pitch, formants and tempo together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME = 512
"""Analysis frame (32 ms at 16 kHz)."""
HOP = FRAME // 2
"""Half a frame: the periodic Hann window's overlap-add is exactly one."""
ORDER = 18
"""Linear prediction order: two poles per kHz of the 8 kHz band, plus two for the glottis and lips."""
CONTEXT = 256
"""Samples before each frame that the filters run over first, so they start settled."""
MAX_ANGLE = 0.97 * np.pi
"""Poles moved up stop short of the Nyquist frequency."""
REGULARISATION = 1e-6
"""White-noise correction of the autocorrelation (relative), so near-silent frames still solve."""
EPS = 1e-12


@dataclass(frozen=True)
class VocalTractConfig:
    """The warp factors one draw comes from (uniform); (1, 1) turns the perturbation off."""

    factor_range: tuple[float, float] = (0.88, 1.14)
    probability: float = 0.8

    @property
    def enabled(self) -> bool:
        return self.probability > 0 and self.factor_range != (1.0, 1.0)

    def draw(self, rng: np.random.Generator) -> float:
        """One factor: 1.0 (unchanged) with probability 1 - ``probability``."""
        if not self.enabled or rng.random() >= self.probability:
            return 1.0
        return float(rng.uniform(*self.factor_range))


OFF = VocalTractConfig(factor_range=(1.0, 1.0), probability=0.0)


def _predictor(frame: np.ndarray) -> np.ndarray | None:
    """The prediction error filter A(z) = 1 + a1 z^-1 + ... of a windowed frame (autocorrelation
    method); ``None`` for a silent frame."""
    from scipy.linalg import solve_toeplitz

    r = np.correlate(frame, frame, "full")[FRAME - 1: FRAME + ORDER]
    if r[0] <= EPS:
        return None
    r[0] *= 1.0 + REGULARISATION
    return np.concatenate([[1.0], solve_toeplitz(r[:ORDER], -r[1:])])


def _moved(a: np.ndarray, factor: float) -> np.ndarray:
    """A(z) with every complex root turned to ``factor`` times its angle (radius kept)."""
    roots = np.roots(a)
    angle = np.angle(roots)
    turned = np.where(np.abs(np.imag(roots)) > EPS, np.sign(angle) * np.minimum(np.abs(angle) * factor, MAX_ANGLE), angle)
    return np.real(np.poly(np.abs(roots) * np.exp(1j * turned)))


def warp_formants(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` (float or int, 16 kHz) with its formants scaled by ``factor``; same length, same RMS, float64."""
    from scipy.signal import lfilter

    x = np.asarray(x, dtype=np.float64)
    if abs(factor - 1.0) < 1e-3 or x.size < FRAME:
        return x.copy()
    window = np.hanning(FRAME + 1)[:FRAME]
    padded = np.concatenate([np.zeros(CONTEXT + FRAME), x, np.zeros(FRAME)])
    out = np.zeros_like(padded)
    for start in range(CONTEXT, padded.size - FRAME + 1, HOP):
        windowed = padded[start: start + FRAME] * window
        a = _predictor(windowed)
        if a is None:
            continue
        residual = lfilter(a, [1.0], padded[start - CONTEXT: start + FRAME])
        y = lfilter([1.0], _moved(a, factor), residual)[CONTEXT:] * window
        gain = np.sqrt(np.mean(np.square(windowed)) / max(np.mean(np.square(y)), EPS))
        out[start: start + FRAME] += y * gain
    y = out[CONTEXT + FRAME: CONTEXT + FRAME + x.size]
    before, after = np.sqrt(np.mean(x * x)), np.sqrt(np.mean(y * y))
    return y * (before / after) if after > EPS else y
