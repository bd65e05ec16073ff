"""``python -m train.tts``: clips of a word (and of similar-sounding words) into a folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

from edge.errors import run_guarded

from .clips import generate_clips
from .registry import ENGINES, available_engines

DEFAULT_CLIPS = 20
DEFAULT_NEG_WORDS = 30
DEFAULT_NEG_CLIPS = 3


def main(argv: Iterable[str] | None = None) -> int:
    """Parse ``argv`` and write the clips; the exit status."""
    from . import __doc__ as overview

    p = argparse.ArgumentParser(prog="python -m train.tts", description=overview.splitlines()[0])
    p.add_argument("--word", help="the wake word (or phrase) to synthesize (required unless --list-engines)")
    p.add_argument("--n", type=int, default=DEFAULT_CLIPS, help="clips of the word")
    p.add_argument("--out", type=Path, help="output folder (positives/, negatives/; required unless --list-engines)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--engines", default=None, help="comma-separated subset of: " + ", ".join(ENGINES))
    p.add_argument("--negatives", action="store_true", help="also phonetically similar words")
    p.add_argument("--neg-words", type=int, default=DEFAULT_NEG_WORDS, help="similar words to synthesize")
    p.add_argument("--neg-n", type=int, default=DEFAULT_NEG_CLIPS, help="clips per similar word")
    p.add_argument("--list-engines", action="store_true", help="print the working engines and exit")
    a = p.parse_args(list(argv) if argv is not None else None)
    if not a.list_engines and (a.word is None or a.out is None):
        p.error("--word and --out are required (or give --list-engines)")
    code, result = run_guarded("train.tts", _command, a, resumable=True)
    return result if code is None else code


def _command(a: argparse.Namespace) -> int:
    if a.list_engines:
        print(" ".join(available_engines()))
        return 0
    engines = [e.strip() for e in a.engines.split(",")] if a.engines else None
    rows = generate_clips([a.word], a.n, a.out / "positives", a.seed, a.workers, engines=engines)
    print(f"{len(rows)} clips of {a.word!r} in {a.out / 'positives'}", file=sys.stderr)
    if a.negatives:
        _negatives(a, engines)
    return 0


def _negatives(a: argparse.Namespace, engines: list[str] | None) -> None:
    """Clips of words that sound like the word, minus those that contain it."""
    from ..phonetic import containing_words, similar_words

    contain = set(containing_words(a.word))
    words = [w for w in similar_words(a.word, n=a.neg_words + len(contain)) if w not in contain][: a.neg_words]
    rows = generate_clips(words, a.neg_n, a.out / "negatives", a.seed, a.workers, engines=engines)
    print(f"{len(rows)} clips of {len(words)} similar words in {a.out / 'negatives'} "
          f"(left out, containing the word: {', '.join(sorted(contain)) or 'none'})", file=sys.stderr)
