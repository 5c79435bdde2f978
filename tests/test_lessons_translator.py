"""Lesson 10's pipeline in FAST mode: the corpus in one direction, the model, translations scored."""

from __future__ import annotations

import pytest
import torch

from nlpprune_lessons.lessons import l10_translator
from nlpprune_lessons.text.subword import EOS_ID


@pytest.fixture(scope="module")
def data():
    return l10_translator.translation_data("ja-en")


def test_the_data_keeps_short_pairs_and_counts_the_rest(data):
    limit = l10_translator.translator_settings()["max_sentence_tokens"]
    for split in ("train", "validation", "test"):
        sources, targets = data.ids[split]
        assert len(sources) == len(data.texts[split][0]) > 0
        assert all(len(s) <= limit and len(t) <= limit and t[-1] == EOS_ID for s, t in zip(sources, targets))
        assert f"{split}: pairs over {limit} pieces dropped" in data.counts
    assert data.target_language == "en" and data.encode_source(["犬"])[0][-1] == EOS_ID


def test_an_untrained_translator_translates_and_is_scored(data):
    model = l10_translator.new_translator(data)
    scores, hypotheses = l10_translator.score_translations(model, data, "validation", limit=12)
    assert len(hypotheses) == 12 and all(isinstance(h, str) for h in hypotheses)
    assert 0 <= scores["chrf"] < 30 and scores["sentences"] == 12
    again = l10_translator.new_translator(data)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(direction="en-fr"), "direction"),
    (dict(direction="ja-en", source_encoder="minilm"), "English"),
    (dict(source_encoder="glove"), "source_encoder"),
])
def test_bad_choices_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        l10_translator.translation_data(**kwargs)
