"""Phonetic hard negatives: real CMU dictionary (festlex-cmu) and espeak-ng, no mocks."""

import shutil

import pytest

from edge.errors import DataError
from train import phonetic

pytestmark = pytest.mark.skipif(
    not any(p.is_file() for p in phonetic.CMUDICT_PATHS) or shutil.which("espeak-ng") is None,
    reason="needs festlex-cmu (CMU dictionary) and espeak-ng",
)


def test_activate_finds_expected_neighbours():
    words = phonetic.similar_words("activate", n=40)
    expected = {"active", "activity", "captivate", "deactivate", "deactivated", "relative",
                "activated", "motivate", "cultivate"}
    found = expected & set(words)
    assert len(found) >= 5, (found, words)
    assert "activate" not in words
    assert len(words) == 40 and len(set(words)) == 40


def test_deterministic_and_target_option():
    assert phonetic.similar_words("activate", 25) == phonetic.similar_words("activate", 25)
    with_target = phonetic.similar_words("Activate", 5, exclude_target=False)
    assert with_target[0] == "activate" and len(with_target) == 5


def test_containing_words_flags_ambiguous_cases():
    contain = phonetic.containing_words("activate")
    assert {"activated", "deactivate"} <= set(contain)
    assert "motivate" not in contain and "activate" not in contain


def test_computer():
    words = phonetic.similar_words("computer", n=30)
    assert {"commuter", "computed", "compute"} & set(words)
    assert "computer" not in words


def test_coined_word_uses_espeak_fallback():
    assert "zorblex" not in phonetic._lexicon()
    prons = phonetic.pronunciations("zorblex")
    assert prons and len(prons[0]) >= 6
    words = phonetic.similar_words("zorblex", n=10)
    assert len(words) == 10 and "zorblex" not in words


def test_phrase():
    words = phonetic.similar_words("hey computer", n=20)
    assert len(words) == 20 and "hey computer" not in words
    assert any(w.startswith("hey ") for w in words) and any(not w.startswith("hey ") for w in words)


@pytest.mark.parametrize("bad", ["", "   ", "123", "!!"])
def test_bad_words(bad):
    with pytest.raises(DataError):
        phonetic.similar_words(bad)


def test_ordinary_phrases():
    a = phonetic.ordinary_phrases(50, seed=3, exclude=["computer"])
    assert a == phonetic.ordinary_phrases(50, seed=3, exclude=["computer"])
    assert a != phonetic.ordinary_phrases(50, seed=4, exclude=["computer"])
    assert len(a) == 50 and all(isinstance(p, str) and p.strip() for p in a)
    assert not any("computer" in p.lower().split() for p in a)
