"""Lessons 03-04's budgets and controls: fine-tuning rounds over a spread stream, gradual trainers
counted in rounds, the small dense control's arguments."""

import pytest
import torch

from nlpprune_lessons.lessons import l03_unstructured, l04_structured_rnn
from nlpprune_lessons.lessons.l02_rnn import LM_RECIPE, LanguageModelData
from nlpprune_lessons.text.streams import batchify, num_bptt_windows
from nlpprune_lessons.text.vocab import Vocab

VOCAB = Vocab.build([["a", "b", "c"]], min_freq=1)


def _lm_data(tokens=6_000):
    ids = torch.arange(tokens)  # token ids as positions: where a run comes from is visible
    return LanguageModelData(VOCAB, {"train": ids, "validation": ids[:500], "test": ids[:500]})


def test_a_round_reads_a_third_of_the_stream_spread_over_all_of_it():
    data = _lm_data()
    one = l03_unstructured.language_model_rounds(data)
    assert one.ids["train"].numel() == 1_984  # 2,000 rounded down to 32 equal runs
    rows = batchify(one.ids["train"], LM_RECIPE["batch_size"])
    assert int(rows[0, 0]) == 0 and int(rows[-1, -1]) == 5_999 and int(rows[1, 0]) == 191  # runs from the start to the very end
    assert one.ids["validation"] is data.ids["validation"]
    three = l03_unstructured.language_model_rounds(data, rounds=3)
    assert torch.equal(three.ids["train"], data.ids["train"])  # three thirds: the whole stream, once
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        l03_unstructured.language_model_rounds(data, rounds=0)


def test_gradual_trainers_count_their_budget_in_rounds():
    data = _lm_data()
    _, steps = l03_unstructured.language_model_trainer(data, rounds=2)
    expected = num_bptt_windows(batchify(l03_unstructured.language_model_rounds(data, 2).ids["train"],
                                         LM_RECIPE["batch_size"]), LM_RECIPE["bptt"])
    assert steps == expected
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        l03_unstructured.language_model_trainer(data, rounds=True)
    with pytest.raises(ValueError, match="model must be one of"):
        l03_unstructured.published_rounds("gan")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(kind="gan"), ValueError, "kind must be"),
    (dict(hidden_size=0), ValueError, "hidden_size must be a positive int"),
    (dict(rounds=1.5), ValueError, "rounds must be a positive int"),
    (dict(kind="classifier"), TypeError, "must be a SentimentData")])
def test_small_dense_bad_arguments(kwargs, error, message):
    args = dict(kind="language model", data=_lm_data(), hidden_size=8, dense_epochs=1, rounds=1) | kwargs
    with pytest.raises(error, match=message):
        l04_structured_rnn.small_dense(**args)
