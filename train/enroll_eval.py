"""Does enrollment help, and does it cost false accepts? Measured on real people.

    python -m train.enroll_eval --model models/activate.tflite --out eval-enroll
    python -m train.enroll_eval --model data/voyager/voyager.tflite --out eval-enroll-voyager --callers 40

* ``activate``: leave one out over the held-out speaker's takes (``ite5th__*``, one person):
  enroll with the others, test on the one left out.
* a WUW keyword: each call session is one caller; enroll with the caller's take of the word
  said alone (one take plus augmented copies), test on the same caller's take inside a
  sentence (scored in place).

Each test take runs through the device's cascade (stage 1 unchanged; the verifier before
enrolment, and after it as ``edge-enroll`` ships it: the original head, and the adapted head
behind the speaker gate set on the held-out audio, all at the model's verifier threshold) with
real speech before it, as the suite places words. The adapted head alone is scored beside it.
False accepts: the suite's negatives (clean) go through stage 1 once; the windows where it
opens candidates are scored by every adapted head (and the gate hears the audio before those
it is asked about), so FA/h before and after are on the same ~6.8 h. Heads are adapted
(``EnrollConfig``'s copies, negative hours and epochs) and converted to int8 as ``edge-enroll``
does; a fold's head from an earlier run in the same folder is reused. Until 2026-12-07 they
were adapted more lightly (20 copies, 0.1 h, 4 epochs): on 40 WUW callers of a small wildfire
model that recovered 3 of 4 missed words unguarded where edge-enroll's own settings recover 1,
at 0.84 against 0.62 FA/h (0.49 before; models/README.md, seventeenth session), so the card's
earlier enrolment figures overstate what enrolment gains and what it costs alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge.audio import SAMPLE_RATE, read_audio
from edge.embedding import SpeechEmbedding
from edge.errors import DataError, run_guarded
from edge.speaker import SpeakerEncoder, SpeakerGate, SpeakerGateConfig
from edge.verifier import EnrolledHead, VerifierHead, load_verifier

from .enroll import (CandidateWindows, Candidates, EnrollConfig, adapt_head, conversion_check, default_held_out, default_negatives,
                     enrolled_voice, gate_on, negative_windows, take_windows)
from .evaluate import REFRACTORY_SECONDS, count_events, fire_positions
from .quiet_tf import quiet_tensorflow
from .sources import ClipPool, read_labels, trim_silence
from .speaker_tflite import convert_encoder
from .speakers import bundled_encoder
from .suite import AFTER_SECONDS, CONTEXT_SECONDS, SuitePaths, default_paths, negative_sets, noise_spec, wuw_span
from .verifier import Augmenter, convert_head, negative_stream

SEED = 17
FA_CACHE = "fa-windows.npz"
GUARD_CACHE = "guard-windows.npz"
SPEAKER_ENCODER = "speaker.tflite"


class Scorer(CandidateWindows):
    """Stage 1 + the model's verifier head over one stream, the way the suite scores the cascade."""

    def __init__(self, model: Path) -> None:
        meta = json.loads(model.with_suffix(".json").read_text())
        self.head, config, _ = load_verifier(model, meta["verifier"])
        super().__init__(model, config, SpeechEmbedding())


def in_context(word: np.ndarray, context: np.ndarray, index: int) -> tuple[np.ndarray, tuple[int, int]]:
    ctx = int(CONTEXT_SECONDS * SAMPLE_RATE)
    offset = (index * ctx) % max(context.size - ctx, 1)
    audio = np.concatenate([context[offset: offset + ctx], word, np.zeros(int(AFTER_SECONDS * SAMPLE_RATE), np.int16)])
    return audio, (ctx, ctx + word.size)


def detected(scores: np.ndarray, threshold: float, candidates: Candidates, span: tuple[int, int]) -> bool:
    fired = fire_positions(candidates.positions, scores, threshold, int(REFRACTORY_SECONDS * SAMPLE_RATE))
    return bool(count_events(fired, [span]).hit_words[0])


def trials(word: str, paths: SuitePaths, callers: int) -> list[tuple[str, list[np.ndarray], np.ndarray, np.ndarray | None]]:
    """(who, enrollment takes, test word audio, the test clip it sits in or None)."""
    data = paths.shared / "data"
    if word == "activate":
        takes = [trim_silence(read_audio(p)) for p in sorted((data / "activate" / "positives").glob("ite5th__*.wav"))]
        return [(f"ite5th take {i + 1}", takes[:i] + takes[i + 1:], takes[i], None) for i in range(len(takes))]
    labels = read_labels(data / "wuw")
    by_session: dict[str, dict] = {}
    for rel, info in labels.items():
        if info["keyword"] == word and wuw_span(info) is not None:  # an untimed take may hold no word at all
            by_session.setdefault(info["session"], {})["alone" if rel.startswith("alone/") else "sentence"] = (rel, info)
    out = []
    for session in sorted(by_session):
        pair = by_session[session]
        if "alone" not in pair or "sentence" not in pair:
            continue
        take = trim_silence(read_audio(data / "wuw" / pair["alone"][0]))
        rel, info = pair["sentence"]
        clip = read_audio(data / "wuw" / rel)
        out.append((f"caller {session}", [take], clip, np.array(wuw_span(info))))
        if len(out) >= callers:
            break
    return out


def run(model: Path, out: Path, callers: int, log=sys.stderr) -> dict:
    paths = default_paths()
    meta = json.loads(model.with_suffix(".json").read_text())
    word = meta["word"]
    scorer = Scorer(model)
    threshold = scorer.config.threshold
    rng = np.random.default_rng(SEED)
    data = paths.shared / "data"
    negatives = tuple(default_negatives(model))  # what edge-enroll adapts against
    config = EnrollConfig(model=model, out=out, takes=(), negatives=negatives)  # and how: its copies, hours and epochs
    stream = negative_stream(negatives, config.negative_hours, rng)
    augment = Augmenter(ClipPool.load("noise", [noise_spec(paths.shared)]).clips, SEED)
    neg = negative_windows(config, scorer.config, scorer.emb, augment, rng, stream)
    print("enroll-eval: candidate windows on the suite's negatives", file=log, flush=True)
    fa_sets, fa_audio, hours = suite_candidates(scorer, word, paths, out)
    held, guard = held_out_candidates(scorer, model, out, rng, log)
    encoder = speaker_encoder(out, stream)
    context = np.concatenate([c for c in ClipPool.load("context", [f"{data / 'speech' / 'ljspeech'}:eval"]).clips])
    ref = int(REFRACTORY_SECONDS * SAMPLE_RATE)

    originals = [c.scores(scorer.head, scorer.config) for c in fa_sets]

    def fa_per_hour(head: VerifierHead, enrolled: EnrolledHead | None = None) -> float:
        fired = 0
        for c, audio, original in zip(fa_sets, fa_audio, originals):
            scores = original if head is scorer.head else c.scores(head, scorer.config)
            if enrolled is not None:
                scores = enrolled.choose_track(c.positions, original, scores, audio)
            fired += fire_positions(c.positions, scores, threshold, ref).size
        return fired / hours

    rows, failed = [], []
    base_fa = fa_per_hour(scorer.head)
    for i, (who, takes, test, span) in enumerate(trials(word, paths, callers)):
        audio, where = in_context(test, context, i) if span is None else (test, tuple(span))
        candidates = scorer.of(audio)
        before = detected(candidates.scores(scorer.head, scorer.config), threshold, candidates, where)
        work = out / f"fold{i}"
        try:
            adapted = adapted_head(model, meta, scorer, takes, stream, neg, augment, config, work, i)
        except DataError as exc:  # edge-enroll refuses such a head too: count it, and go on with the next caller
            failed.append({"who": who, "error": str(exc)})
            print(f"enroll-eval: {who}: not enrolled ({exc})", file=log, flush=True)
            continue
        voice = enrolled_voice(encoder, tuple(takes))
        gate = gate_on(held, guard, scorer.config, scorer.head, adapted, encoder, voice)
        enrolled = EnrolledHead(adapted, SpeakerGate(encoder, SpeakerGateConfig(tuple(voice.tolist()), gate["threshold"])), threshold)
        alone = candidates.scores(adapted, scorer.config)
        gated = enrolled.choose_track(candidates.positions, candidates.scores(scorer.head, scorer.config), alone, audio)
        row = {"who": who, "takes": len(takes), "before": before, "after_alone": detected(alone, threshold, candidates, where),
               "fa_per_hour_after_alone": round(fa_per_hour(adapted), 3), "gate_threshold": gate["threshold"],
               "after": detected(gated, threshold, candidates, where), "fa_per_hour_after": round(fa_per_hour(adapted, enrolled), 3)}
        rows.append(row)
        print(f"enroll-eval: {who}: detected before {before}, after {row['after']} (adapted head alone: {row['after_alone']}); "
              f"FA/h after {row['fa_per_hour_after']} (alone {row['fa_per_hour_after_alone']})", file=log, flush=True)
    n = len(rows)

    def share(key: str) -> float | None:
        return sum(not r[key] for r in rows) / n if n else None

    def mean(key: str) -> float | None:
        return round(float(np.mean([r[key] for r in rows])), 3) if n else None

    result = {"model": str(model), "word": word, "threshold": threshold, "negative_hours": round(hours, 2), "trials": n,
              "not_enrolled": failed, "frr_before": share("before"), "fa_per_hour_before": round(base_fa, 3),
              "frr_after": share("after"), "fa_per_hour_after_mean": mean("fa_per_hour_after"),
              "fa_per_hour_after_max": max((r["fa_per_hour_after"] for r in rows), default=None),
              "frr_after_alone": share("after_alone"), "fa_per_hour_after_alone_mean": mean("fa_per_hour_after_alone"),
              "fa_per_hour_after_alone_max": max((r["fa_per_hour_after_alone"] for r in rows), default=None),
              "guard_hours": round(held.size / SAMPLE_RATE / 3600, 3), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "enroll-eval.json").write_text(json.dumps(result, indent=1))
    return result


def speaker_encoder(out: Path, stream: np.ndarray) -> SpeakerEncoder:
    """The gate's TFLite encoder, converted as edge-enroll converts it (once per folder)."""
    path = out / SPEAKER_ENCODER
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        convert_encoder(bundled_encoder(), path, conversion_check((), stream))
    return SpeakerEncoder(path)


def adapted_head(model: Path, meta: dict, scorer: Scorer, takes: list[np.ndarray], stream: np.ndarray, neg: np.ndarray,
                 augment: Augmenter, config: EnrollConfig, work: Path, fold: int) -> VerifierHead:
    """The caller's adapted int8 head, as edge-enroll makes it; a fold's head from an earlier run is reused
    (each fold draws from its own seed, so a resumed run adapts the rest as a fresh one would)."""
    head_file = work / "head.tflite"
    if not head_file.is_file():
        rng = np.random.default_rng([SEED, fold])
        pos = take_windows(takes, config.copies, stream, scorer.config, scorer.emb, augment, rng)
        keras_head = adapt_head(model, meta["verifier"], scorer.config.window, pos, neg, config.epochs, SEED + fold)
        work.mkdir(parents=True, exist_ok=True)
        keras_head.save(work / "head.keras")
        convert_head(work / "head.keras", {"positives": pos, "dense": neg, "mined": neg}, work / "partial.tflite")
        (work / "partial.tflite").replace(head_file)
    return VerifierHead(head_file, window=scorer.config.window, score_scale=scorer.config.score_scale)


def suite_candidates(scorer: Scorer, word: str, paths: SuitePaths, out: Path) -> tuple[list[Candidates], list[np.ndarray], float]:
    """The suite's clean negatives: their audio, and the candidate windows on it (computed once, cached)."""
    audio = [np.concatenate([c.audio for c in s.load()] or [np.zeros(0, np.int16)]) for s in negative_sets(word, paths)]
    hours = sum(a.size for a in audio) / SAMPLE_RATE / 3600
    cache = out / FA_CACHE
    saved = np.load(cache) if cache.is_file() else None
    if saved is not None and "k0" in saved and int(saved["sets"]) == len(audio):
        return [Candidates(saved[f"p{i}"], saved[f"w{i}"], saved[f"k{i}"]) for i in range(len(audio))], audio, hours
    fa_sets = [scorer.of(a) for a in audio]
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"{k}{i}": v for i, c in enumerate(fa_sets) for k, v in (("p", c.positions), ("w", c.windows), ("k", c.peaks))}
    np.savez(cache, hours=hours, sets=len(fa_sets), **arrays)
    return fa_sets, audio, hours


def held_out_candidates(scorer: Scorer, model: Path, out: Path, rng: np.random.Generator, log) -> tuple[np.ndarray, Candidates]:
    """edge-enroll's default held-out audio (the speaker gate is set on it) and the cascade's candidates there (cached)."""
    from .enroll import GUARD_HOURS

    held = negative_stream(tuple(default_held_out(model)), GUARD_HOURS, rng)
    cache = out / GUARD_CACHE
    saved = np.load(cache) if cache.is_file() else None
    if saved is not None and "peaks" in saved and abs(float(saved["hours"]) - held.size / SAMPLE_RATE / 3600) < 1e-9:
        return held, Candidates(saved["positions"], saved["windows"], saved["peaks"])
    print("enroll-eval: candidate windows on the held-out audio (the speaker gate's)", file=log, flush=True)
    found = scorer.of(held)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(cache, positions=found.positions, windows=found.windows, peaks=found.peaks, hours=held.size / SAMPLE_RATE / 3600)
    return held, found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="enroll-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a model with a verifier")
    p.add_argument("--out", type=Path, required=True, help="folder for enroll-eval.json and the adapted heads")
    p.add_argument("--callers", type=int, default=40, help="WUW words: how many callers (call sessions) to enroll (default 40)")
    args = p.parse_args(argv)
    quiet_tensorflow()
    code, result = run_guarded("enroll-eval", run, args.model, args.out, args.callers)
    if code is not None:
        return code
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
