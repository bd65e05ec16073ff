"""The fixed-point frontend: exact integers, batch == streaming for any chunking, deterministic reset."""

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.features import DEFAULT_FRONTEND, FEATURE_SCALE, Frontend, compute_features

from .paths import DEV


@pytest.fixture(scope="module")
def clip():
    return read_audio(DEV / "coursera__1.wav")


def test_frame_count_and_dtype(clip):
    feats = compute_features(clip)
    assert feats.dtype == np.uint16
    assert feats.shape == (DEFAULT_FRONTEND.frames_for(clip.size), DEFAULT_FRONTEND.channels)
    assert feats.shape == (998, 40)


def test_values_are_the_frontends_exact_integers(clip):
    from pymicro_features import MicroFrontend

    fe = MicroFrontend()
    data = clip[:4800].tobytes()
    raw = [fe.process_samples(data[i : i + 320]).features for i in range(0, len(data), 320)]
    raw = [r for r in raw if r]
    expected = np.asarray(raw) * FEATURE_SCALE
    assert np.array_equal(np.rint(expected), expected)  # the float really is integer / 25.6
    assert np.array_equal(compute_features(clip[:4800]), expected.astype(np.uint16))


@pytest.mark.parametrize("chunk", [1, 7, 159, 160, 161, 333, 1280, 4097])
def test_streaming_equals_batch_for_any_chunk_size(clip, chunk):
    batch = compute_features(clip)
    fe = Frontend()
    parts = [fe.process(clip[i : i + chunk]) for i in range(0, clip.size, chunk)]
    assert np.array_equal(np.concatenate(parts), batch)


def test_random_chunking_equals_batch(clip):
    rng = np.random.default_rng(3)
    fe = Frontend()
    parts, i = [], 0
    while i < clip.size:
        n = int(rng.integers(0, 2000))
        parts.append(fe.process(clip[i : i + n]))
        i += n
    assert np.array_equal(np.concatenate(parts), compute_features(clip))


def test_reset_restores_fresh_state(clip):
    fe = Frontend()
    first = fe.process(clip)
    fe.process(clip[:12345])
    fe.reset()
    assert np.array_equal(fe.process(clip), first)


def test_short_input_yields_no_frames():
    assert compute_features(np.zeros(DEFAULT_FRONTEND.window_samples - 1, np.int16)).shape == (0, 40)
    assert compute_features(np.zeros(DEFAULT_FRONTEND.window_samples, np.int16)).shape == (1, 40)


def test_silence_gives_known_integers():
    feats = compute_features(np.zeros(SAMPLE_RATE, np.int16))
    assert feats.shape == (98, 40)
    assert int(feats.max()) == int(feats.min()) == 0
