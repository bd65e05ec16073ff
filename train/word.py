"""edge-word: train your own wake word from text, in one command.

    edge-word voyager --out data/voyager            # TTS -> build -> train -> mine -> tune -> convert -> suite

Steps (each a project command run as its own process, so its progress shows as it goes):

 1. ``tts``         offline TTS: the word in many voices (``--new-voices N``: N more, each in
                    its own new Kokoro voice), similar-sounding words, ordinary phrases, and
                    pseudo-sentences in 12 other languages (``edge-synth tts``)
 2. ``build``       labelled 10 s training and validation clips (``edge-synth build``) over
                    real negative *training* audio: the training halves of LJ Speech, the
                    English, Spanish, French, Italian and Russian prompts, WUW callers'
                    training sessions (other keywords only), Speech Commands, Precise's
                    not-wake-words, and the training half of Debian's music as backgrounds
 3. ``train``       the Conv1D + GRU model (``edge-train``); with ``--members N``, N of them
                    with other seeds, merged into one ensemble model (``train.ensemble``)
 4. ``convert``     int8 streaming model, parity-checked (``edge-convert``): round 1
 5. ``mine``        where round 1 fires on the real negative training audio (``edge-mine``)
 6. ``tune``        a second training set where the mined clips get a share of the negative
                    draws, and fine-tuning from round 1 (``edge-train --init``)
 7. ``final``       the int8 model of round 2, its threshold set for ``--target-fa`` false
                    accepts per hour on real audio it never saw: the ``:holdout`` part of
                    the training halves (``train.sources.in_split``), speech and music
 8. ``verifier``    the stage-2 verifier (``edge-verifier``): a small head over a pretrained
                    speech embedding that confirms the final model's candidates, trained on
                    the TTS words and hard negatives in context and dense windows of the
                    ``:fit`` audio (with the final model's false accepts on it); its score
                    fuses the head's logit with the final model's (``edge.verifier``), its
                    threshold set on the ``:holdout`` audio (``--no-verifier`` skips it)
 9. ``suite``       the real-voice benchmark (``edge-eval --suite real``) for round 1 (clean
                    only) and the final model (all conditions: stage 1, the cascade and
                    stage 2 alone), when the suite has recordings of the word; otherwise
                    the command says so

Each step leaves a marker in ``OUT/steps/``; re-running the same command skips finished
steps and resumes the one that was interrupted (every step resumes on its own). The
evaluation audio of the suite never reaches training: every real folder is given as its
``:train`` half (WUW: by call session), see :mod:`train.suite`; training and mining use its
``:fit`` part, the threshold its ``:holdout`` part. Fits a 2-core CPU (the
log of each step shows its time; about 90 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.audio import SAMPLE_RATE
from edge.errors import DataError, run_guarded
from edge.helpformat import HelpFormatter
from edge.noise_floor import OFF, RECIPE_LEVEL_DBFS, parse_level

from .calibration import calibrate_threshold, round_up
from .evaluate import fire_positions, tflite_scorer
from .quiet_tf import TF_LOG_LEVEL
from .sources import ClipPool, in_split, list_audio
from .suite import ACTIVATE_TRAIN_PATTERN, GAP_SECONDS, LANGUAGE_SETS, MUSIC_SETS, WUW_KEYWORDS, default_paths, known_words, noise_spec
from .tts_cli import NEW_VOICES_DIR

STEPS_DIR = "steps"
RECIPE_FILE = "recipe.json"
TRAINING_MUSIC = ("music: drascula", "music: nexuiz", "music: singularity", "music: asterisk moh")
"""Music packages whose training halves serve as backgrounds (enough minutes, moderate memory)."""
REAL_POSITIVE_SHARE = 0.15
MINED_SHARE = 0.3
TUNE_LR = 3e-4
TUNE_COUNT_SHARE = 0.5
MEMBER_SEED_STEP = 100
"""Member k of an ensemble trains with seed + k * MEMBER_SEED_STEP (far from the other steps' seed + 1, + 2)."""
MAX_THRESHOLD = 0.999999
THRESHOLD_DIGITS = 7
ROUND1_CONDITIONS = "clean"
CHILD_STOP_SECONDS = 10.0
ABSENT_MEANS = {"new_voices": 0, "members": 1, "noise_floor_dbfs": None, "freq_warp": False, "embedding_weight": 0.0}
"""What a setting added after a work folder was made meant for that folder (its recipe.json lacks the key)."""


@dataclass(frozen=True)
class WordRecipe:
    word: str
    out: Path
    shared: Path
    debian: Path | None
    tts_positives: int = 1500
    tts_negatives: int = 900
    new_voices: int = 0
    """More TTS clips of the word, each in its own new Kokoro voice (``edge-synth tts --new-voices``). Off by default:
    measured on wildfire, stage 1 round 1, clean suite, FRR at 1 FA/h over two seeds, with 1,000 of them 54.1 and 39.6 %,
    without 42.4 and 43.0 %; the full recipe with them 56.0 % (stage 1) and 19.0 % (cascade at 0.5 FA/h) against
    50.5 and 11.0 % before; voyager's full recipe with them about as before (models/README.md, 2026-12-05)."""
    count: int = 3000
    val_count: int = 300
    epochs: int = 24
    patience: int = 4
    spec_augment: bool = True
    """SpecAugment in both training rounds (``edge-train --spec-augment``). Measured on wildfire's round 1, stage 1
    alone on the suite, clean, FRR at 0.1 / 0.5 / 1 FA/h: 8 epochs without it 80.2 / 72.6 / 55.0 %; 24 epochs
    (early stop after 14) without it 100 / 74.4 / 65.1 %; with it (stop after 17) 72.9 / 54.1 / 44.8 %."""
    freq_warp: bool = False
    """Vocal tract length perturbation of the training clips in both rounds (``edge-train --freq-warp``). Off by
    default: round 1 (two members, same data and seeds), stage 1 alone, clean suite, FRR at 1 / 2 / 5 FA/h, voyager
    56.0 / 45.0 / 32.6 -> 36.4 / 28.1 / 20.5 %, wildfire 33.5 / 20.8 / 15.2 -> 49.7 / 34.8 / 23.5 % (models/README.md,
    2026-12-06): a large gain on one word and a large loss on the other."""
    embedding_weight: float = 0.0
    """> 0: in both training rounds stage 1's first GRU also learns to predict openWakeWord's speech embedding of the
    training audio (``edge-synth embed`` after each build, ``edge-train --embedding-weight``; the device model is the
    same). Off by default: round 1 alone (one member, three seeds each, clean suite, stage 1 alone, mean FRR at 1 FA/h)
    wildfire 47.9 -> 39.6 %, athena 49.6 -> 43.6 % at weight 0.5, but the whole recipe gained nothing (wildfire's
    small recipe over two seeds 40.9 -> 40.9 % stage 1, 9.3 -> 9.05 % cascade at 0.5 FA/h; athena's full recipe
    31.6 -> 33.3 % and 13.6 -> 14.8 %; models/README.md, 2026-12-07 and 2026-12-08)."""
    tune_epochs: int = 3
    members: int = 2
    """Stage-1 models trained with other seeds and merged into one (``train.ensemble``: the mean of their logits, each
    member running as its own blocks on the device: 2 members cost 13 % more stage-1 CPU, 0.00187 against 0.00165 RTF).
    Measured on wildfire's round 1, stage 1 alone, clean suite, FRR at 1 FA/h: five single seeds 39.3-54.9 % (mean
    46.3 %), three two-member ensembles 32.1, 33.1 and 42.5 % (mean 35.9 %), each 4.6-9.6 points under the mean of its
    own members (models/README.md, 2026-12-05)."""
    mine_threshold: float = 0.5
    target_fa_per_hour: float = 0.5
    refractory: float = 2.0
    seed: int = 11
    noise_floor_dbfs: float | None = RECIPE_LEVEL_DBFS
    """The frontend's fixed noise floor (``edge.noise_floor``), in the training features and so in the model's metadata."""
    suite: bool = True
    extra_positives: tuple[str, ...] = field(default=())
    verifier: bool = True
    verifier_examples: int = 2500
    verifier_hours: float = 3.0
    """Real :fit audio for the verifier's negatives (all of it, 2.6 h, with the Debian audio). Measured against 1 h on
    the same step models, cascade FRR at 0.5 FA/h: wildfire 17.7 -> 13.0 %, computer 66.7 -> 47.4 %; 4 more minutes."""

    @property
    def name(self) -> str:
        return "_".join(self.word.lower().split())

    @classmethod
    def here(cls, word: str, out: Path | None) -> "WordRecipe":
        """The recipe for ``word`` with this machine's shared data and Debian audio (``train.suite.default_paths``):
        the sources edge-verifier and edge-enroll draw from for a model edge-word made."""
        paths = default_paths()
        return cls(word=word, out=out, shared=paths.shared, debian=paths.debian)


def real_negatives(recipe: WordRecipe, split: str = "fit") -> list[str]:
    """Real audio without the word that recipes may use: ``fit`` (train and mine on) or
    ``holdout`` (set the threshold on), the two parts of the training halves."""
    data = recipe.shared / "data"
    word = recipe.word.lower()
    said = re.sub(r"[^a-z ]", "", word).strip()  # WUW callers say other keywords' words too: not those takes
    specs = [f"{data / 'wuw' / style / k}:{split}" + (f"!{said}" if said else "")
             for k in WUW_KEYWORDS if k != word for style in ("alone", "sentence")]
    specs += [f"{data / 'speech' / 'ljspeech'}:{split}", f"{data / 'speech' / 'asterisk_prompts'}:{split}"]
    if split == "fit":  # small sets of short clips, not in the suite: all of them to training
        specs += [str(data / "speech_commands"), str(data / "precise" / "not-wake-words")]
        if word != "activate":
            specs.append(str(data / "activate" / "negatives"))
    if recipe.debian is not None:
        specs += [f"{recipe.debian / rel}:{split}" for _, _, rel in LANGUAGE_SETS]
    return specs


def music(recipe: WordRecipe, split: str) -> list[str]:
    """The training music packages' part ``split`` (a package of a few long tracks may have none)."""
    if recipe.debian is None:
        return []
    folders = [recipe.debian / rel for name, rel in MUSIC_SETS if name in TRAINING_MUSIC]
    return [f"{f}:{split}" for f in folders if f.is_dir() and any(in_split(p, split) for p in list_audio(f))]


def calibration_negatives(recipe: WordRecipe) -> list[str]:
    """Never trained or mined on: the held-out part of the training halves, speech and music."""
    return real_negatives(recipe, "holdout") + music(recipe, "holdout")


def backgrounds(recipe: WordRecipe) -> list[str]:
    data = recipe.shared / "data"
    specs = [str(data / "activate" / "backgrounds"), noise_spec(recipe.shared), f"{data / 'speech' / 'ljspeech'}:fit"]
    if recipe.debian is not None:
        specs += music(recipe, "fit") + [f"{recipe.debian / rel}:fit" for _, _, rel in LANGUAGE_SETS[::2]]
    return specs


def positives(recipe: WordRecipe) -> list[str]:
    specs = [str(recipe.out / "tts" / "positives")]
    if recipe.new_voices > 0:
        specs.append(str(recipe.out / "tts" / NEW_VOICES_DIR))
    if recipe.word.lower() == "activate":
        specs.append(f"{recipe.shared / 'data' / 'activate' / 'positives' / ACTIVATE_TRAIN_PATTERN}@{REAL_POSITIVE_SHARE}")
    return specs + list(recipe.extra_positives)


def tts_negatives(recipe: WordRecipe) -> list[str]:
    tts = recipe.out / "tts"
    return [str(tts / "hard_negatives"), str(tts / "negatives"), str(tts / "foreign")]


def _py(module: str, *args) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def _build(recipe: WordRecipe, out: str, count: int, seed: int, extra_negatives: tuple[str, ...] = ()) -> list[str]:
    return _py("train.synth_cli", "build", "--positives", *positives(recipe),
               "--negatives", *tts_negatives(recipe), *real_negatives(recipe), *extra_negatives,
               "--backgrounds", *backgrounds(recipe), "--out", recipe.out / out, "--count", count, "--seed", seed,
               "--noise-floor-dbfs", OFF if recipe.noise_floor_dbfs is None else recipe.noise_floor_dbfs)


def _convert(recipe: WordRecipe, model: Path, out: Path) -> list[str]:
    return _py("convert.convert", "--model", model, "--data", recipe.out / "ds-train", "--check", recipe.out / "ds-val",
               "--out", out, "--word", recipe.word, "--refractory", recipe.refractory)


@dataclass(frozen=True)
class Step:
    name: str
    commands: tuple[tuple[str, ...], ...]
    what: str


def _masking(recipe: WordRecipe) -> tuple[str, ...]:
    """The training-batch augmentations and the teacher both rounds use."""
    return ((("--spec-augment",) if recipe.spec_augment else ()) + (("--freq-warp",) if recipe.freq_warp else ())
            + (("--embedding-weight", str(recipe.embedding_weight)) if recipe.embedding_weight > 0 else ()))


def _embed(recipe: WordRecipe, dataset: str) -> tuple[tuple, ...]:
    """With the teacher: the speech embeddings of a training set's clips (``edge-synth embed``)."""
    return (tuple(_py("train.synth_cli", "embed", "--data", recipe.out / dataset)),) if recipe.embedding_weight > 0 else ()


def _run_dir(recipe: WordRecipe, run: str, member: int) -> Path:
    """Member 0 trains in ``run`` itself (so a one-member recipe is what it always was), member k in ``run-mK``."""
    return recipe.out / (run if member == 0 else f"{run}-m{member}")


def _round_model(recipe: WordRecipe, run: str) -> Path:
    """The Keras model a round ends with: the one run's best, or the members merged."""
    return recipe.out / run / "model.keras" if recipe.members == 1 else recipe.out / f"{run}-ensemble.keras"


def _merge(recipe: WordRecipe, run: str) -> tuple[tuple, ...]:
    if recipe.members == 1:
        return ()
    models = [_run_dir(recipe, run, k) / "model.keras" for k in range(recipe.members)]
    return (tuple(_py("train.ensemble", "--models", *models, "--out", _round_model(recipe, run))),)


def _train_members(recipe: WordRecipe, run: str, data: tuple[Path, ...], seed: int, *flags, init_from: str | None = None) -> tuple[tuple, ...]:
    """One ``edge-train`` per member (member k with seed + k * MEMBER_SEED_STEP, from its own ``init_from``
    model when fine-tuning), then the merge of their best models."""
    o = recipe.out
    return tuple(tuple(_py("train.train", "--data", *data, "--val", o / "ds-val", "--out", _run_dir(recipe, run, k),
                           *(("--init", _run_dir(recipe, init_from, k) / "model.keras") if init_from else ()), *flags,
                           "--patience", recipe.patience, "--seed", seed + k * MEMBER_SEED_STEP, *_masking(recipe)))
                 for k in range(recipe.members)) + _merge(recipe, run)


def _train_round1(recipe: WordRecipe) -> tuple[tuple, ...]:
    return _train_members(recipe, "run1", (recipe.out / "ds-train",), recipe.seed, "--epochs", recipe.epochs)


def _tune(recipe: WordRecipe) -> tuple[tuple, ...]:
    o = recipe.out
    return _train_members(recipe, "run2", (o / "ds-train", o / "ds-mined"), recipe.seed + 1,
                          "--epochs", recipe.tune_epochs, "--lr", TUNE_LR, init_from="run1")


def steps(recipe: WordRecipe) -> list[Step]:
    o, n = recipe.out, recipe.name
    round1, final = o / "round1" / f"{n}.tflite", o / f"{n}.tflite"
    mined = o / "mined"
    plan = [
        Step("tts", (tuple(_py("train.synth_cli", "tts", "--word", recipe.word, "--out", o / "tts", "--positives", recipe.tts_positives,
                               "--negatives", recipe.tts_negatives, "--new-voices", recipe.new_voices, "--seed", recipe.seed)),),
             "offline TTS clips"),
        Step("build", (tuple(_build(recipe, "ds-train", recipe.count, recipe.seed)), tuple(_build(recipe, "ds-val", recipe.val_count, recipe.seed + 1)),
                       *_embed(recipe, "ds-train")),
             "training and validation sets"),
        Step("train", _train_round1(recipe), "training, round 1" + (f" ({recipe.members} members)" if recipe.members > 1 else "")),
        Step("convert", (tuple(_convert(recipe, _round_model(recipe, "run1"), round1)),), "int8 conversion, round 1"),
        Step("mine", (tuple(_py("train.mine", "--model", round1, "--negatives", *real_negatives(recipe), "--out", mined,
                                "--threshold", recipe.mine_threshold)),), "hard negatives mined from real training audio"),
        Step("tune", (tuple(_build(recipe, "ds-mined", max(int(recipe.count * TUNE_COUNT_SHARE), 1), recipe.seed + 2, (f"{mined}@{MINED_SHARE}",))),
                      *_embed(recipe, "ds-mined"), *_tune(recipe)),
             "fine-tuning on the mined negatives, round 2"),
        Step("final", (tuple(_convert(recipe, _round_model(recipe, "run2"), final)),
                       tuple(_py("train.word", "--calibrate", final, "--out", o, "--target-fa", recipe.target_fa_per_hour,
                                 *_shared_args(recipe), recipe.word))), "final int8 model and its threshold"),
    ]
    if recipe.verifier:
        plan.append(Step("verifier", (tuple(_verifier(recipe, final)),), "the stage-2 verifier and its threshold"))
    if recipe.suite and _suite_knows(recipe.word):
        plan.append(Step("suite", (
            tuple(_py("train.evaluate", "--model", round1, "--suite", "real", "--conditions", ROUND1_CONDITIONS, "--out", o / "suite-round1")),
            tuple(_py("train.evaluate", "--model", final, "--suite", "real", "--out", o / "suite")),
        ), "the real-voice benchmark"))
    return plan


def _verifier(recipe: WordRecipe, model: Path) -> list[str]:
    data = recipe.shared / "data"
    return _py("train.verifier", "--model", model, "--out", recipe.out / "verifier", "--positives", *positives(recipe),
               "--hard-negatives", *tts_negatives(recipe), "--negatives", *real_negatives(recipe),
               "--calibration", *calibration_negatives(recipe), "--noise", noise_spec(recipe.shared), data / "activate" / "backgrounds",
               "--positive-examples", recipe.verifier_examples, "--hard-examples", max(recipe.verifier_examples * 3 // 5, 1),
               "--negative-hours", recipe.verifier_hours, "--target-fa", recipe.target_fa_per_hour, "--seed", recipe.seed)


def _shared_args(recipe: WordRecipe) -> list[str]:
    args = ["--shared", str(recipe.shared)]
    if recipe.debian is not None:
        args += ["--debian", str(recipe.debian)]
    return args


def _suite_knows(word: str) -> bool:
    return word.lower() in known_words()


def run(recipe: WordRecipe, log=None) -> int:
    log = log or sys.stderr
    marks = recipe.out / STEPS_DIR
    marks.mkdir(parents=True, exist_ok=True)
    _check_same_recipe(recipe)
    plan = steps(recipe)
    started = time.monotonic()
    for i, step in enumerate(plan, 1):
        mark = marks / f"{step.name}.done"
        if mark.is_file():
            print(f"edge-word: {i}/{len(plan)} {step.name}: done before, skipped", file=log, flush=True)
            continue
        print(f"edge-word: {i}/{len(plan)} {step.name}: {step.what}", file=log, flush=True)
        t0 = time.monotonic()
        for cmd in step.commands:
            _run_step(step.name, list(cmd))
        mark.write_text(json.dumps({"seconds": round(time.monotonic() - t0, 1)}))
        print(f"edge-word: {step.name} finished in {time.monotonic() - t0:.0f} s", file=log, flush=True)
    final = recipe.out / f"{recipe.name}.tflite"
    print(f"edge-word: {final} ready ({time.monotonic() - started:.0f} s this run); run it with: edge-run --model {final}", file=log)
    hint = suite_hint(recipe, final)
    if hint:
        print(hint, file=log)
    return 0


def suite_hint(recipe: WordRecipe, final: Path) -> str | None:
    """How to measure the model when the run did not: the suite where it knows the word, else your own recordings."""
    if not _suite_knows(recipe.word):
        return (f"edge-word: the real-voice suite has no recordings of {recipe.word!r}; measure it with "
                f"edge-eval --model {final} --positives YOUR_RECORDINGS --negatives ...")
    if not recipe.suite:
        return f"edge-word: real-voice suite skipped (--no-suite); run it with: edge-eval --model {final} --suite real"
    return None


def _check_same_recipe(recipe: WordRecipe) -> None:
    """A work folder belongs to one recipe: resuming with other settings would mix two runs."""
    path = recipe.out / RECIPE_FILE
    mine = json.loads(json.dumps(asdict(recipe), default=str))
    if path.is_file():
        old = json.loads(path.read_text())
        changed = sorted(k for k in mine if old.get(k, ABSENT_MEANS.get(k)) != mine[k])
        if changed:
            what = ", ".join(f"{k}: {json.dumps(old.get(k, ABSENT_MEANS.get(k)))} there, {json.dumps(mine[k])} now" for k in changed)
            raise DataError(f"{recipe.out} holds a run with other settings ({what}); "
                            "run it with those settings to resume it, or use a new --out")
    else:
        path.write_text(json.dumps(mine, indent=1, sort_keys=True))


def _run_step(name: str, cmd: list[str]) -> None:
    """One step's command; an interrupt of edge-word stops it too (it resumes on the next run)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)  # TensorFlow's native INFO lines stay out of the log
    proc = subprocess.Popen(cmd, env=env)
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=CHILD_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if code != 0:
        raise DataError(f"step {name!r} failed (exit {code}); fix what it said and run the same command again to resume")


# --- threshold calibration on held-out real audio --------------------------------------------


def negative_stream(negatives: list[str]) -> np.ndarray:
    """The negatives back to back with short gaps, one long stream as a device hears it (and the suite scores)."""
    pool = ClipPool.load("negative", negatives)
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.int16)
    return np.concatenate([part for clip in pool.clips for part in (np.asarray(clip, np.int16), gap)])


def calibrate(model_path: Path, negatives: list[str], target_fa_per_hour: float, refractory: float) -> dict:
    """Set the model's metadata threshold for ``target_fa_per_hour`` on real audio it never saw."""
    from edge.model import metadata_path

    stream = negative_stream(negatives)
    hours = stream.size / SAMPLE_RATE / 3600.0
    print(f"edge-word: scoring {hours:.2f} h of held-out real audio", file=sys.stderr, flush=True)
    score, _ = tflite_scorer(Path(model_path))
    step_samples, probs = score(stream)
    refractory_samples = int(refractory * SAMPLE_RATE)
    found = calibrate_threshold(step_samples, probs, hours, target_fa_per_hour, refractory_samples, MAX_THRESHOLD)
    meta_file = metadata_path(Path(model_path))
    meta = json.loads(meta_file.read_text())
    meta["detector"]["threshold"] = round_up(found.threshold, THRESHOLD_DIGITS, MAX_THRESHOLD)
    meta["calibration"] = {"target_fa_per_hour": target_fa_per_hour, "negative_hours": round(hours, 3),
                           "method": found.method, "events": found.events,
                           "firings_at_threshold": int(fire_positions(step_samples, probs, meta["detector"]["threshold"],
                                                                      refractory_samples).size),
                           "audio": "held-out part of the training halves, never trained or mined on (train.word.calibration_negatives)"}
    tmp = meta_file.with_name(meta_file.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, meta_file)
    return meta["calibration"] | {"threshold": meta["detector"]["threshold"]}


# --- command line ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    d = WordRecipe
    p = argparse.ArgumentParser(prog="edge-word", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("word", help="the wake word or phrase, as text")
    p.add_argument("--out", type=Path, help="work folder (default: data/WORD); re-run the same command to resume")
    p.add_argument("--tts-positives", type=int, default=d.tts_positives, help=f"TTS clips of the word (default {d.tts_positives})")
    p.add_argument("--tts-negatives", type=int, default=d.tts_negatives, help=f"TTS negative clips (default {d.tts_negatives})")
    p.add_argument("--new-voices", type=int, default=d.new_voices,
                   help=f"more TTS clips of the word, each in its own new Kokoro voice (default {d.new_voices})")
    p.add_argument("--count", type=int, default=d.count, help=f"10 s training clips (default {d.count})")
    p.add_argument("--val-count", type=int, default=d.val_count, help=f"validation clips (default {d.val_count})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs, round 1 (default {d.epochs})")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"stop training after this many epochs without a better validation loss (default {d.patience})")
    p.add_argument("--no-spec-augment", action="store_true", help="train without SpecAugment (masked time and channel bands)")
    p.add_argument("--freq-warp", action="store_true",
                   help="warp the training clips' channels as if their talkers' vocal tracts were 10 %% shorter or longer "
                        "(off by default: it helped one word and hurt another; see models/README.md)")
    p.add_argument("--embedding-weight", type=float, default=d.embedding_weight, metavar="W",
                   help="> 0: stage 1 also learns to predict openWakeWord's speech embedding of its training audio, with this "
                        f"weight (training only; 0.5 measured; default {d.embedding_weight:g}, off: see models/README.md)")
    p.add_argument("--tune-epochs", type=int, default=d.tune_epochs, help=f"fine-tuning epochs, round 2 (default {d.tune_epochs})")
    p.add_argument("--members", type=int, default=d.members,
                   help=f"stage-1 models trained with other seeds and merged into one ensemble (default {d.members})")
    p.add_argument("--target-fa", type=float, default=d.target_fa_per_hour,
                   help=f"false accepts per hour the threshold is set for, on real training audio (default {d.target_fa_per_hour})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random choice (default {d.seed})")
    p.add_argument("--noise-floor-dbfs", default=d.noise_floor_dbfs, metavar="DBFS",
                   help="the frontend's fixed noise floor, in training and on the device"
                        + ("" if d.noise_floor_dbfs is None else f" (default {d.noise_floor_dbfs:g}; 'off' for none)"))
    p.add_argument("--positives", nargs="+", default=[], metavar="DIR",
                   help="your own recordings of the word to add (DIR@SHARE gives them a share of the draws)")
    p.add_argument("--no-suite", action="store_true", help="skip the real-voice benchmark at the end")
    p.add_argument("--no-verifier", action="store_true", help="skip the stage-2 verifier (stage 1 alone)")
    p.add_argument("--verifier-examples", type=int, default=d.verifier_examples,
                   help=f"words in context for the verifier (default {d.verifier_examples})")
    p.add_argument("--verifier-hours", type=float, default=d.verifier_hours,
                   help=f"hours of real training audio the verifier learns negatives from (default {d.verifier_hours:g})")
    p.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared or $TRIGGER_EDGE_SHARED)")
    p.add_argument("--debian", type=Path, help="Debian audio root from scripts/fetch_eval_audio.sh (default: found in the cache)")
    p.add_argument("--calibrate", type=Path, metavar="MODEL", help=argparse.SUPPRESS)
    return p


LEAST = {"tts_positives": 1, "tts_negatives": 0, "new_voices": 0, "count": 1, "val_count": 1, "epochs": 1, "patience": 0, "tune_epochs": 1, "members": 1,
         "verifier_examples": 1}
"""The smallest value each whole-number option takes; checked before any step runs, so a typo costs no TTS time."""
ABOVE_ZERO = ("target_fa", "verifier_hours")


def _check_numbers(args: argparse.Namespace) -> None:
    for name, least in LEAST.items():
        if getattr(args, name) < least:
            raise DataError(f"--{name.replace('_', '-')} must be at least {least}, not {getattr(args, name)}")
    if not args.embedding_weight >= 0:
        raise DataError(f"--embedding-weight must be 0 (off) or more, not {args.embedding_weight:g}")
    for name in ABOVE_ZERO:
        if not getattr(args, name) > 0:
            raise DataError(f"--{name.replace('_', '-')} must be above 0, not {getattr(args, name)}")


def _floor(value) -> float | None:
    """--noise-floor-dbfs: a level in range or 'off'; a DataError (one line) otherwise."""
    if value is None or isinstance(value, float):
        return value
    try:
        return parse_level(value)
    except ValueError as exc:
        raise DataError(f"--noise-floor-dbfs {exc}") from None


def recipe_from(args: argparse.Namespace) -> WordRecipe:
    _check_numbers(args)
    word = " ".join(args.word.split())
    if not word or not any(ch.isalpha() for ch in word):
        raise DataError(f"{args.word!r} is not a word to train")
    if not any("a" <= ch <= "z" for ch in word.lower()):  # found before the TTS step, not by it
        raise DataError(f"{args.word!r} has no letters a-z: the offline voices read English spelling; "
                        "write the word as it sounds in Latin letters")
    found = default_paths()
    shared = args.shared or found.shared
    if not (shared / "data").is_dir():
        raise DataError(f"{shared}: no shared data folder here (set --shared or TRIGGER_EDGE_SHARED)")
    debian = args.debian or found.debian
    recipe = WordRecipe(word=word, out=args.out or Path("data") / "_".join(word.lower().split()), shared=shared, debian=debian,
                        tts_positives=args.tts_positives, tts_negatives=args.tts_negatives, new_voices=args.new_voices, count=args.count, val_count=args.val_count,
                        epochs=args.epochs, patience=args.patience, spec_augment=not args.no_spec_augment, freq_warp=args.freq_warp,
                        tune_epochs=args.tune_epochs, members=args.members, embedding_weight=args.embedding_weight, target_fa_per_hour=args.target_fa, seed=args.seed,
                        noise_floor_dbfs=_floor(args.noise_floor_dbfs),
                        suite=not args.no_suite, extra_positives=tuple(args.positives), verifier=not args.no_verifier,
                        verifier_examples=args.verifier_examples, verifier_hours=args.verifier_hours)
    return replace(recipe, out=recipe.out.resolve())


def _command(args: argparse.Namespace) -> int:
    recipe = recipe_from(args)
    if args.calibrate:
        result = calibrate(args.calibrate, calibration_negatives(recipe), recipe.target_fa_per_hour, recipe.refractory)
        print(f"edge-word: threshold {result['threshold']} for {result['target_fa_per_hour']:g} FA/h on "
              f"{result['negative_hours']:.2f} h of held-out real audio", file=sys.stderr)
        return 0
    if recipe.debian is None:
        print("edge-word: warning: no Debian speech and music (run bash scripts/fetch_eval_audio.sh): "
              "training without the multilingual real negatives", file=sys.stderr)
    return run(recipe)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code, result = run_guarded("edge-word", _command, args, resumable=True)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
