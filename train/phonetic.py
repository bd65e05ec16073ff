"""Phonetic similarity for any word: hard negatives and ordinary negative phrases.

Pronunciations come from the CMU dictionary that Debian's ``festlex-cmu`` installs
(``/usr/share/festival/dicts/cmu/cmudict-0.4.out``, ~105k entries); words it lacks (coined
wake words, "deactivate") are phonemised by ``espeak-ng -q --ipa -v en-us`` and the IPA is
mapped onto the same phone set. Stress is dropped and ``ax``/``ah`` are merged (festival's
CMU dictionary writes most unstressed vowels as ``ax``).

Similarity of a candidate to the target (both phone sequences; the best pair over all
their pronunciations counts)::

    score = (1 - edit_distance / max(len_a, len_b))
            + 0.25 * common_prefix / len_target
            + 0.25 * common_suffix / len_target
            + 0.25 * longest_common_substring / len_target

where the edit distance is weighted (0.3 between reduced vowels, 0.6 between other
vowels, 0.5 between close consonants such as t/d or m/n, else 1), so "activate" ranks
"activated", "deactivate", "motivate", "cultivate", "activity", "active" high.

Candidates are the dictionary words whose length is within 4 phones (or half the target)
of the target's, plus derived forms of the target (de-, re-, -s, -ed, -ing; phonemised by
espeak-ng when the dictionary lacks them), since those are the likeliest false triggers;
for a phrase, also the phrase with one word swapped for one of its similar words.

Words that *contain* the target's whole phone sequence ("activated", "deactivate") are
genuine ambiguous cases: :func:`similar_words` includes them and
:func:`containing_words` lists them so a data builder can decide. Homophones of the target
(identical phones) are never returned by :func:`similar_words`: they *are* the word.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.errors import DataError

CMUDICT_PATHS = (
    Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out"),
    Path("/usr/local/share/festival/dicts/cmu/cmudict-0.4.out"),
)

_MERGE = {"ax": "ah", "axr": "er"}
PHONES = ("aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t "
          "th uh uw v w y z zh").split()
_PHONE_ID = {p: i for i, p in enumerate(PHONES)}
_VOWELS = set("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw".split())
_REDUCED = set("ah ih uh eh".split())
_PAIRS = [("p", "b"), ("t", "d"), ("k", "g"), ("f", "v"), ("s", "z"), ("sh", "zh"), ("ch", "jh"),
          ("th", "dh"), ("m", "n"), ("n", "ng"), ("th", "f"), ("dh", "v"), ("l", "r"), ("w", "v")]


def _sub_costs() -> np.ndarray:
    """Substitution cost between phones: 0 same, 0.3 reduced vowels, 0.5 vowels / close consonants."""
    k = len(PHONES) + 1  # last id: unknown phone
    c = np.ones((k, k), dtype=np.float32)
    for i, a in enumerate(PHONES):
        for j, b in enumerate(PHONES):
            if a == b:
                c[i, j] = 0.0
            elif a in _REDUCED and b in _REDUCED:
                c[i, j] = 0.3
            elif a in _VOWELS and b in _VOWELS:
                c[i, j] = 0.6
            elif (a, b) in _PAIRS or (b, a) in _PAIRS:
                c[i, j] = 0.5
    return c


_SUB = _sub_costs()

# espeak-ng en-us IPA -> the phone set above (longest match first)
_IPA = {
    "eɪ": "ey", "aɪ": "ay", "aʊ": "aw", "ɔɪ": "oy", "oʊ": "ow", "əʊ": "ow", "tʃ": "ch", "dʒ": "jh",
    "ɜː": "er", "ɜ": "er", "ɝ": "er", "ɚ": "er", "ɑː": "aa", "ɑ": "aa", "ɒ": "aa", "ɔː": "ao",
    "ɔ": "ao", "oː": "ao", "o": "ow", "iː": "iy", "i": "iy", "uː": "uw", "u": "uw", "ʊ": "uh",
    "ɪ": "ih", "ᵻ": "ah", "ə": "ah", "ɐ": "ah", "ʌ": "ah", "æ": "ae", "a": "ae", "ɛ": "eh",
    "e": "eh", "ɾ": "t", "ʔ": "t", "ɹ": "r", "r": "r", "ɫ": "l", "l": "l", "n": "n", "ŋ": "ng",
    "m": "m", "θ": "th", "ð": "dh", "ʃ": "sh", "ʒ": "zh", "h": "hh", "j": "y", "w": "w", "b": "b",
    "d": "d", "f": "f", "ɡ": "g", "g": "g", "k": "k", "p": "p", "s": "s", "t": "t", "v": "v",
    "z": "z", "x": "k", "ç": "hh", "ɬ": "l",
}
_IPA_KEYS = sorted(_IPA, key=len, reverse=True)

_PREFIXES = ("de", "re")
_SUFFIXES = ("s", "ed", "ing")

_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


# --------------------------------------------------------------------------- lexicon


def _code(phones: Iterable[str]) -> str:
    """Phones -> a string with one character per phone (fast containment / matrix building)."""
    return "".join(chr(65 + _PHONE_ID.get(_MERGE.get(p, p), len(PHONES))) for p in phones)


def _decode(code: str) -> tuple[str, ...]:
    return tuple(PHONES[ord(c) - 65] if ord(c) - 65 < len(PHONES) else "?" for c in code)


@functools.lru_cache(maxsize=1)
def _lexicon() -> dict[str, tuple[str, ...]]:
    """word -> pronunciations as phone codes (stress removed), parsed once per process (~0.5 s)."""
    path = next((p for p in CMUDICT_PATHS if p.is_file()), None)
    if path is None:
        return {}
    text = path.read_text(encoding="latin-1").translate(str.maketrans("()0123456789", " " * 12))
    code = {p: chr(65 + i) for i, p in enumerate(PHONES)}
    code.update({m: code[t] for m, t in _MERGE.items()})
    unknown = chr(65 + len(PHONES))
    lex: dict[str, list[str]] = {}
    for word, body in re.findall(r'^\s*"([^"]+)" \S+ (.*)$', text, re.M):
        seq = "".join([code.get(p, unknown) for p in body.split()])
        if seq:
            prons = lex.setdefault(word, [])
            if seq not in prons:
                prons.append(seq)
    return {w: tuple(p) for w, p in lex.items()}


def _ipa_to_phones(ipa: str) -> tuple[str, ...]:
    s = unicodedata.normalize("NFD", ipa)
    s = "".join(c for c in s if not unicodedata.category(c).startswith("M"))
    s = s.replace("ˈ", "").replace("ˌ", "").replace(" ", "").replace("-", "")
    out: list[str] = []
    i = 0
    while i < len(s):
        for k in _IPA_KEYS:
            if s.startswith(k, i):
                out.append(_IPA[k])
                i += len(k)
                break
        else:
            i += 1  # unknown symbol (tie bars, ...): skip
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _espeak_codes(words: tuple[str, ...]) -> tuple[str, ...]:
    if shutil.which("espeak-ng") is None:
        raise DataError("espeak-ng is not installed: cannot phonemise words missing from the CMU dictionary")
    text = "".join(f"{w}.\n" for w in words)
    try:
        proc = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", "--stdin"], input=text.encode("utf-8"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise DataError("espeak-ng took longer than 60 s to phonemise words") from None
    if proc.returncode != 0:
        raise DataError(f"espeak-ng failed to phonemise {', '.join(words[:3])} (exit {proc.returncode})")
    lines = [ln.strip() for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    if len(lines) != len(words):  # espeak merged/split lines: one call per word
        if len(words) == 1:
            return (_code(_ipa_to_phones("".join(lines))),)
        return tuple(_espeak_codes((w,))[0] for w in words)
    return tuple(_code(_ipa_to_phones(ln)) for ln in lines)


def _words(text: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty word {text!r}: nothing to compare")
    words = _WORD_RE.findall(text.lower().replace("\u2019", "'"))
    if not words:
        raise DataError(f"word {text!r} has no letters a-z: cannot find similar words")
    return words


def _pron_codes(texts: list[str]) -> list[tuple[str, ...]]:
    """Pronunciation codes for several words/phrases (one espeak-ng call for all unknown words)."""
    lex = _lexicon()
    split = [_words(t) for t in texts]
    missing = tuple(sorted({w for ws in split for w in ws if w not in lex}))
    fallback = dict(zip(missing, _espeak_codes(missing))) if missing else {}
    out = []
    for t, ws in zip(texts, split):
        prons = [""]
        for w in ws:  # cartesian product over each word's pronunciations, capped
            options = lex[w] if w in lex else (fallback[w],)
            prons = [p + o for p in prons for o in options][:16]
        prons = [p for p in dict.fromkeys(prons) if p]
        if not prons:
            raise DataError(f"word {t!r}: no pronunciation found")
        out.append(tuple(prons))
    return out


def pronunciations(text: str) -> list[tuple[str, ...]]:
    """Phone sequences (stress removed) for a word or phrase: CMU dictionary, else espeak-ng."""
    return [_decode(c) for c in _pron_codes([text])[0]]


# --------------------------------------------------------------------------- scoring


@functools.lru_cache(maxsize=1)
def _table():
    """Every single dictionary word's pronunciation as a padded phone-id matrix."""
    lex = _lexicon()
    words, seqs = [], []
    for w, prons in lex.items():
        if len(w) >= 2 and _WORD_RE.fullmatch(w):
            for p in prons:
                words.append(w)
                seqs.append(p)
    return _encode(words, seqs)


def _encode(words: list[str], seqs: list[str]):
    n = len(seqs)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    width = int(lengths.max()) if n else 1
    flat = np.frombuffer("".join(seqs).encode("ascii"), dtype=np.uint8).astype(np.int16) - 65
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    left = np.full((n, width), -1, dtype=np.int16)
    right = np.full((n, width), -2, dtype=np.int16)
    left[rows, cols] = flat
    right[rows, width - lengths[rows] + cols] = flat
    return words, seqs, left, right, lengths


def _scores(target: str, left: np.ndarray, right: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Vectorised similarity of one target (phone code) against every row (module docstring)."""
    a = np.frombuffer(target.encode("ascii"), dtype=np.uint8).astype(np.int16) - 65
    m = len(a)
    n, width = left.shape
    if n == 0:
        return np.zeros(0)
    # weighted Levenshtein: rows over target phones, columns over candidate phones
    prev = np.broadcast_to(np.arange(width + 1, dtype=np.float32), (n, width + 1)).copy()
    lcs = np.zeros(n, dtype=np.int32)
    run_prev = np.zeros((n, width), dtype=np.int32)
    for i in range(m):
        eq = left == a[i]
        cur = np.empty_like(prev)
        cur[:, 0] = i + 1
        best = np.minimum(prev[:, :-1] + _SUB[a[i]][left], prev[:, 1:] + 1)  # padding -> "unknown"
        for j in range(width):  # insertion depends on the left neighbour
            cur[:, j + 1] = np.minimum(best[:, j], cur[:, j] + 1)
        prev = cur
        run = np.zeros((n, width), dtype=np.int32)
        run[:, 0] = eq[:, 0]
        run[:, 1:] = (run_prev[:, :-1] + 1) * eq[:, 1:]
        lcs = np.maximum(lcs, run.max(axis=1))
        run_prev = run
    dist = prev[np.arange(n), lengths]
    ned = dist / np.maximum(lengths, m)
    k = min(m, width)
    pre = np.cumprod(left[:, :k] == a[None, :k], axis=1).sum(axis=1)
    suf = np.cumprod((right[:, width - k:] == a[None, m - k:])[:, ::-1], axis=1).sum(axis=1)
    return (1.0 - ned) + 0.25 * (pre / m) + 0.25 * (suf / m) + 0.25 * (lcs / m)


def _derived(words: list[str]) -> list[str]:
    """de-/re- forms of a single word and inflections of the last word (deactivated, activates)."""
    first, last = words[0], words[-1]

    def suffixed(w: str, s: str) -> str:
        if s == "s" and re.search(r"(s|x|z|sh|ch)$", w):
            return w + "es"
        return ((w[:-1] if w.endswith("e") else w) if s[0] in "aeiou" else w) + s

    forms = [words[:-1] + [suffixed(last, s)] for s in _SUFFIXES]
    if len(words) == 1:
        forms += [[p + first] for p in _PREFIXES]
        if first.endswith("ate") or first.endswith("ize"):  # verbs: deactivated, reorganized
            forms += [[p + suffixed(first, "ed")] for p in _PREFIXES]
    phrase = " ".join(words)
    return [f for f in dict.fromkeys(" ".join(f) for f in forms) if f != phrase]


_WINDOW = 4  # candidates whose length differs from the target's by more are not scored


@functools.lru_cache(maxsize=256)
def _ranked(phrase: str) -> tuple[tuple[str, float, bool], ...]:
    """(candidate, score, contains_target) for the scored candidates, best first, deterministic."""
    words = phrase.split()
    targets = _pron_codes([phrase])[0]
    tset = set(targets)
    m_lo = min(len(t) for t in targets) - max(_WINDOW, min(len(t) for t in targets) // 2)
    m_hi = max(len(t) for t in targets) + max(_WINDOW, max(len(t) for t in targets) // 2)
    cand_words, cand_seqs = [], []
    all_words, all_seqs, left, right, lengths = _table()
    keep = np.flatnonzero((lengths >= m_lo) & (lengths <= m_hi))
    cand_words = [all_words[i] for i in keep]
    cand_seqs = [all_seqs[i] for i in keep]
    extra = _derived(words)
    if len(words) > 1:  # phrases: swap one word for a similar word (hey computer -> hey commuter)
        for i, w in enumerate(words):
            for alt, _, _ in _ranked(w)[:12]:
                extra.append(" ".join(words[:i] + [alt] + words[i + 1:]))
    extra = [e for e in dict.fromkeys(extra) if e != phrase]
    for e, prons in zip(extra, _pron_codes(extra) if extra else []):
        for p in prons:
            cand_words.append(e)
            cand_seqs.append(p)
    _, _, cl, cr, clen = _encode(cand_words, cand_seqs)
    width = int(clen.max()) if len(clen) else 1
    best = np.max([_scores(t, cl[:, :width], cr[:, cr.shape[1] - width:], clen) for t in targets], axis=0)
    score: dict[str, float] = {}
    contains: dict[str, bool] = {}
    homophones = {w for w, s in zip(cand_words, cand_seqs) if s in tset}
    for w, s, sc in zip(cand_words, cand_seqs, best):
        score[w] = max(score.get(w, -1.0), float(sc))
        contains[w] = contains.get(w, False) or any(t in s for t in targets)
    ranked = sorted(((w, s, contains[w]) for w, s in score.items() if w not in homophones),
                    key=lambda r: (-round(r[1], 6), r[0]))
    return tuple(ranked)


def similar_words(word: str, n: int = 30, exclude_target: bool = True) -> list[str]:
    """The ``n`` dictionary words (or phrases, for a phrase) that sound most like ``word``.

    Deterministic (ties broken alphabetically). Homophones of ``word`` are never returned;
    ``word`` itself only when ``exclude_target`` is false (then first). Words containing the
    whole target ("activated") are included; see :func:`containing_words`.
    """
    if n < 0:
        raise DataError(f"similar_words: n must be >= 0, got {n}")
    words = _words(word)
    phrase = " ".join(words)
    ranked = [w for w, _, _ in _ranked(phrase) if w != phrase]
    if len(words) > 1:  # round-robin over "which word changed" so one short word can't take all
        groups: dict[int, list[str]] = {}
        for cand in ranked:
            cw = cand.split()
            diff = [i for i in range(len(words)) if len(cw) == len(words) and cw[i] != words[i]]
            groups.setdefault(diff[0] if len(diff) == 1 else -1, []).append(cand)
        queues = list(groups.values())
        ranked = []
        while any(queues):
            for q in queues:
                if q:
                    ranked.append(q.pop(0))
    out = ranked[:n]
    if not exclude_target:
        out = [phrase] + out[: max(0, n - 1)]
    return out


def containing_words(word: str, limit: int = 200) -> list[str]:
    """Words whose pronunciation contains the whole target's ("activated", "deactivate").

    These may legitimately wake a device (or not): a data builder should decide, e.g. keep
    them out of the negatives. Includes homophones of the target (other spellings) and long
    dictionary words outside the similarity window ("minicomputer"). Best match first.
    """
    phrase = " ".join(_words(word))
    targets = _pron_codes([phrase])[0]
    out = [w for w, _, c in _ranked(phrase) if c and w != phrase]
    seen = set(out)
    words, seqs, _, _, lengths = _table()
    more = sorted({w for w, s in zip(words, seqs) if w != phrase and w not in seen and any(t in s for t in targets)},
                  key=lambda w: (len(w), w))
    return (out + more)[:limit]


# --------------------------------------------------------------------------- ordinary speech

HARVARD = (
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.", "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.", "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.", "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.", "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.", "What joy there is in living.",
    "A king ruled the state in the early days.", "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.", "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.", "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.", "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.", "Mesh wire keeps chicks inside.",
    "The frosty air passed through the coat.", "The crooked maze failed to fool the mouse.",
    "Adding fast leads to wrong sums.", "The show was a flop from the very start.",
    "A saw is a tool used for making boards.", "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.", "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.", "Both lost their lives in the raging storm.",
    "We talked of the side show in the circus.", "Use a pencil to write the first draft.",
    "He ran half way to the hardware store.", "The clock struck to mark the third period.",
    "A small creek cut across the field.", "Cars and busses stalled in snow drifts.",
    "The set of china hit the floor with a crash.", "This is a grand season for hikes on the road.",
    "The dune rose from the edge of the water.", "Those words were the cue for the actor to leave.",
    "Can you turn the lights off in the kitchen?", "I think we should leave a little earlier today.",
    "What time does the train get in tonight?", "Remind me to call my sister after lunch.",
    "The weather looks much better than yesterday.", "Could you pass me the salt, please?",
    "We ran out of milk again this morning.", "Let's meet at the corner by the bakery.",
)

COMMON_WORDS = tuple("""
the be to of and a in that have it for not on with he as you do at this but his by from they we
say her she or an will my one all would there their what so up out if about who get which go me
when make can like time no just him know take people into year your good some could them see
other than then now look only come its over think also back after use two how our work first well
way even new want because any these give day most us is was are been has had were said did
having may should here where why again very still while never always often maybe today tomorrow
yesterday morning evening night week month water coffee kitchen window door table chair music
light lights phone garden weather dinner breakfast lunch school office market station street city
house family friend children mother father sister brother doctor teacher number money paper
picture story question answer problem reason minute hour moment place world country river
mountain ocean forest animal dog cat bird horse car train plane bus bicycle road bridge
building room floor wall bed book letter word language voice sound noise song game team
player ball field party dance movie show news report program system computer internet
email message video camera radio television battery power energy machine engine hand head
face eye ear nose mouth arm leg foot heart body health food bread cheese apple orange banana
water tea sugar salt pepper chicken fish rice soup salad dessert cake cookie chocolate
red blue green yellow black white brown purple small large big little long short high low
hot cold warm cool early late fast slow happy sad angry quiet loud easy hard simple
open close start stop turn play read write speak listen watch walk run drive ride sit stand
sleep wake eat drink cook clean wash buy sell pay send bring carry hold help find keep leave
call ask tell show move live feel believe remember forget learn teach understand explain
""".split())


def ordinary_phrases(n: int, seed: int, *, exclude: Iterable[str] = ()) -> list[str]:
    """``n`` ordinary English utterances for negative speech, deterministic for ``seed``.

    A mix of Harvard-style sentences, single frequent words and short sequences of frequent
    words. Phrases containing any word in ``exclude`` (case-insensitive; pass the wake word
    and its :func:`containing_words`) are left out.
    """
    if n < 0:
        raise DataError(f"ordinary_phrases: n must be >= 0, got {n}")
    banned = {w.lower() for e in exclude for w in _WORD_RE.findall(str(e).lower())}

    def ok(phrase: str) -> bool:
        return not (banned & set(_WORD_RE.findall(phrase.lower())))

    rng = np.random.default_rng(seed)
    sentences = [s for s in HARVARD if ok(s)]
    words = [w for w in dict.fromkeys(COMMON_WORDS) if ok(w)]
    if not words:
        raise DataError("ordinary_phrases: every common word is excluded")
    out: list[str] = []
    s_order = list(rng.permutation(len(sentences))) if sentences else []
    w_order = list(rng.permutation(len(words)))
    while len(out) < n:
        kind = rng.random()
        if kind < 0.4 and s_order:
            out.append(sentences[s_order.pop()])
        elif kind < 0.65 and w_order:
            out.append(words[w_order.pop()])
        else:
            k = int(rng.integers(2, 7))
            out.append(" ".join(words[i] for i in rng.integers(0, len(words), size=k)))
    return out
