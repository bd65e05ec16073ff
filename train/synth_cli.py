"""edge-synth: build a labelled training set (and TTS clips) from folders of audio.

    edge-synth tts --word activate --out data/tts/activate          # offline TTS clips
    edge-synth build --positives DIR --negatives DIR --backgrounds DIR --out data/ds --count 8000
    edge-synth embed --data data/ds                                   # speech embeddings, for edge-train --embedding-weight

A folder may carry a split suffix (``DIR:train`` / ``DIR:eval``: a deterministic half of
its files), so held-out files never reach training.
"""

from __future__ import annotations

import argparse
import sys

from edge.errors import run_guarded
from edge.helpformat import HelpFormatter
from edge.noise_floor import RECIPE_LEVEL_DBFS, level_argument

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
        noise_floor_dbfs=args.noise_floor_dbfs,
    )
    folder = build(spec)
    print(f"dataset ready: {folder} ({args.count} clips)")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from .teacher import build_teacher

    for folder in args.data:
        print(f"embeddings ready: {build_teacher(folder, args.workers)}")
    return 0


def _tts(args: argparse.Namespace) -> int:
    from .tts_cli import run_tts

    return run_tts(args)


def _speakers(args: argparse.Namespace) -> int:
    from .speakers import run_speakers

    return run_speakers(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-synth", description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True,
                           help="build: training clips; embed: their speech embeddings; tts: TTS clips; speakers: count speakers")
    b = sub.add_parser("build", help="synthesize labelled 10 s training clips", formatter_class=HelpFormatter)
    b.add_argument("--positives", nargs="+", required=True, metavar="DIR", help="folders of clips of the word (DIR, DIR:train, DIR@SHARE)")
    b.add_argument("--negatives", nargs="+", required=True, metavar="DIR", help="folders of other words and speech")
    b.add_argument("--backgrounds", nargs="+", required=True, metavar="DIR", help="folders of background noise and music")
    b.add_argument("--out", required=True, help="dataset folder (sharded features + labels)")
    b.add_argument("--count", type=int, default=8000, help="clips to make")
    b.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    b.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    b.add_argument("--snr-min", type=float, default=-5.0, help="lowest speech-to-background ratio, dB")
    b.add_argument("--snr-max", type=float, default=20.0, help="highest speech-to-background ratio, dB")
    b.add_argument("--shard-size", type=int, default=250, help="clips per shard file")
    b.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    b.add_argument("--noise-floor-dbfs", type=level_argument, default=RECIPE_LEVEL_DBFS, metavar="DBFS",
                   help="the frontend's fixed noise floor, added before the features; the model trained on them "
                        f"records it and the device adds the same (default {RECIPE_LEVEL_DBFS:g}; 'off' for none)")
    b.set_defaults(func=_build)
    e = sub.add_parser("embed", help="openWakeWord's speech embedding of every clip of built datasets (for edge-train --embedding-weight)",
                       formatter_class=HelpFormatter)
    e.add_argument("--data", nargs="+", required=True, metavar="DIR", help="dataset folders from edge-synth build")
    e.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    e.set_defaults(func=_embed)
    t = sub.add_parser("tts", help="generate positive and hard-negative clips with offline TTS", formatter_class=HelpFormatter)
    t.add_argument("--word", required=True, help="the word to say")
    t.add_argument("--out", required=True, help="folder for positives/, hard_negatives/ and negatives/")
    t.add_argument("--positives", type=int, default=600, help="positive clips")
    t.add_argument("--negatives", type=int, default=600, help="hard-negative clips")
    t.add_argument("--new-voices", type=int, default=0, help="more clips of the word, each in a new Kokoro voice (new_voices/)")
    t.add_argument("--seed", type=int, default=0, help="seed of the voice and prosody draws")
    t.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    t.set_defaults(func=_tts)
    s = sub.add_parser("speakers", help="count distinct speakers in folders of speech (speaker encoder)", formatter_class=HelpFormatter)
    s.add_argument("dirs", nargs="+", metavar="DIR", help="folders of speech clips")
    s.add_argument("--max-clips", type=int, default=DEFAULT_MAX_CLIPS, help="clips sampled from all folders (default %(default)s)")
    s.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"cosine distance that splits speakers (default %(default)s; {TELEPHONE_THRESHOLD} for telephone audio)")
    s.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the clip sample")
    s.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    s.set_defaults(func=_speakers)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code, result = run_guarded("edge-synth", args.func, args, resumable=True)
    return result if code is None else code


if __name__ == "__main__":
    sys.exit(main())
