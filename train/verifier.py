"""edge-verifier: train the stage-2 verifier of a step model (see ``edge.verifier``).

    edge-verifier --model data/activate/activate.tflite --positives data/activate/tts/positives \\
        --hard-negatives data/activate/tts/negatives --out data/activate/verifier

Steps, each resumed from its file in ``--out`` when the command is run again:

 1. ``examples.npz``  embedding windows (``edge.embedding``): the word in context (TTS and any
                      recordings, with noise, rooms and channel effects), hard negatives in
                      context, dense windows of real negative *training* audio (the ``:fit``
                      part), and every window where stage 1 reaches ``MINE_THRESHOLD`` on
                      that audio (its near and false accepts, mined)
 2. ``head.keras``    a small MLP over the ``window`` embeddings (``DEFAULT_HEAD``; ``--layer-norm``:
                      ``NORMED_HEAD``), trained on those windows
 3. the int8 head     ``MODEL-verifier.tflite`` beside the model, parity-checked against Keras,
                      and its float weights ``MODEL-verifier.weights.h5`` (what ``edge-enroll`` adapts)
 4. the threshold     the verifier's threshold for ``--target-fa`` on held-out real audio
                      (the ``:holdout`` part) run through the whole cascade; the model's JSON
                      gets its ``verifier`` block

The verifier's score fuses the head's logit with stage 1's peak logit (``--stage1-weight``,
see ``edge.verifier.VerifierConfig``). ``--threshold-only`` sets the threshold again for the
head a model already has (no examples, no training), e.g. to switch fusion on or off, or
to move its candidate gate (``--candidate-threshold``):

    edge-verifier --model models/activate.tflite --threshold-only --stage1-weight 1
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import INT16_FULL_SCALE, SAMPLE_RATE, clip_int16
from edge.embedding import (CHUNK_SAMPLES, EMBEDDING_DIM, SpeechEmbedding, chunk_windows, embeddings_for, find_embedding_files,
                            mel_track)
from edge.errors import DataError, ModelError, run_guarded
from edge.helpformat import HelpFormatter
from edge.progress import Progress
from edge.verifier import (FUSION_KEYS, HEAD_ONLY_VERSION, MAX_STAGE1_WEIGHT, VERIFIER_FORMAT, VERIFIER_VERSION, VerifierConfig, VerifierHead, VerifierSpec,
                           candidate_chunks, cascade_track)

from .augment import make_rir_bank, normalise, reverberate, rms
from .calibration import calibrate_threshold, round_up
from .channel import ChannelConfig, apply_channel
from .evaluate import fire_positions, tflite_scorer
from .quiet_tf import converting, quiet_tensorflow
from .sources import ClipPool
from .vocal_tract import OFF as VTLP_OFF
from .vocal_tract import VocalTractConfig, warp_formants

EXAMPLES_FILE = "examples.npz"
VTLP_KEY = "vocal_tract"
MINE_KEY = "mine_threshold"
VTLP = VocalTractConfig()
"""``--vtlp``: formants warped by 0.88-1.14 on 80 % of the words (``train.vocal_tract``). Off by default:
on voyager (2026-12-06) it did not improve the fused cascade at 0.5 FA/h and made the
layer-normalised head running alone far worse (models/README.md)."""
HEAD_FILE = "head.keras"
PARITY_FILE = "verifier-parity.json"
CONTEXT_BEFORE_SECONDS = (2.2, 3.0)
"""Real speech before each word in context: the window (16 x 80 ms) plus the embedding's history."""
CONTEXT_AFTER_SECONDS = 0.7
POSITIVE_LEAD_SECONDS = 0.16
"""Windows that end from this long before the word's end ... """
DENSE_STRIDE_CHUNKS = 2
"""Dense negative windows: one every 160 ms of the real training audio."""
CANDIDATE_THRESHOLD = 0.2
"""Stage-1 probability that opens a candidate on the device (and in the calibration). Measured on
the suite (models/README.md, 2026-12-07): from 0.05 to 0.2 the verifier computes 56-63 % fewer
embeddings on speech and music, for 0.5-1.0 point more misses at 0.5 and 1 FA/h (clean)."""
MINE_THRESHOLD = 0.05
"""Stage-1 probability from which windows of the real training audio are mined as negatives for
the head: the gate of before 2026-12-07, kept for training (the heads measured at the new gate were
trained so), and below the gate, so the head also learns what a noisier room lifts over it."""
NOISE_PROB = 0.6
SNR_DB = (0.0, 25.0)
REVERB_PROB = 0.3
REVERB_WET = (0.3, 0.9)
LEVEL_DBFS = (-38.0, -16.0)
SPEED = (0.9, 1.1)
NEGATIVE_BLOCK_SECONDS = 10.0
STREAM_GAP_SECONDS = 0.25
DROPOUT = 0.3
BATCH_SIZE = 512
LEARNING_RATE = 1e-3
VALIDATION_SHARE = 0.1
POSITIVE_WEIGHT = 2.0
"""Positives' total weight over the negatives' (recall comes first in stage 2 too)."""
PARITY_MAX_RELATIVE_ERROR = 0.05
"""The int8 head's logit error (at ``PARITY_PERCENTILE``), as a share of the Keras logits' range."""
PARITY_PERCENTILE = 99.0
REPRESENTATIVE_WINDOWS = 1000
REPRESENTATIVE_SEED = 12
THRESHOLD_DIGITS = 6
MAX_THRESHOLD = 0.999999
SCORE_LOGIT_AT_P99 = 8.0
"""``score_scale`` maps the 99th percentile of the head's |logit| (Keras, on the parity
windows) to this scaled logit: sigmoid(8) = 0.99966, so scores spread below 1 where
thresholds are set, and no threshold is capped at MAX_THRESHOLD (logit 13.8) below the
loudest false accepts."""


@dataclass(frozen=True)
class HeadShape:
    """The head's hidden layers: Dense widths, each followed (``layer_norm``) by a layer
    normalisation (with its scale and offset), then ReLU and dropout. The metadata's
    ``verifier.head_shape`` records it, so ``edge-enroll`` rebuilds the same head."""

    hidden: tuple[int, ...]
    layer_norm: bool

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "layer_norm": self.layer_norm}

    @classmethod
    def of_block(cls, block: dict) -> "HeadShape":
        """The shape a metadata ``verifier`` block names; a block from before 2026-12-06 has none: ``LEGACY_HEAD``."""
        shape = block.get("head_shape")
        if shape is None:
            return LEGACY_HEAD
        try:
            return cls(tuple(int(u) for u in shape["hidden"]), bool(shape["layer_norm"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"verifier.head_shape {shape!r} is invalid ({exc})") from None

    @classmethod
    def of_keras(cls, model) -> "HeadShape":
        """The shape of a trained Keras head (what the metadata records, whatever the recipe says now)."""
        import keras

        dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        return cls(tuple(dense[:-1]), any(isinstance(layer, keras.layers.LayerNormalization) for layer in model.layers))


LEGACY_HEAD = HeadShape((128, 64), False)
"""The head of every verifier trained before 2026-12-06 (the shipped ``activate``'s)."""
DEFAULT_HEAD = LEGACY_HEAD
"""What ``edge-verifier`` trains unless told otherwise (``--layer-norm``)."""
NORMED_HEAD = HeadShape((256, 128), True)
"""The layer-normalised head (``--layer-norm``). Measured against ``LEGACY_HEAD`` on the same training windows
(models/README.md, 2026-12-06): stage 2 alone, running on every chunk, misses far fewer real words at 0.5 FA/h
(voyager 43.6 -> 9.5 %, wildfire offline 12.1 -> 8.7 % over three seeds), but the fused cascade, what a model runs,
gained nothing (wildfire 6.2 -> 6.4 %, voyager 9.1 -> 11.9 %, computer 24.6 -> 31.6 %), so it is not the default."""
HEAD_WEIGHTS_SUFFIX = "-verifier.weights.h5"
"""The float head's weights beside the model (``edge-enroll`` adapts them; the device never reads them)."""
HEAD_SUFFIX = "-verifier.tflite"
"""The int8 head beside the model (what the device runs)."""
LAYER_NORM_EPSILON = 1e-3
"""Keras' LayerNormalization default; the TFLite head uses the same."""


def head_path_for(model: Path) -> Path:
    """The int8 head file beside a step model (``MODEL-verifier.tflite``)."""
    return model.with_name(f"{model.stem}{HEAD_SUFFIX}")


def weights_path_for(model: Path) -> Path:
    """The float head's weights beside a step model (``MODEL-verifier.weights.h5``)."""
    return model.with_name(f"{model.stem}{HEAD_WEIGHTS_SUFFIX}")


@dataclass(frozen=True)
class VerifierRecipe:
    model: Path
    out: Path
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    hard_negatives: tuple[str, ...] = ()
    calibration: tuple[str, ...] = ()
    noise: tuple[str, ...] = ()
    positive_examples: int = 2500
    hard_examples: int = 1500
    negative_hours: float = 1.5
    candidate_threshold: float = CANDIDATE_THRESHOLD
    mine_threshold: float = MINE_THRESHOLD
    hold_seconds: float = 0.48
    window: int = 16
    target_fa_per_hour: float = 0.5
    refractory: float = 2.0
    epochs: int = 25
    seed: int = 5
    stage1_weight: float = 1.0
    """Fusion (``VerifierConfig.stage1_weight``): the mean of the head's and stage 1's peak logit,
    chosen before measuring (equal weights); 0: the head alone, as before 2026-12-05."""
    head: HeadShape = DEFAULT_HEAD
    vocal_tract: VocalTractConfig = VTLP_OFF
    """Formant warps of the word clips and hard negatives (``--vtlp``: ``VTLP``)."""

    @property
    def config(self) -> VerifierConfig:
        return VerifierConfig(candidate_threshold=self.candidate_threshold, threshold=0.5, hold_seconds=self.hold_seconds,
                              window=self.window, stage1_weight=self.stage1_weight)

    @property
    def head_path(self) -> Path:
        return head_path_for(self.model)

    @property
    def weights_path(self) -> Path:
        return weights_path_for(self.model)


# --- examples --------------------------------------------------------------------------------


class Augmenter:
    """Noise, rooms, channel and level for a word in context (seeded)."""

    def __init__(self, noise: list[np.ndarray], seed: int) -> None:
        self.noise = np.concatenate([n.astype(np.float64) for n in noise]) if noise else None
        self.rirs = make_rir_bank(seed)
        self.channel = ChannelConfig()

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = x.astype(np.float64) / INT16_FULL_SCALE
        if rng.random() < REVERB_PROB:
            x = reverberate(x, self.rirs[int(rng.integers(len(self.rirs)))], float(rng.uniform(*REVERB_WET)))[: x.size]
        if self.noise is not None and rng.random() < NOISE_PROB:
            start = int(rng.integers(max(self.noise.size - x.size, 1)))
            bg = np.resize(self.noise[start:], x.size) / INT16_FULL_SCALE
            snr = float(rng.uniform(*SNR_DB))
            x = x + bg * ((rms(x) or 1.0) / (rms(bg) or 1.0)) / 10 ** (snr / 20.0)
        x, _ = apply_channel(x, rng, self.channel)
        x = normalise(x, float(rng.uniform(*LEVEL_DBFS)))
        return clip_int16(x * INT16_FULL_SCALE)


def _voice(x: np.ndarray, rng: np.random.Generator, vocal_tract: VocalTractConfig) -> np.ndarray:
    """A word clip said by a slightly different voice: formants warped (``vocal_tract``), then faster or slower."""
    from .augment import change_speed

    y = warp_formants(x, vocal_tract.draw(rng))
    return clip_int16(change_speed(y, float(rng.uniform(*SPEED))))


def words_in_context(emb: SpeechEmbedding, clips: ClipPool, context: np.ndarray, count: int, config: VerifierConfig,
                     augment: Augmenter, rng: np.random.Generator, label: str,
                     vocal_tract: VocalTractConfig = VTLP_OFF) -> np.ndarray:
    """Windows that end around the end of a word said after real speech: where the cascade
    verifies a word (from just before its end until the candidate closes)."""
    out = []
    meter = Progress(f"edge-verifier: {label} in context", count, sys.stderr)
    for i in range(count):
        word = _voice(clips.clips[clips.draw(rng)], rng, vocal_tract)
        before = int(rng.uniform(*CONTEXT_BEFORE_SECONDS) * SAMPLE_RATE)
        after = int(CONTEXT_AFTER_SECONDS * SAMPLE_RATE)
        start = int(rng.integers(max(context.size - before - after, 1)))
        seg = np.concatenate([context[start: start + before], word, context[start + before: start + before + after]])
        seg = augment.apply(seg, rng)
        end = before + word.size
        first = (end - int(POSITIVE_LEAD_SECONDS * SAMPLE_RATE)) // CHUNK_SAMPLES - 1
        last = min((end + config.hold_samples) // CHUNK_SAMPLES - 1, seg.size // CHUNK_SAMPLES - 1)
        chunks = np.arange(max(first - config.window + 1, 0), last + 1)
        embs = embeddings_for(emb, seg, chunks)
        for c in range(max(first, config.window - 1), last + 1):
            j = c - chunks[0]
            out.append(embs[j - config.window + 1: j + 1])
        meter.update(i + 1)
    meter.close()
    return np.asarray(out, np.float32).reshape(-1, config.window, EMBEDDING_DIM)


def negative_stream(specs: tuple[str, ...], hours: float, rng: np.random.Generator) -> np.ndarray:
    """Real negative audio back to back (shuffled clips, short gaps), at most ``hours`` long."""
    pool = ClipPool.load("negative", list(specs))
    gap = np.zeros(int(STREAM_GAP_SECONDS * SAMPLE_RATE), np.int16)
    limit = int(hours * 3600 * SAMPLE_RATE) if np.isfinite(hours) else sum(c.size + gap.size for c in pool.clips)
    parts, total = [], 0
    for i in rng.permutation(len(pool.clips)):
        clip = np.asarray(pool.clips[i], np.int16)
        parts += [clip, gap]
        total += clip.size + gap.size
        if total >= limit:
            break
    return np.concatenate(parts)[:limit]


def augmented_blocks(stream: np.ndarray, augment: Augmenter, rng: np.random.Generator) -> np.ndarray:
    """The stream in 10 s blocks, each with its own noise / room / channel / level draw."""
    block = int(NEGATIVE_BLOCK_SECONDS * SAMPLE_RATE)
    return np.concatenate([augment.apply(stream[i: i + block], rng) for i in range(0, stream.size, block)])


def all_windows(emb: SpeechEmbedding, audio: np.ndarray, window: int, label: str) -> np.ndarray:
    """The embedding of every chunk of a long stream (in 10-minute pieces, with progress)."""
    piece = int(600 * SAMPLE_RATE)
    n = audio.size // CHUNK_SAMPLES
    out = np.zeros((n, EMBEDDING_DIM), np.float32)
    meter = Progress(f"edge-verifier: embeddings of {label}", n, sys.stderr)
    for first in range(0, n, piece // CHUNK_SAMPLES):
        count = min(piece // CHUNK_SAMPLES, n - first)
        lead = min(first, window + 10) * CHUNK_SAMPLES  # real history before the piece
        seg = audio[first * CHUNK_SAMPLES - lead: (first + count) * CHUNK_SAMPLES]
        chunks = np.arange(lead // CHUNK_SAMPLES, lead // CHUNK_SAMPLES + count)
        out[first: first + count] = embeddings_for(emb, seg, chunks, mel_track(emb, seg))
        meter.update(first + count)
    meter.close()
    return out


def windows_at(embs: np.ndarray, chunks: np.ndarray, window: int) -> np.ndarray:
    chunks = np.asarray(chunks, np.int64)
    chunks = chunks[chunks >= window - 1]
    return np.stack([embs[c - window + 1: c + 1] for c in chunks]) if chunks.size else np.zeros((0, window, EMBEDDING_DIM), np.float32)


def build_examples(recipe: VerifierRecipe) -> dict:
    rng = np.random.default_rng(recipe.seed)
    emb = SpeechEmbedding()
    config = recipe.config
    stream = negative_stream(recipe.negatives, recipe.negative_hours, rng)
    noise = [c for c in ClipPool.load("noise", list(recipe.noise)).clips] if recipe.noise else []
    augment = Augmenter(noise, recipe.seed)
    positives = ClipPool.load("positive", list(recipe.positives), trim=True)
    pos = words_in_context(emb, positives, stream, recipe.positive_examples, config, augment, rng, "positives",
                           recipe.vocal_tract)
    hard = np.zeros((0, config.window, EMBEDDING_DIM), np.float32)
    if recipe.hard_negatives:
        pool = ClipPool.load("hard negative", list(recipe.hard_negatives), trim=True)
        hard = words_in_context(emb, pool, stream, recipe.hard_examples, config, augment, rng, "hard negatives",
                                recipe.vocal_tract)
    score, _ = tflite_scorer(recipe.model)
    parts = {"clean": stream, "augmented": augmented_blocks(stream, augment, rng)}
    mining = dataclasses.replace(config, candidate_threshold=recipe.mine_threshold)
    dense, mined = negative_windows(score, parts, emb, mining, DENSE_STRIDE_CHUNKS, "real negatives")
    return {"positives": pos, "hard": hard, "dense": dense, "mined": mined, "negative_hours": stream.size / SAMPLE_RATE / 3600,
            VTLP_KEY: vtlp_record(recipe.vocal_tract), MINE_KEY: np.float64(recipe.mine_threshold)}


def vtlp_record(vocal_tract: VocalTractConfig) -> np.ndarray:
    """How the examples' words were warped, kept in ``examples.npz`` (lowest, highest factor, share warped)."""
    return np.array([*vocal_tract.factor_range, vocal_tract.probability], np.float64)


def vtlp_of(examples: dict) -> dict:
    """The training record's ``vocal_tract``: what ``examples.npz`` says (none in files from before 2026-12-06: off)."""
    low, high, share = (float(v) for v in examples.get(VTLP_KEY, vtlp_record(VTLP_OFF)))
    return {"factor_range": [low, high], "probability": share}


def negative_windows(score, parts: dict[str, np.ndarray], emb: SpeechEmbedding, config: VerifierConfig, stride: int,
                     label: str) -> tuple[np.ndarray, np.ndarray]:
    """What a head must reject, from negative audio (``parts``: name -> stream): windows every
    ``stride`` chunks, and every window where stage 1 (``score``) opens a candidate on it (mined)."""
    dense, mined = [], []
    for name, audio in parts.items():
        embs = all_windows(emb, audio, config.window, f"{name} {label}")
        dense.append(windows_at(embs, np.arange(config.window - 1, embs.shape[0], stride), config.window))
        steps, probs = score(audio)
        _, chunks = candidate_chunks(steps, probs, config)
        mined.append(windows_at(embs, chunks[chunks < embs.shape[0]], config.window))
    return np.concatenate(dense), np.concatenate(mined)


# --- the head ----------------------------------------------------------------------------------


def make_head(window: int, shape: HeadShape = DEFAULT_HEAD):
    import keras

    inp = keras.Input((window, EMBEDDING_DIM), batch_size=None, name="embeddings")
    x = keras.layers.Flatten()(inp)
    for units in shape.hidden:
        if shape.layer_norm:
            x = keras.layers.Dense(units)(x)
            x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON)(x)
            x = keras.layers.ReLU()(x)
        else:
            x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(DROPOUT)(x)
    out = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inp, out)


def train_head(examples: dict, recipe: VerifierRecipe, out: Path) -> dict:
    import keras

    keras.utils.set_random_seed(recipe.seed)
    pos = examples["positives"]
    negatives = [examples["dense"], examples["mined"], examples["hard"]]
    n_pos, n_neg = len(pos), sum(len(a) for a in negatives)
    x = np.concatenate([pos, *negatives])  # one copy of the windows, freed once its slices hold them (athena: 7.1 -> 5.0 GB peak)
    y = np.concatenate([np.ones(n_pos), np.zeros(n_neg)]).astype(np.float32)
    w = np.where(y > 0, POSITIVE_WEIGHT * n_neg / max(n_pos, 1), 1.0).astype(np.float32)
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(x))
    n_val = int(len(x) * VALIDATION_SHARE)
    val, tr = order[:n_val], order[n_val:]
    x_tr, x_val = x[tr], x[val]
    del x
    model = make_head(recipe.window, recipe.head)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  weighted_metrics=[])
    stop = keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)
    hist = model.fit(x_tr, y[tr], sample_weight=w[tr], validation_data=(x_val, y[val], w[val]), epochs=recipe.epochs,
                     batch_size=BATCH_SIZE, verbose=2, callbacks=[stop])
    model.save(out)
    logits = model.predict(x_val, batch_size=BATCH_SIZE, verbose=0).reshape(-1)
    yv = y[val] > 0
    return {"windows": {"positive": n_pos, "negative": n_neg}, "epochs": len(hist.history["loss"]),
            "val_recall_at_0": float((logits[yv] > 0).mean()) if yv.any() else None,
            "val_false_positive_rate_at_0": float((logits[~yv] > 0).mean()) if (~yv).any() else None}


QUANTIZATIONS = ("int8", "int8 weights", "float")
"""How the head is converted, in order until one passes parity: int8 weights and activations
(ranges from representative windows); int8 weights with float activations (dynamic range:
same size; on wildfire's head largest logit error 0.27 against 5.2, p99 0.18 against 0.26);
float (four times the size, 0.8 MB, and still a small part of a verification's cost, which is
the embedding). An adapted head from a single enrollment take failed the first for 1-2 of 30
callers, and the second too for one of them (p99 error 1.35 over a range of 17.4); such a
caller is no longer refused."""


def convert_head(keras_path: Path, examples: dict, out: Path) -> dict:
    """The head as TFLite with float input and logit output, by the first of ``QUANTIZATIONS``
    whose logits agree with Keras (``PARITY_MAX_RELATIVE_ERROR``); the parity record says which."""
    import keras

    model = keras.models.load_model(keras_path)
    window = int(model.inputs[0].shape[1])
    pool = [examples[k] for k in ("positives", "dense", "mined", "hard") if k in examples and len(examples[k])]
    rng = np.random.default_rng(REPRESENTATIVE_SEED)  # a spread of every kind of window, not the first few of two
    rep = np.concatenate([p[rng.choice(len(p), min(len(p), REPRESENTATIVE_WINDOWS // len(pool)), replace=False)] for p in pool])
    check = np.concatenate([examples["positives"][-REPRESENTATIVE_WINDOWS:], examples["mined"][-REPRESENTATIVE_WINDOWS:]])
    want = model.predict(check, batch_size=BATCH_SIZE, verbose=0).reshape(-1)
    failures = []
    for kind in QUANTIZATIONS:
        with converting():
            out.write_bytes(_tflite_head(model, window, rep if kind == "int8" else None, quantized=kind != "float"))
        parity = head_parity(want, VerifierHead(out, window=window), check)
        if parity["ok"]:
            del parity["ok"]
            return parity | {"quantization": kind}
        failures.append(f"{kind}: {parity[f'p{PARITY_PERCENTILE:g}_logit_error']:.3f}")
    out.unlink()
    raise DataError(f"the TFLite verifier head differs from Keras in logit ({PARITY_PERCENTILE:g}th percentile) by "
                    f"{', '.join(failures)} over a range of {parity['logit_range']:.1f} (limit {PARITY_MAX_RELATIVE_ERROR:.0%})")


def save_weights(keras_path: Path, out: Path) -> HeadShape:
    """The trained head's float weights for ``edge-enroll``, and its shape; loaded without
    compiling, so the file holds no optimizer state (a third of the size)."""
    import keras

    model = keras.models.load_model(keras_path, compile=False)
    tmp = out.with_name("tmp" + out.name)
    model.save_weights(tmp)
    os.replace(tmp, out)
    return HeadShape.of_keras(model)


def _tflite_head(model, window: int, representative: np.ndarray | None, quantized: bool = True) -> bytes:
    """The Keras head's weights as constants (no variables for the converter): float, or
    ``quantized`` to int8 weights, with ``representative`` windows int8 activations too."""
    import keras
    import tensorflow as tf

    dense = [(tf.constant(layer.get_weights()[0]), tf.constant(layer.get_weights()[1]))
             for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    norms = [tuple(tf.constant(w) for w in layer.get_weights())
             for layer in model.layers if isinstance(layer, keras.layers.LayerNormalization)]

    @tf.function(input_signature=[tf.TensorSpec((1, window, EMBEDDING_DIM), tf.float32, name="embeddings")])
    def fixed(e):
        x = tf.reshape(e, (1, window * EMBEDDING_DIM))
        for i, (kernel, bias) in enumerate(dense):
            x = tf.matmul(x, kernel) + bias
            if i < len(dense) - 1:
                if norms:
                    gamma, beta = norms[i]
                    mean, variance = tf.nn.moments(x, axes=[1], keepdims=True)
                    x = (x - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta
                x = tf.nn.relu(x)
        return {"logit": x}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed.get_concrete_function()])
    if quantized:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantized and representative is not None:
        converter.representative_dataset = lambda: ([w[None].astype(np.float32)] for w in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def head_parity(want: np.ndarray, head: VerifierHead, check: np.ndarray) -> dict:
    """The TFLite head's logits on ``check`` against Keras's (``want``); ``ok`` within the limit."""
    got = np.array([head.logit(w) for w in check])
    errors = np.abs(want - got) if check.size else np.zeros(1)
    error, typical = float(errors.max()), float(np.percentile(errors, PARITY_PERCENTILE))
    spread = float(want.max() - want.min()) if check.size else 0.0
    agree = float(((want > 0) == (got > 0)).mean()) if check.size else 1.0
    return {"windows": int(check.shape[0]), "abs_logit_p99": round(float(np.percentile(np.abs(want), PARITY_PERCENTILE)), 4) if check.size else 0.0,
            "max_logit_error": round(error, 4), f"p{PARITY_PERCENTILE:g}_logit_error": round(typical, 4),
            "logit_range": round(spread, 2), "decision_agreement": round(agree, 4),
            "ok": typical <= PARITY_MAX_RELATIVE_ERROR * max(spread, 1.0)}


# --- threshold on held-out audio ----------------------------------------------------------------


def window_source(window: int):
    """``for_audio(audio)`` -> ``windows(chunks)``: the ``window`` embeddings ending at each chunk of one
    whole stream (its mel frames computed once). The last request's windows are kept, so two heads scored
    on one stream's candidates (an enrolled model's original and adapted heads) pay for them once."""
    emb = SpeechEmbedding()

    def for_audio(audio: np.ndarray):
        mels = mel_track(emb, audio)
        last: dict = {}

        def windows(chunks) -> np.ndarray:
            chunks = np.asarray(chunks, np.int64)
            if last.get("chunks") is None or not np.array_equal(last["chunks"], chunks):
                last.update(chunks=chunks, windows=chunk_windows(emb, audio, chunks, window, mels))
            return last["windows"]

        return windows

    return for_audio


def verifier_scorer(head: VerifierHead, window: int):
    """logit_chunk for ``cascade_track`` over one whole stream (embeddings of the needed chunks only)."""
    source = window_source(window)

    def for_audio(audio: np.ndarray):
        windows = source(audio)
        return lambda chunks: head.logits(windows(chunks))

    return for_audio


CALIBRATION_CONDITIONS = ("clean", "augmented")
"""The held-out audio as it is, and once more through the training ``Augmenter`` (noise, rooms,
channels): twice the hours and the rooms users have. Measured (2026-12-05) on the suite's
6.5 h of clean negatives, at the threshold for 0.5 FA/h set on 1.5 h clean alone against clean
+ augmented: wildfire 1.70 FA/h (FRR 4.7 %) against 0.77 FA/h (7.7 %); voyager 0 FA/h at FRR
24.7 % against 0 FA/h at 14.5 %."""


def calibrate(recipe: VerifierRecipe, head: VerifierHead, config: VerifierConfig | None = None) -> dict:
    """The threshold for ``recipe.target_fa_per_hour`` on the held-out audio in each of
    ``CALIBRATION_CONDITIONS``, through the cascade with ``config`` (default: the recipe's,
    with the head's score scale)."""
    config = config or dataclasses.replace(recipe.config, score_scale=head.score_scale)
    rng = np.random.default_rng(recipe.seed + 1)
    stream = negative_stream(recipe.calibration, float("inf"), rng)
    noise = ClipPool.load("noise", list(recipe.noise)).clips if recipe.noise else []
    parts = {"clean": stream, "augmented": augmented_blocks(stream, Augmenter(noise, recipe.seed + 1), rng)}
    hours = sum(a.size for a in parts.values()) / SAMPLE_RATE / 3600
    print(f"edge-verifier: threshold on {hours:.2f} h of held-out real audio ({' and '.join(parts)})", file=sys.stderr, flush=True)
    score, _ = tflite_scorer(recipe.model)
    ref = int(recipe.refractory * SAMPLE_RATE)
    positions, scores, candidates, offset = [], [], 0, 0
    for audio in parts.values():  # end to end, a refractory period apart
        steps, probs = score(audio)
        where, what = cascade_track(steps, probs, config, verifier_scorer(head, config.window)(audio))
        positions.append(where + offset)
        scores.append(what)
        candidates += fire_positions(steps, probs, config.candidate_threshold, ref).size
        offset += audio.size + ref
    positions, scores = np.concatenate(positions), np.concatenate(scores)
    found = calibrate_threshold(positions, scores, hours, recipe.target_fa_per_hour, ref, MAX_THRESHOLD)
    threshold = round_up(found.threshold, THRESHOLD_DIGITS, MAX_THRESHOLD)
    return {"threshold": threshold, "negative_hours": round(hours, 3), "conditions": list(parts), "method": found.method,
            "events": found.events, "verifications_per_hour": round(positions.size / hours, 1) if hours else None,
            "candidates_per_hour": round(candidates / hours, 1) if hours else None,
            "firings_at_threshold": int(fire_positions(positions, scores, threshold, ref).size),
            "target_fa_per_hour": recipe.target_fa_per_hour}


def write_metadata(recipe: VerifierRecipe, calibration: dict, training: dict, score_scale: float, shape: HeadShape) -> dict:
    meta_file = recipe.model.with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    meta["verifier"] = {
        "format": VERIFIER_FORMAT, "head": recipe.head_path.name,
        "head_sha256": hashlib.sha256(recipe.head_path.read_bytes()).hexdigest(), "window": recipe.window,
        "candidate_threshold": recipe.candidate_threshold, "hold_seconds": recipe.hold_seconds,
        "score_scale": score_scale, "embedding": find_embedding_files().describe(), "training": training,
        "head_shape": shape.to_dict(), "head_weights": recipe.weights_path.name,
        "head_weights_sha256": hashlib.sha256(recipe.weights_path.read_bytes()).hexdigest(),
        **fusion_block(recipe.config, calibration),
    }
    return _write_block(meta_file, meta)


def fusion_block(config: VerifierConfig, calibration: dict) -> dict:
    """The block's version, fusion settings and threshold (version 1 without fusion)."""
    fused = config.stage1_weight > 0
    block = {"version": VERIFIER_VERSION if fused else HEAD_ONLY_VERSION, "threshold": calibration["threshold"],
             "calibration": calibration}
    if fused:
        block |= {"stage1_weight": config.stage1_weight, "peak_seconds": config.peak_seconds}
    return block


def _write_block(meta_file: Path, meta: dict) -> dict:
    tmp = meta_file.with_name(meta_file.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, meta_file)
    return meta["verifier"]


def run(recipe: VerifierRecipe) -> dict:
    recipe.out.mkdir(parents=True, exist_ok=True)
    ex_path = recipe.out / EXAMPLES_FILE
    if ex_path.is_file():
        print(f"edge-verifier: {ex_path} done before, reused", file=sys.stderr)
        examples = dict(np.load(ex_path))
    else:
        examples = build_examples(recipe)
        tmp = recipe.out / ("tmp-" + EXAMPLES_FILE)
        np.savez(tmp, **examples)
        os.replace(tmp, ex_path)
    head_keras = recipe.out / HEAD_FILE
    stats_file = recipe.out / "training.json"
    if not head_keras.is_file():
        stats = train_head(examples, recipe, head_keras)
        stats_file.write_text(json.dumps(stats, indent=1))
    training = json.loads(stats_file.read_text())
    training["vocal_tract"] = vtlp_of(examples)
    training[MINE_KEY] = float(examples.get(MINE_KEY, MINE_THRESHOLD))  # files from before 2026-12-07: mined at 0.05 too
    training["parity"] = convert_head(head_keras, examples, recipe.head_path)
    shape = save_weights(head_keras, recipe.weights_path)  # a resumed run's head may predate a new --layer-norm
    (recipe.out / PARITY_FILE).write_text(json.dumps(training["parity"], indent=1))
    scale = score_scale_for(training["parity"]["abs_logit_p99"])
    head = VerifierHead(recipe.head_path, window=recipe.window, score_scale=scale)
    calibration = calibrate(recipe, head) if recipe.calibration else {"threshold": 0.5, "note": "no held-out audio given"}
    return write_metadata(recipe, calibration, training, scale, shape)


def recalibrate(recipe: VerifierRecipe, gate: float | None = None) -> dict:
    """A new threshold (and fusion setting) for the verifier the model's metadata names; its head
    and training record stay, and so does its candidate gate unless ``gate`` moves it."""
    meta_file = recipe.model.with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    if "verifier" not in meta:
        raise DataError(f"{recipe.model}: no verifier to set a threshold for (train one: edge-verifier without --threshold-only)")
    if not recipe.calibration:
        raise DataError("--threshold-only needs held-out audio (--calibration, or the default :holdout audio)")
    spec = VerifierSpec.from_metadata(meta["verifier"], recipe.model)
    config = dataclasses.replace(spec.config, stage1_weight=recipe.stage1_weight,
                                 candidate_threshold=spec.config.candidate_threshold if gate is None else gate)
    head = VerifierHead(spec.head, spec.head_sha256, config.window, score_scale=config.score_scale)
    block = {k: v for k, v in meta["verifier"].items() if k not in FUSION_KEYS} | {"candidate_threshold": config.candidate_threshold}
    meta["verifier"] = block | fusion_block(config, calibrate(recipe, head, config))
    return _write_block(meta_file, meta)


def score_scale_for(abs_logit_p99: float) -> float:
    """The head's ``score_scale`` (see ``SCORE_LOGIT_AT_P99``); never above 1 (a head with
    small logits keeps its plain sigmoid)."""
    return round(min(1.0, SCORE_LOGIT_AT_P99 / abs_logit_p99), 6) if abs_logit_p99 > 0 else 1.0


# --- command line ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    d = VerifierRecipe
    p = argparse.ArgumentParser(prog="edge-verifier", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="the step model (.tflite); its JSON gets the verifier block")
    p.add_argument("--out", type=Path, help="work folder (re-run the same command to resume; not needed with --threshold-only)")
    p.add_argument("--positives", nargs="+", default=[], metavar="DIR", help="clips of the word (TTS, recordings; needed unless --threshold-only)")
    p.add_argument("--negatives", nargs="+", metavar="DIR", help="real negative training audio (default: edge-word's :fit audio)")
    p.add_argument("--hard-negatives", nargs="*", default=[], metavar="DIR", help="similar words, other languages (TTS)")
    p.add_argument("--calibration", nargs="*", metavar="DIR", help="held-out real audio for the threshold (default: edge-word's :holdout audio)")
    p.add_argument("--noise", nargs="*", metavar="DIR", help="noise recordings (default: the training half of the shared noise folders, DIR:train, and the activate backgrounds; the suite scores with the other half)")
    p.add_argument("--positive-examples", type=int, default=d.positive_examples, help=f"words in context (default {d.positive_examples})")
    p.add_argument("--hard-examples", type=int, default=d.hard_examples, help=f"hard negatives in context (default {d.hard_examples})")
    p.add_argument("--negative-hours", type=float, default=d.negative_hours, help=f"hours of real negative audio (default {d.negative_hours:g})")
    p.add_argument("--candidate-threshold", type=float, metavar="P",
                   help=f"stage-1 probability that opens a candidate (default {d.candidate_threshold:g}; with --threshold-only: "
                        "the model's, unless given)")
    p.add_argument("--target-fa", type=float, default=d.target_fa_per_hour,
                   help=f"false accepts per hour the threshold is set for, on held-out audio (default {d.target_fa_per_hour:g})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random choice (default {d.seed})")
    p.add_argument("--stage1-weight", type=float, default=d.stage1_weight,
                   help=f"weight of stage 1's peak logit in the verifier's score, the head's being 1 (default {d.stage1_weight:g}; 0: the head alone)")
    p.add_argument("--layer-norm", action="store_true",
                   help="a layer-normalised head (256 -> 128): a far better verifier running alone, no better in the cascade (models/README.md)")
    p.add_argument("--vtlp", action="store_true",
                   help=f"warp the formants of the words and hard negatives (vocal tract length: factors {VTLP.factor_range[0]:g}-"
                        f"{VTLP.factor_range[1]:g} on {VTLP.probability * 100:.0f} %% of them); measured: no gain in the cascade, "
                        "a worse verifier running alone (models/README.md)")
    p.add_argument("--threshold-only", action="store_true",
                   help="only set the threshold again for the model's existing verifier head (e.g. after changing --stage1-weight)")
    p.add_argument("--word", help="the word (default: the model's metadata); chooses the default real audio")
    return p


def recipe_from(args: argparse.Namespace) -> VerifierRecipe:
    from .word import WordRecipe, calibration_negatives, real_negatives
    from .suite import noise_spec

    if args.model.suffix != ".tflite" or not args.model.is_file() or not args.model.with_suffix(".json").is_file():
        raise DataError(f"{args.model}: not a step model (.tflite with its .json beside it)")
    base = WordRecipe.here(args.word or json.loads(args.model.with_suffix(".json").read_text()).get("word", ""), args.out)
    noise = args.noise if args.noise is not None else [noise_spec(base.shared), str(base.shared / "data" / "activate" / "backgrounds")]
    out = args.out.resolve() if args.out is not None else args.model.resolve().parent
    return VerifierRecipe(model=args.model.resolve(), out=out, positives=tuple(args.positives),
                          negatives=tuple(args.negatives or real_negatives(base)), hard_negatives=tuple(args.hard_negatives),
                          calibration=tuple(calibration_negatives(base) if args.calibration is None else args.calibration),
                          noise=tuple(noise), positive_examples=args.positive_examples, hard_examples=args.hard_examples,
                          negative_hours=args.negative_hours,
                          candidate_threshold=CANDIDATE_THRESHOLD if args.candidate_threshold is None else args.candidate_threshold,
                          target_fa_per_hour=args.target_fa, epochs=args.epochs, seed=args.seed, stage1_weight=args.stage1_weight,
                          head=NORMED_HEAD if args.layer_norm else DEFAULT_HEAD, vocal_tract=VTLP if args.vtlp else VTLP_OFF)


def _command(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    if not 0.0 <= args.stage1_weight <= MAX_STAGE1_WEIGHT:
        raise DataError(f"--stage1-weight must be a number from 0 to {MAX_STAGE1_WEIGHT:g}, got {args.stage1_weight}")
    if not args.threshold_only and (not args.positives or args.out is None):
        raise DataError("--positives and --out are needed to train a verifier (clips of the word, a work folder)")
    if args.candidate_threshold is not None and not 0.0 < args.candidate_threshold < 1.0:
        raise DataError(f"--candidate-threshold must be between 0 and 1, got {args.candidate_threshold}")
    recipe = recipe_from(args)
    block = recalibrate(recipe, args.candidate_threshold) if args.threshold_only else run(recipe)
    print(f"edge-verifier: {block['head']} ready: threshold {block['threshold']}, candidates at {block['candidate_threshold']}, "
          f"{block['calibration'].get('verifications_per_hour')} verifications/h on held-out audio", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code, result = run_guarded("edge-verifier", _command, args, resumable=True)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
