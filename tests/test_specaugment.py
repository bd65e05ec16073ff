"""SpecAugment on training batches: exact masks, reproducible per (seed, epoch, batch), never on validation."""

import numpy as np

from edge.geometry import DEFAULT_GEOMETRY
from train.specaugment import MASK_VALUE, SpecAugment, SpecAugmentConfig
from train.train import Batches, TrainConfig

FRAMES = 1000
CHANNELS = 40


def ones(n: int, clips: int = 1) -> np.ndarray:
    return np.ones((n, clips * FRAMES, CHANNELS), dtype=np.float32)


def masked_bands(seq: np.ndarray) -> tuple[int, int]:
    """(frames that are zero in every channel, channels that are zero in every frame)."""
    return int((seq == MASK_VALUE).all(axis=1).sum()), int((seq == MASK_VALUE).all(axis=0).sum())


def test_masks_are_bands_within_the_limits_and_the_input_is_untouched():
    cfg = SpecAugmentConfig(time_masks=2, max_frames=8, channel_masks=2, max_channels=5)
    x = ones(16)
    out = SpecAugment(cfg, seed=3).process(x, clips_per_sequence=1, epoch=0, batch=0)
    assert (x == 1).all()
    for seq in out:
        frames, channels = masked_bands(seq)
        assert 0 <= frames <= 2 * 8 and 0 <= channels <= 2 * 5
        # every zero cell lies in a masked frame or a masked channel: nothing else changes
        zero = seq == MASK_VALUE
        in_band = zero.all(axis=1)[:, None] | zero.all(axis=0)[None, :]
        assert (zero == in_band).all()
    assert sum(masked_bands(s)[0] for s in out) > 0 and sum(masked_bands(s)[1] for s in out) > 0


def test_longer_sequences_get_time_masks_per_clip():
    cfg = SpecAugmentConfig(time_masks=1, max_frames=8, channel_masks=0, max_channels=0)
    out = SpecAugment(cfg, seed=0).process(ones(64, clips=3), clips_per_sequence=3, epoch=0, batch=0)
    widths = [masked_bands(s)[0] for s in out]
    assert max(widths) > 8  # three bands of at most 8 frames each can only exceed 8 together
    assert max(widths) <= 24


def test_same_seed_epoch_and_batch_give_the_same_masks():
    aug = SpecAugment(SpecAugmentConfig(), seed=5)
    a = aug.process(ones(4), 1, epoch=2, batch=7)
    assert np.array_equal(a, SpecAugment(SpecAugmentConfig(), seed=5).process(ones(4), 1, epoch=2, batch=7))
    assert not np.array_equal(a, aug.process(ones(4), 1, epoch=3, batch=7))


def test_batches_mask_training_only():
    feats = np.full((8, FRAMES, CHANNELS), 100, dtype=np.uint16)
    labels = np.zeros((8, DEFAULT_GEOMETRY.steps_for_frames(FRAMES)), dtype=np.float32)
    cfg = TrainConfig(batch_size=4, concat=(1,), spec_augment=SpecAugmentConfig(time_masks=4, channel_masks=4))
    train_x = Batches(feats, labels, cfg, shuffle=True).batch(0)[0]
    val_x = Batches(feats, labels, cfg, shuffle=False).batch(0)[0]
    plain_x = Batches(feats, labels, TrainConfig(batch_size=4, concat=(1,)), shuffle=True).batch(0)[0]
    assert (train_x == 0).any()
    assert not (val_x == 0).any() and not (plain_x == 0).any()
    assert np.array_equal(train_x[train_x != 0], plain_x[train_x != 0])
