"""Does enrollment help, and does it cost false accepts? Measured on real people.

    python -m train.enroll_eval --model models/activate.tflite --out eval-enroll
    python -m train.enroll_eval --model data/voyager/voyager.tflite --out eval-enroll-voyager --callers 40

* ``activate``: leave one out over the held-out speaker's takes (``ite5th__*``, one person):
  enroll with the others, test on the one left out.
* a WUW keyword: each call session is one caller; enroll with the caller's take of the word
  said alone (one take plus augmented copies), test on the same caller's take inside a
  sentence (scored in place).

Each test take runs through the device's cascade (stage 1 unchanged, the verifier before
and after adaptation, both at the model's verifier threshold) with real speech before it,
as the suite places words. False accepts: the suite's negatives (clean) go through stage 1
once; the windows where it opens candidates are scored by every adapted head, so FA/h
before and after are on the same ~6.8 h. Heads are adapted (``EnrollConfig``'s copies, negative
hours and epochs) and converted to int8 as ``edge-enroll`` does. Until 2026-12-07 they were adapted
more lightly (20 copies, 0.1 h, 4 epochs): on 40 WUW callers of a small wildfire model that
recovered 3 of 4 missed words unguarded where edge-enroll's own settings recover 1, at 0.84
against 0.62 FA/h (0.49 before; models/README.md, seventeenth session), so the card's earlier
enrolment figures overstate what enrolment gains and what it costs alike.
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
from edge.verifier import VerifierConfig, VerifierHead, load_verifier

from .enroll import (CandidateWindows, Candidates, EnrollConfig, adapt_head, default_held_out, default_negatives, guard_threshold,
                     negative_windows, take_windows)
from .evaluate import REFRACTORY_SECONDS, count_events, fire_positions
from .quiet_tf import quiet_tensorflow
from .sources import ClipPool, read_labels, trim_silence
from .suite import AFTER_SECONDS, CONTEXT_SECONDS, SuitePaths, default_paths, negative_sets, noise_spec, wuw_span
from .verifier import Augmenter, convert_head, negative_stream

SEED = 17
FA_CACHE = "fa-windows.npz"
GUARD_CACHE = "guard-windows.npz"


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


def detected(head: VerifierHead, config: VerifierConfig, threshold: float, candidates: Candidates, span: tuple[int, int]) -> bool:
    fired = fire_positions(candidates.positions, candidates.scores(head, config), threshold, int(REFRACTORY_SECONDS * SAMPLE_RATE))
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
    # the suite's negatives (clean): candidate windows once, scored by every head
    print("enroll-eval: candidate windows on the suite's negatives", file=log, flush=True)
    cache = out / FA_CACHE
    saved = np.load(cache) if cache.is_file() else None
    if saved is not None and "k0" in saved:  # resumed: the candidate windows do not depend on the heads
        hours = float(saved["hours"])
        fa_sets = [Candidates(saved[f"p{i}"], saved[f"w{i}"], saved[f"k{i}"]) for i in range(int(saved["sets"]))]
    else:
        fa_sets, hours = [], 0.0
        for s in negative_sets(word, paths):
            audio = np.concatenate([c.audio for c in s.load()] or [np.zeros(0, np.int16)])
            hours += audio.size / SAMPLE_RATE / 3600
            fa_sets.append(scorer.of(audio))
        out.mkdir(parents=True, exist_ok=True)
        arrays = {f"{k}{i}": v for i, c in enumerate(fa_sets) for k, v in (("p", c.positions), ("w", c.windows), ("k", c.peaks))}
        np.savez(cache, hours=hours, sets=len(fa_sets), **arrays)
    guard, guard_hours = held_out_candidates(scorer, model, out, rng, log)
    context = np.concatenate([c for c in ClipPool.load("context", [f"{data / 'speech' / 'ljspeech'}:eval"]).clips])
    ref = int(REFRACTORY_SECONDS * SAMPLE_RATE)

    def fa_per_hour(head: VerifierHead, at: float = threshold) -> float:
        fired = sum(fire_positions(c.positions, c.scores(head, scorer.config), at, ref).size for c in fa_sets)
        return fired / hours

    rows, failed = [], []
    base_fa = fa_per_hour(scorer.head)
    for i, (who, takes, test, span) in enumerate(trials(word, paths, callers)):
        audio, where = in_context(test, context, i) if span is None else (test, tuple(span))
        candidates = scorer.of(audio)
        before = detected(scorer.head, scorer.config, threshold, candidates, where)
        pos = take_windows(takes, config.copies, stream, scorer.config, scorer.emb, augment, rng)
        keras_head = adapt_head(model, meta["verifier"], scorer.config.window, pos, neg, config.epochs, SEED + i)
        work = out / f"fold{i}"
        work.mkdir(parents=True, exist_ok=True)
        keras_head.save(work / "head.keras")
        try:
            convert_head(work / "head.keras", {"positives": pos, "dense": neg, "mined": neg}, work / "head.tflite")
        except DataError as exc:  # edge-enroll refuses such a head too: count it, and go on with the next caller
            failed.append({"who": who, "error": str(exc)})
            print(f"enroll-eval: {who}: not enrolled ({exc})", file=log, flush=True)
            continue
        adapted = VerifierHead(work / "head.tflite", window=scorer.config.window, score_scale=scorer.config.score_scale)
        after = detected(adapted, scorer.config, threshold, candidates, where)
        guarded = guard_threshold(scorer.head, adapted, scorer.config, threshold, guard)["threshold"]
        row = {"who": who, "takes": len(takes), "before": before, "after": after, "fa_per_hour_after": round(fa_per_hour(adapted), 3),
               "guarded_threshold": guarded, "after_guarded": detected(adapted, scorer.config, guarded, candidates, where),
               "fa_per_hour_after_guarded": round(fa_per_hour(adapted, guarded), 3)}
        rows.append(row)
        print(f"enroll-eval: {who}: detected before {before}, after {after} (guarded, at {guarded}: {row['after_guarded']}); "
              f"FA/h after {row['fa_per_hour_after']} (guarded {row['fa_per_hour_after_guarded']})", file=log, flush=True)
    n = len(rows)
    result = {"model": str(model), "word": word, "threshold": threshold, "negative_hours": round(hours, 2), "trials": n,
              "not_enrolled": failed,
              "frr_before": sum(not r["before"] for r in rows) / n if n else None,
              "frr_after": sum(not r["after"] for r in rows) / n if n else None,
              "fa_per_hour_before": round(base_fa, 3),
              "fa_per_hour_after_mean": round(float(np.mean([r["fa_per_hour_after"] for r in rows])), 3) if n else None,
              "fa_per_hour_after_max": max((r["fa_per_hour_after"] for r in rows), default=None),
              "frr_after_guarded": sum(not r["after_guarded"] for r in rows) / n if n else None,
              "fa_per_hour_after_guarded_mean": round(float(np.mean([r["fa_per_hour_after_guarded"] for r in rows])), 3) if n else None,
              "fa_per_hour_after_guarded_max": max((r["fa_per_hour_after_guarded"] for r in rows), default=None),
              "guard_hours": round(guard_hours, 3), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "enroll-eval.json").write_text(json.dumps(result, indent=1))
    return result


def held_out_candidates(scorer: Scorer, model: Path, out: Path, rng: np.random.Generator, log) -> tuple[Candidates, float]:
    """The cascade's candidates on edge-enroll's default held-out audio (its threshold guard), once."""
    from .enroll import GUARD_HOURS

    cache = out / GUARD_CACHE
    saved = np.load(cache) if cache.is_file() else None
    if saved is not None and "peaks" in saved:
        return Candidates(saved["positions"], saved["windows"], saved["peaks"]), float(saved["hours"])
    print("enroll-eval: candidate windows on the held-out audio (the threshold guard)", file=log, flush=True)
    held = negative_stream(tuple(default_held_out(model)), GUARD_HOURS, rng)
    found = scorer.of(held)
    hours = held.size / SAMPLE_RATE / 3600
    out.mkdir(parents=True, exist_ok=True)
    np.savez(cache, positions=found.positions, windows=found.windows, peaks=found.peaks, hours=hours)
    return found, hours


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
