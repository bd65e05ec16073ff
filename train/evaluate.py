"""edge-eval: false rejects and false accepts per hour on long streams, the device's way.

    edge-eval --model models/activate.tflite --positives DIR --negatives DIR [DIR ...] \
              [--backgrounds DIR --snr 10] [--out DIR] [--json]

Two streams are built from the clips: a *positive* stream where each positive clip sits
between snippets of negative audio, and a *negative* stream of all negative clips end to
end; with ``--backgrounds`` both are mixed over background noise at ``--snr`` dB. The
model runs over them exactly as on the device (``.tflite``: frontend + StreamingModel
step by step; ``.keras``: the float sequence model on the same frames). A firing between
a word's start and 1 s after its end is a hit; every other firing is a false accept.
The threshold is swept; FRR at 0.1 / 0.5 / 1 FA/h, the latency from word end to firing
and a DET curve (PNG) are reported, and every figure goes into ``OUT/eval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.audio import SAMPLE_RATE, clip_int16
from edge.detector import Detector, DetectorConfig
from edge.errors import DataError, ModelError, run_guarded
from edge.geometry import DEFAULT_GEOMETRY
from edge.helpformat import HelpFormatter
from edge.level import LevelConfig

HIT_AFTER_END_SECONDS = 1.0
CONTEXT_SECONDS = 1.5
NEGATIVE_GAP_SECONDS = 0.25
REFRACTORY_SECONDS = 2.0
FA_TARGETS = (0.1, 0.5, 1.0)
THRESHOLDS = tuple(np.round(np.concatenate([np.arange(0.02, 0.9, 0.02), np.arange(0.9, 0.999, 0.005)]), 4))
SECONDS_PER_HOUR = 3600.0


@dataclass
class Stream:
    """Audio plus the (start, end) samples of every positive word in it."""

    audio: np.ndarray
    words: list[tuple[int, int]] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.audio.size / SAMPLE_RATE / SECONDS_PER_HOUR


def fire_positions(step_samples: np.ndarray, probs: np.ndarray, threshold: float, refractory_samples: int) -> np.ndarray:
    """Sample positions where the device's ``Detector`` (no smoothing) fires.

    Only steps at or above the threshold are fed to it: with no smoothing, the others can
    neither fire nor change its state, so the result is the same and a sweep stays fast.
    """
    detector = Detector(DetectorConfig(threshold=threshold, refractory_seconds=refractory_samples / SAMPLE_RATE))
    fired = []
    for i in np.flatnonzero(probs >= threshold):
        if detector.process(float(probs[i]), int(step_samples[i])) is not None:
            fired.append(int(step_samples[i]))
    return np.asarray(fired, dtype=np.int64)


@dataclass(frozen=True)
class Counts:
    hits: int
    misses: int
    false_accepts: int
    latencies: tuple[float, ...]
    hit_words: tuple[bool, ...] = ()
    """One entry per word, in order: was it hit."""


def count_events(fired: np.ndarray, words: list[tuple[int, int]], hit_after: int = int(HIT_AFTER_END_SECONDS * SAMPLE_RATE)) -> Counts:
    """A word is hit by the first firing in [start, end + hit_after]; other firings are false accepts."""
    used = np.zeros(fired.size, dtype=bool)
    hits, latencies, hit_words = 0, [], []
    for start, end in words:
        inside = np.flatnonzero((fired >= start) & (fired <= end + hit_after))
        hit_words.append(bool(inside.size))
        if inside.size:
            hits += 1
            used[inside] = True
            latencies.append((fired[inside[0]] - end) / SAMPLE_RATE)
    return Counts(hits, len(words) - hits, int((~used).sum()), tuple(latencies), tuple(hit_words))


def _mix_background(audio: np.ndarray, backgrounds, snr_db: float, rng) -> np.ndarray:
    from train.augment import rms

    x = audio.astype(np.float64)
    bg = np.concatenate([backgrounds.clips[i].astype(np.float64) for i in rng.permutation(len(backgrounds))])
    bg = np.tile(bg, x.size // bg.size + 1)[: x.size]
    speech_rms = rms(x[np.abs(x) > 0]) if np.any(x) else 1.0
    bg *= speech_rms / rms(bg) / 10 ** (snr_db / 20.0)
    return clip_int16(x + bg)


def build_streams(positives, negatives, backgrounds=None, snr_db: float = 10.0, seed: int = 0) -> tuple[Stream, Stream]:
    rng = np.random.default_rng(seed)
    ctx = int(CONTEXT_SECONDS * SAMPLE_RATE)
    gap = np.zeros(int(NEGATIVE_GAP_SECONDS * SAMPLE_RATE), np.int16)
    neg_audio = np.concatenate([np.concatenate([c, gap]) for c in negatives.clips])
    parts, words, pos = [], [], 0
    for i, clip in enumerate(positives.clips):
        offset = (i * 2 * ctx) % max(neg_audio.size - 2 * ctx, 1)
        before = neg_audio[offset : offset + ctx]
        after = np.zeros(ctx, np.int16)
        parts += [before, clip, after]
        words.append((pos + before.size, pos + before.size + clip.size))
        pos += before.size + clip.size + after.size
    pos_stream = Stream(np.concatenate(parts), words)
    neg_stream = Stream(neg_audio)
    if backgrounds is not None:
        pos_stream.audio = _mix_background(pos_stream.audio, backgrounds, snr_db, rng)
        neg_stream.audio = _mix_background(neg_stream.audio, backgrounds, snr_db, rng)
    return pos_stream, neg_stream


def tflite_scorer(path: Path, level: LevelConfig | None = None):
    """The device path's probabilities over a stream; ``level`` (an ``edge.level.LevelConfig``) puts the level
    control in front of the model's frontend whether or not its metadata has one (``edge-eval --level-control``)."""
    from edge.features import Frontend
    from edge.model import StreamingModel

    model = StreamingModel(path)
    frontend_config = model.metadata.frontend_config if level is None else model.metadata.frontend_config.with_level(level)

    def score(audio: np.ndarray, warmup_seconds: float = 0.0, warmup_audio: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities over ``audio``; with a warm-up, the model and frontend first run
        (never reset) over ``warmup_seconds`` of ``warmup_audio`` tiled, as on a device
        that has been listening that long."""
        model.reset()
        frontend = Frontend(frontend_config)
        chunk = SAMPLE_RATE * 10
        fed = 0
        total = int(warmup_seconds * SAMPLE_RATE)
        while warmup_audio is not None and fed < total:
            offset = fed % warmup_audio.size
            part = warmup_audio[offset : offset + min(chunk, total - fed)]
            model.process(frontend.process(part))
            fed += part.size
        first_step = model.steps
        probs = []
        for i in range(0, audio.size, chunk):
            probs.append(model.process(frontend.process(audio[i : i + chunk])))
        p = np.concatenate(probs) if probs else np.zeros(0)
        steps = _step_samples(first_step + p.size)[first_step:] - total
        return steps, p

    return score, model.metadata.detector.get("threshold", 0.5)


def keras_scorer(path: Path):
    """The float sequence model on frames of the frontend it was trained with: the noise floor of its
    run's ``train_config.json`` (edge-train writes it beside ``model.keras``); none without one."""
    from convert.convert import load_keras
    from edge.features import DEFAULT_FRONTEND, NOISE_FLOOR_KEY, compute_features, to_model_input

    model = load_keras(path)
    record = Path(path).parent / "train_config.json"
    trained = json.loads(record.read_text()).get("frontend", {}) if record.is_file() else {}
    frontend = DEFAULT_FRONTEND.with_noise_floor(trained.get(NOISE_FLOOR_KEY))

    def score(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = to_model_input(compute_features(audio, frontend))[None]
        p = model.predict(x, verbose=0)[0, :, 0]
        return _step_samples(p.size), p

    return score, 0.5


def _step_samples(n: int) -> np.ndarray:
    g = DEFAULT_GEOMETRY
    return g.step_end_sample(0) + g.step_samples * np.arange(n, dtype=np.int64)


def sweep(pos_scores, neg_scores, pos_stream: Stream, neg_hours: float, refractory: float = REFRACTORY_SECONDS) -> list[dict]:
    """FRR and FA/h for every threshold (FAs from both streams, over all non-word time)."""
    ref = int(refractory * SAMPLE_RATE)
    word_hours = sum(e - s for s, e in pos_stream.words) / SAMPLE_RATE / SECONDS_PER_HOUR
    hours = neg_hours + pos_stream.hours - word_hours
    rows = []
    for t in THRESHOLDS:
        pc = count_events(fire_positions(*pos_scores, t, ref), pos_stream.words)
        nc = count_events(fire_positions(*neg_scores, t, ref), [])
        n_words = len(pos_stream.words)
        rows.append(
            {
                "threshold": float(t),
                "frr": pc.misses / n_words if n_words else 0.0,
                "fa_per_hour": (pc.false_accepts + nc.false_accepts) / hours if hours > 0 else 0.0,
                "false_accepts": pc.false_accepts + nc.false_accepts,
                "hits": pc.hits,
                "latency_median_s": float(np.median(pc.latencies)) if pc.latencies else None,
                "latency_p90_s": float(np.percentile(pc.latencies, 90)) if pc.latencies else None,
            }
        )
    return rows


def _word_peaks(scores, words, after: int = int(HIT_AFTER_END_SECONDS * SAMPLE_RATE)) -> list[float]:
    steps, probs = scores
    return [round(float(probs[(steps >= s) & (steps <= e + after)].max(initial=0.0)), 4) for s, e in words]


def at_fa_targets(rows: list[dict]) -> dict:
    out = {}
    for target in FA_TARGETS:
        ok = [r for r in rows if r["fa_per_hour"] <= target]
        best = min(ok, key=lambda r: (r["frr"], r["threshold"])) if ok else None
        out[f"{target:g}"] = best
    return out


def plot_det(path: Path, rows: list[dict], title: str) -> None:
    from train.plots import _pyplot

    plt = _pyplot()
    fa = np.array([max(r["fa_per_hour"], 1e-2) for r in rows])
    frr = np.array([max(r["frr"], 1e-3) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(fa, frr, marker=".")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false reject rate")
    ax.set_title(title)
    ax.text(0.02, 0.02, "FRR 0 drawn at 1e-3, 0 FA/h at 1e-2", transform=ax.transAxes, fontsize=7, color="grey")
    for target in FA_TARGETS:
        ax.axvline(target, color="grey", linestyle=":", alpha=0.6)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


STAGE1, CASCADE = "stage 1", "cascade"
"""What ``evaluate`` scores: the step model alone, or the cascade its metadata names (stage 1 opens candidates,
the verifier decides), as ``edge-run`` runs it."""


def scorer_for(model_path: Path, verifier: bool = True):
    """(score(audio) -> (positions, scores), the threshold to report at, variant) for what the model runs:
    the cascade where its metadata has a verifier (and ``verifier``), else stage 1."""
    if model_path.suffix == ".keras":
        return (*keras_scorer(model_path), STAGE1)
    from edge.model import metadata_path

    score, threshold = tflite_scorer(model_path)
    block = json.loads(metadata_path(model_path).read_text()).get("verifier")
    if block is None or not verifier:
        return score, threshold, STAGE1
    from .suite import verifier_scorers

    stage2 = verifier_scorers(model_path, block)

    def cascade(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        steps, probs = score(audio)
        return stage2.cascade(steps, probs, audio)

    return cascade, stage2.config.threshold, CASCADE


def evaluate(args: argparse.Namespace, log=None) -> dict:
    log = log or sys.stderr
    from train.sources import ClipPool

    model_path = Path(args.model)
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    scorer, default_threshold, variant = scorer_for(model_path, verifier=not args.no_verifier)
    if args.after_hours and variant == CASCADE:
        raise DataError("--after-hours scores stage 1's state after hours of audio: add --no-verifier")
    positives = ClipPool.load("positive", args.positives, trim=True)
    negatives = ClipPool.load("negative", args.negatives)
    backgrounds = ClipPool.load("background", args.backgrounds) if args.backgrounds else None
    pos_stream, neg_stream = build_streams(positives, negatives, backgrounds, args.snr, args.seed)
    print(
        f"edge-eval: {len(positives)} positives ({pos_stream.hours * 60:.1f} min stream), "
        f"{neg_stream.hours:.2f} h of negative audio; scoring",
        file=log,
        flush=True,
    )
    pos_scores = scorer(pos_stream.audio)
    print("edge-eval: positive stream scored", file=log, flush=True)
    neg_scores = scorer(neg_stream.audio)
    print("edge-eval: negative stream scored", file=log, flush=True)
    rows = sweep(pos_scores, neg_scores, pos_stream, neg_stream.hours, args.refractory)
    at_default = min(rows, key=lambda r: abs(r["threshold"] - default_threshold))
    after = None
    if args.after_hours:
        if model_path.suffix == ".keras":
            raise DataError("--after-hours needs the streaming .tflite model")
        print(f"edge-eval: scoring the positives again after {args.after_hours} h of continuous audio", file=log, flush=True)
        late = scorer(pos_stream.audio, args.after_hours * SECONDS_PER_HOUR, neg_stream.audio)
        ref = int(args.refractory * SAMPLE_RATE)
        fresh = count_events(fire_positions(*pos_scores, default_threshold, ref), pos_stream.words)
        later = count_events(fire_positions(*late, default_threshold, ref), pos_stream.words)
        after = {
            "hours_before": args.after_hours,
            "threshold": default_threshold,
            "hits_fresh": fresh.hits,
            "hits_after": later.hits,
            "false_accepts_fresh": fresh.false_accepts,
            "false_accepts_after": later.false_accepts,
            "word_peak_probability_fresh": _word_peaks(pos_scores, pos_stream.words),
            "word_peak_probability_after": _word_peaks(late, pos_stream.words),
        }
    result = {
        "model": str(model_path),
        "variant": variant,
        "positives": len(positives),
        "positive_sources": args.positives,
        "negative_sources": args.negatives,
        "backgrounds": args.backgrounds,
        "snr_db": args.snr if args.backgrounds else None,
        "negative_hours": round(neg_stream.hours, 4),
        "refractory_seconds": args.refractory,
        "at_model_threshold": at_default,
        "frr_at_fa_per_hour": at_fa_targets(rows),
        "after_continuous_audio": after,
        "sweep": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
    plot_det(out / "det.png", rows, f"{model_path.name}: DET ({neg_stream.hours:.2f} h negatives)")
    return result


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def summary(result: dict) -> str:
    lines = [f"model {result['model']} ({result['variant']}): {result['positives']} positives, {result['negative_hours']:.2f} h negatives"]
    d = result["at_model_threshold"]
    lines.append(
        f"  at model threshold {d['threshold']:.3f}: FRR {d['frr']:.1%}, {d['fa_per_hour']:.2f} FA/h, "
        f"latency median {_seconds(d['latency_median_s'])} p90 {_seconds(d['latency_p90_s'])}"
    )
    for target, row in result["frr_at_fa_per_hour"].items():
        if row is None:
            lines.append(f"  FRR at <= {target} FA/h: not reached by any threshold")
        else:
            lines.append(f"  FRR at <= {target} FA/h: {row['frr']:.1%} (threshold {row['threshold']:.3f}, {row['fa_per_hour']:.2f} FA/h)")
    after = result.get("after_continuous_audio")
    if after:
        lines.append(
            f"  after {after['hours_before']} h of continuous audio: {after['hits_after']}/{result['positives']} hits "
            f"(fresh state: {after['hits_fresh']}), false accepts {after['false_accepts_after']} (fresh: {after['false_accepts_fresh']})"
        )
    return "\n".join(lines)


SUITE_ONLY_OPTIONS = ("word", "limit", "min_hours", "conditions", "stage2_conditions", "candidate_threshold", "hold_seconds",
                      "level_control")
"""Options only the real-voice suite reads: given without ``--suite`` they would be silently ignored."""
FOLDER_ONLY_OPTIONS = ("positives", "negatives", "backgrounds", "snr", "refractory", "seed", "after_hours")
"""Options only the folder evaluation reads: the suite brings its own audio, mixing and refractory time."""


def _options_given(p: argparse.ArgumentParser, args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """Of ``names``, the options set to something other than their default, as the user typed them (``--min-hours``)."""
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name) != p.get_default(name)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-eval", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help=".tflite (device path) or .keras (float sequence model)")
    p.add_argument("--suite", choices=("real",), help="the real-voice benchmark (train/suite.py): real speakers of the model's word "
                   "against >= 6 h of real multilingual speech and music, clean / noisy / reverberant; needs no folders")
    p.add_argument("--word", help="with --suite: the word to score (default: the model's metadata)")
    p.add_argument("--limit", type=int, help="with --suite: at most this many clips (and minutes of music) per set: a quick look, not a figure")
    p.add_argument("--min-hours", type=float, default=6.0, help="with --suite: refuse to report on fewer negative hours")
    p.add_argument("--conditions", default="clean,noise-10db,reverb", help="with --suite: comma-separated conditions")
    p.add_argument("--stage2-conditions", default="clean",
                   help="with --suite and a model with a verifier: conditions where stage 2 also runs alone on every chunk "
                        "(default clean; costly: a full embedding stream; an empty string: nowhere)")
    p.add_argument("--candidate-threshold", type=_open_unit, metavar="P",
                   help="with --suite: open verifier candidates at this stage-1 probability instead of the model's (recall against cost)")
    p.add_argument("--hold-seconds", type=_non_negative, metavar="S",
                   help="with --suite: keep a candidate open this long instead of the model's")
    p.add_argument("--level-control", action="store_true",
                   help="with --suite: stage 1 behind the level control (edge/level.py) even if the model's metadata has none; "
                        "measured: clean better, noise and rooms worse (models/README.md)")
    p.add_argument("--no-verifier", action="store_true", help="score stage 1 alone even if the model has a verifier (default: the cascade, as edge-run runs it)")
    p.add_argument("--positives", nargs="+", metavar="DIR", help="folders of positive clips (required without --suite)")
    p.add_argument("--negatives", nargs="+", metavar="DIR", help="folders of negative audio (required without --suite)")
    p.add_argument("--backgrounds", nargs="+", metavar="DIR", help="folders of background noise mixed under the clips (default: none, clean)")
    p.add_argument("--snr", type=float, default=10.0, help="speech-to-background ratio in dB (with --backgrounds)")
    p.add_argument("--refractory", type=float, default=REFRACTORY_SECONDS, help="seconds after a detection during which no other counts")
    p.add_argument("--seed", type=int, default=0, help="seed of the mixing")
    p.add_argument("--after-hours", type=float, default=0.0, help="also score the positives after this many hours of continuous negative audio (state never reset)")
    p.add_argument("--out", default="eval-out", help="folder for eval.json and det.png")
    p.add_argument("--json", action="store_true", help="print the full JSON instead of the summary")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ignored = _options_given(p, args, FOLDER_ONLY_OPTIONS if args.suite else SUITE_ONLY_OPTIONS)
    if ignored:
        p.error(f"{ignored[0]} works only {'without' if args.suite else 'with'} --suite real")
    if args.suite:
        return _suite_main(args)
    if not args.positives or not args.negatives:
        p.error("--positives and --negatives are required (or use --suite real)")
    code, result = run_guarded("edge-eval", evaluate, args, resumable=False)
    if code is not None:
        return code
    print(json.dumps({k: v for k, v in result.items() if k != "sweep"}, indent=1) if args.json else summary(result))
    return 0


def _open_unit(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _suite_main(args: argparse.Namespace) -> int:
    from .suite import SuiteConfig, run_suite, table

    config = SuiteConfig(model=Path(args.model), out=Path(args.out), word=args.word, limit=args.limit,
                         conditions=tuple(c.strip() for c in args.conditions.split(",") if c.strip()), require_hours=args.min_hours,
                         stage2_conditions=tuple(c.strip() for c in args.stage2_conditions.split(",") if c.strip()),
                         verifier=not args.no_verifier, candidate_threshold=args.candidate_threshold, hold_seconds=args.hold_seconds,
                         level_control=args.level_control)
    code, result = run_guarded("edge-eval", run_suite, config)
    if code is not None:
        return code
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
