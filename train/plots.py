"""Plots people would rather look at than read (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    from edge.plot import headless_pyplot

    return headless_pyplot()


def plot_examples(path: Path, examples, geometry) -> None:
    """Spectrogram with the label trace underneath, one column per example."""
    from edge.features import compute_features

    plt = _pyplot()
    fig, axes = plt.subplots(2, len(examples), figsize=(4 * len(examples), 5), squeeze=False, sharex="col")
    for col, ex in enumerate(examples):
        feats = compute_features(ex.audio, geometry.frontend)
        seconds = ex.audio.size / geometry.frontend.sample_rate
        axes[0, col].imshow(feats.T, aspect="auto", origin="lower", extent=(0, seconds, 0, feats.shape[1]))
        axes[0, col].set_title(f"example {col}")
        times = [geometry.step_end_sample(i) / geometry.frontend.sample_rate for i in range(ex.labels.size)]
        axes[1, col].step(times, ex.labels, where="post")
        axes[1, col].set_ylim(-0.1, 1.1)
        axes[1, col].set_xlabel("seconds")
    axes[0, 0].set_ylabel("mel channel")
    axes[1, 0].set_ylabel("label")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_history(path: Path, history: dict[str, list[float]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=key)
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
