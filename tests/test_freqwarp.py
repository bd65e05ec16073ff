"""Frequency warping (VTLP) on training batches: factor 1 is the identity, a band moves by the factor, per clip,
reproducible per (seed, epoch, batch), never on validation, and the real frontend's tones sit where it assumes."""

import numpy as np
import pytest

from edge.features import compute_features
from edge.geometry import DEFAULT_GEOMETRY
from train.freqwarp import FreqWarp, FreqWarpConfig, channel_centres, inverse_warp, warp_matrix
from train.train import Batches, TrainConfig

FRAMES = 1000
CHANNELS = 40
BOUNDARY_HZ = FreqWarpConfig().boundary_hz


def centroid_hz(row: np.ndarray) -> float:
    return float((row * channel_centres(CHANNELS)).sum() / row.sum())


def test_factor_one_is_exactly_the_identity():
    assert np.array_equal(warp_matrix(CHANNELS, 1.0, BOUNDARY_HZ), np.eye(CHANNELS, dtype=np.float32))


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.05, 1.1])
def test_a_band_below_the_boundary_moves_by_the_factor(factor):
    row = np.zeros((1, CHANNELS), dtype=np.float32)
    row[0, 12] = 10.0  # about 1 kHz
    moved = centroid_hz((row @ warp_matrix(CHANNELS, factor, BOUNDARY_HZ))[0])
    assert moved == pytest.approx(factor * channel_centres(CHANNELS)[12], rel=0.01)


def test_the_warp_keeps_the_nyquist_frequency_and_is_continuous_at_its_bend():
    for factor in (0.9, 1.1):
        assert inverse_warp(np.array([8000.0]), factor, BOUNDARY_HZ)[0] == pytest.approx(8000.0)
        knee = BOUNDARY_HZ * min(factor, 1.0)
        below, above = inverse_warp(np.array([knee - 1e-6, knee + 1e-6]), factor, BOUNDARY_HZ)
        assert below == pytest.approx(above, abs=1e-3)
        assert below == pytest.approx(knee / factor)


def test_the_channel_centres_match_the_real_frontend():
    t = np.arange(2 * 16000) / 16000
    centres = channel_centres(CHANNELS)
    for hz in (500, 1000, 2000, 3000, 4000, 6000):
        feats = compute_features((8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16))
        assert int(np.argmax(feats[50:].mean(axis=0))) == int(np.argmin(np.abs(centres - hz)))


def test_each_clip_of_a_sequence_gets_its_own_factor_and_the_input_is_untouched():
    x = np.zeros((2, 3 * FRAMES, CHANNELS), dtype=np.float32)
    x[:, :, 20] = 5.0
    warp = FreqWarp(FreqWarpConfig(), seed=4)
    out = warp.process(x, clips_per_sequence=3, epoch=0, batch=0)
    assert (x[:, :, 20] == 5.0).all() and (np.delete(x, 20, axis=2) == 0).all()
    factors = warp.factors(6, epoch=0, batch=0)
    assert len(set(np.round(factors, 6))) == 6 and ((factors >= 0.9) & (factors <= 1.1)).all()
    for j, factor in enumerate(factors):
        i, c = divmod(j, 3)
        clip = out[i, c * FRAMES : (c + 1) * FRAMES]
        assert np.allclose(clip, clip[0])  # one factor over the whole clip
        assert centroid_hz(clip[0]) == pytest.approx(factor * channel_centres(CHANNELS)[20], rel=0.01)


def test_same_seed_epoch_and_batch_warp_the_same():
    x = np.random.default_rng(0).random((4, FRAMES, CHANNELS), dtype=np.float32)
    a = FreqWarp(FreqWarpConfig(), seed=5).process(x, 1, epoch=2, batch=7)
    assert np.array_equal(a, FreqWarp(FreqWarpConfig(), seed=5).process(x, 1, epoch=2, batch=7))
    assert not np.array_equal(a, FreqWarp(FreqWarpConfig(), seed=5).process(x, 1, epoch=3, batch=7))


def test_batches_warp_training_only():
    rng = np.random.default_rng(1)
    feats = rng.integers(0, 600, size=(8, FRAMES, CHANNELS)).astype(np.uint16)
    labels = np.zeros((8, DEFAULT_GEOMETRY.steps_for_frames(FRAMES)), dtype=np.float32)
    plain = TrainConfig(batch_size=4, concat=(1,))
    warped = TrainConfig(batch_size=4, concat=(1,), freq_warp=FreqWarpConfig())
    plain_x = Batches(feats, labels, plain, shuffle=True).batch(0)[0]
    assert not np.allclose(Batches(feats, labels, warped, shuffle=True).batch(0)[0], plain_x)
    assert np.array_equal(Batches(feats, labels, warped, shuffle=False).batch(0)[0],
                          Batches(feats, labels, plain, shuffle=False).batch(0)[0])
