"""edge-synth: build a labelled training set (and TTS clips) from folders of audio.

    edge-synth tts --word activate --out data/tts/activate          # offline TTS clips
    edge-synth build --positives DIR --negatives DIR --backgrounds DIR --out data/ds --count 8000

A folder may carry a split suffix (``DIR:train`` / ``DIR:eval``: a deterministic half of
its files), so held-out files never reach training.
"""

from __future__ import annotations

import argparse
import sys

from edge.errors import run_guarded

from .dataset import BuildSpec, build
from .speakers import DEFAULT_MAX_CLIPS, DEFAULT_SEED, DEFAULT_THRESHOLD, TELEPHONE_THRESHOLD
from .synth import SynthConfig


def _build(args: argparse.Namespace) -> int:
    synth = SynthConfig(clip_seconds=args.seconds, snr_db=(args.snr_min, args.snr_max))
    spec = BuildSpec(
        positives=tuple(args.positives),
        negatives=tuple(args.negatives),
        backgrounds=tuple(args.backgrounds),
        out=args.out,
        count=args.count,
        seed=args.seed,
        shard_size=args.shard_size,
        workers=args.workers,
        synth=synth,
    )
    folder = build(spec)
    print(f"dataset ready: {folder} ({args.count} clips)")
    return 0


def _tts(args: argparse.Namespace) -> int:
    from .tts_cli import run_tts

    return run_tts(args)


def _speakers(args: argparse.Namespace) -> int:
    from .speakers import run_speakers

    return run_speakers(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="synthesize labelled 10 s training clips")
    b.add_argument("--positives", nargs="+", required=True, metavar="DIR")
    b.add_argument("--negatives", nargs="+", required=True, metavar="DIR")
    b.add_argument("--backgrounds", nargs="+", required=True, metavar="DIR")
    b.add_argument("--out", required=True)
    b.add_argument("--count", type=int, default=8000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--snr-min", type=float, default=-5.0)
    b.add_argument("--snr-max", type=float, default=20.0)
    b.add_argument("--shard-size", type=int, default=250)
    b.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    b.set_defaults(func=_build)
    t = sub.add_parser("tts", help="generate positive and hard-negative clips with offline TTS")
    t.add_argument("--word", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--positives", type=int, default=600, help="positive clips")
    t.add_argument("--negatives", type=int, default=600, help="hard-negative clips")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--workers", type=int, default=0)
    t.set_defaults(func=_tts)
    s = sub.add_parser("speakers", help="count distinct speakers in folders of speech (speaker encoder)")
    s.add_argument("dirs", nargs="+", metavar="DIR")
    s.add_argument("--max-clips", type=int, default=DEFAULT_MAX_CLIPS, help="clips sampled from all folders (default %(default)s)")
    s.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"cosine distance that splits speakers (default %(default)s; {TELEPHONE_THRESHOLD} for telephone audio)")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED)
    s.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    s.set_defaults(func=_speakers)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code, result = run_guarded("edge-synth", args.func, args, resumable=True)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
