"""The shipped default model: metadata, size, and the example recordings handled correctly
(every labelled "activate" detected, nothing else) through the device's own pipeline."""

import json

import pytest

from edge.audio import read_audio
from edge.model import StreamingModel, default_model_path
from edge.pipeline import Pipeline

from .paths import DEV

HIT_AFTER_END_S = 1.0
MY_AUDIO_SURE_END_S = 6.3
MY_AUDIO_UNSURE_END_S = 3.1
MY_AUDIO_TOLERANCE_S = 0.8
MAX_MODEL_BYTES = 400 * 1024


@pytest.fixture(scope="module")
def model():
    return StreamingModel()


def detections(model, name):
    model.reset()
    return [d.seconds for d in Pipeline(model).process(read_audio(DEV / name))]


def test_default_model_is_shipped_with_metadata(model):
    path = default_model_path()
    assert path.is_file() and path.stat().st_size <= MAX_MODEL_BYTES
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["word"] == "activate" and meta["quantization"] == "int8"
    assert len(meta["training_manifest_sha256"]) == 64
    assert model.backend in ("ai-edge-litert", "tflite-runtime", "tensorflow")


@pytest.mark.parametrize("name", sorted(k for k in json.loads((DEV / "labels.json").read_text()) if k.endswith(".wav")))
def test_labelled_dev_clips_every_activate_and_nothing_else(model, name):
    words = json.loads((DEV / "labels.json").read_text())[name]
    fired = detections(model, name)
    for start, end in words:
        assert any(start <= t <= end + HIT_AFTER_END_S for t in fired), f"missed 'activate' at {start}-{end} s: {fired}"
    stray = [t for t in fired if not any(s <= t <= e + HIT_AFTER_END_S for s, e in words)]
    assert not stray, f"false detections at {stray}"


def _near(fired, end):
    return [t for t in fired if end - MY_AUDIO_TOLERANCE_S <= t <= end + HIT_AFTER_END_S]


def test_my_audio_clip_fires_only_near_the_candidate_words(model):
    fired = detections(model, "coursera__my_audio.wav")
    assert fired, "the shipped model hears nothing in my_audio.wav"
    stray = [t for t in fired if t not in _near(fired, MY_AUDIO_SURE_END_S) + _near(fired, MY_AUDIO_UNSURE_END_S)]
    assert not stray, f"false detections at {stray}"


def test_my_audio_clip_detects_the_word_ending_near_6_3_s(model):
    assert _near(detections(model, "coursera__my_audio.wav"), MY_AUDIO_SURE_END_S)
