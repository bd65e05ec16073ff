"""--plot: spectrogram over the probability trace with threshold and detections (needs matplotlib)."""

from __future__ import annotations

import numpy as np

from .errors import EdgeError
from .features import DEFAULT_FRONTEND, FrontendConfig, compute_features


def headless_pyplot():
    """matplotlib's pyplot drawing to files only; its font lookup's fallback warnings ("findfont: Font family
    ... not found", some twenty lines while a font cache is being built) stay out of the user's terminal."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    return plt


def plot_trace(path, audio: np.ndarray, trace, detections, threshold: float, title: str,
               frontend: FrontendConfig = DEFAULT_FRONTEND) -> None:
    """The spectrogram as the model sees it (``frontend``: the model's, noise floor included)."""
    try:
        plt = headless_pyplot()
    except ImportError:
        raise EdgeError("--plot needs matplotlib: pip install 'trigger-edge[plot]'") from None
    from .audio import SAMPLE_RATE

    seconds = audio.size / SAMPLE_RATE
    feats = compute_features(audio, frontend)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    top.imshow(feats.T, aspect="auto", origin="lower", extent=(0, seconds, 0, feats.shape[1]))
    top.set_ylabel("mel channel")
    top.set_title(f"{title}: {len(detections)} detection(s)")
    times = np.asarray(trace.samples) / SAMPLE_RATE
    bottom.plot(times, trace.probabilities, label="probability")
    bottom.axhline(threshold, color="r", linestyle="--", label=f"threshold {threshold:g}")
    for det in detections:
        bottom.axvline(det.seconds, color="g", alpha=0.7)
        top.axvline(det.seconds, color="w", alpha=0.7)
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
