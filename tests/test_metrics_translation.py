"""sacrebleu BLEU and chrF with bootstrap intervals (lesson 10)."""

from __future__ import annotations

import pytest
from sacrebleu.metrics import BLEU, CHRF

from nlpprune_lessons.metrics import translation_scores

HYPOTHESES = ["the cat sat on the mat", "a dog runs in the park", "hello there my friend", "it rains"] * 25
REFERENCES = ["the cat sat on the mat", "a big dog runs in a park", "hello my friend", "it is raining"] * 25


def test_a_perfect_translation_scores_100_in_both_tokenisations():
    assert translation_scores(REFERENCES, REFERENCES, samples=20)["bleu"] == pytest.approx(100.0)
    scores = translation_scores(["猫が寝ている", "犬が走る"], ["猫が寝ている", "犬が走る"], tokenize="char", samples=20)
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)


def test_the_scores_are_sacrebleus_corpus_scores_inside_their_intervals():
    scores = translation_scores(HYPOTHESES, REFERENCES, samples=200)
    assert scores["bleu"] == pytest.approx(BLEU().corpus_score(HYPOTHESES, [REFERENCES]).score)
    assert scores["chrf"] == pytest.approx(CHRF().corpus_score(HYPOTHESES, [REFERENCES]).score)
    for name in ("bleu", "chrf"):
        assert scores[f"{name}_low"] < scores[name] < scores[f"{name}_high"]
    assert "tok:13a" in scores["bleu_signature"] and scores["sentences"] == 100


def test_the_interval_is_seeded_and_narrows_with_more_sentences():
    a = translation_scores(HYPOTHESES, REFERENCES, samples=200, seed=3)
    assert a == translation_scores(HYPOTHESES, REFERENCES, samples=200, seed=3)
    wide = translation_scores(HYPOTHESES[:20], REFERENCES[:20], samples=200)
    assert wide["bleu_high"] - wide["bleu_low"] > a["bleu_high"] - a["bleu_low"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(hypotheses="one string", references=["a"]), TypeError, "hypotheses"),
    (dict(hypotheses=["a", 3], references=["a", "b"]), TypeError, "hypotheses"),
    (dict(hypotheses=["a"], references=["a", "b"]), ValueError, "equal length"),
    (dict(hypotheses=[], references=[]), ValueError, "non-empty"),
    (dict(hypotheses=["a"], references=["a"], tokenize="intl"), ValueError, "tokenize"),
    (dict(hypotheses=["a"], references=["a"], samples=0), ValueError, "samples"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        translation_scores(**kwargs)
