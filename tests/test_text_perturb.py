"""Perturbed inputs and the generalisation/robustness probe of lesson 03."""

import pytest
import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.lessons import l02_rnn
from nlpprune_lessons.lessons.l03_unstructured import RobustnessProbe
from nlpprune_lessons.models import BagOfWordsClassifier
from nlpprune_lessons.text.perturb import MIN_TYPO_LENGTH, add_typos, changed_share, drop_words, perturb_texts
from nlpprune_lessons.text.vocab import Vocab

WORDS = "the film is a tender and surprisingly funny story about grief".split()


def test_typos_edit_only_long_alphabetic_words_by_one_character():
    tokens = WORDS + ["...", "it's", "90"]
    typoed = add_typos(tokens, 1.0, seed=3)
    assert len(typoed) == len(tokens)
    for before, after in zip(tokens, typoed):
        if before.isalpha() and len(before) >= MIN_TYPO_LENGTH:
            assert after != before  # every edit changes the word
            assert abs(len(after) - len(before)) <= 1
        else:
            assert after == before
    eligible = sum(t.isalpha() and len(t) >= MIN_TYPO_LENGTH for t in tokens)
    assert changed_share([tokens], [typoed]) == eligible / len(tokens)


def test_typos_reach_every_position_and_never_leave_a_word_unchanged():
    edited = [add_typos(["aab"], 1.0, seed=s)[0] for s in range(400)]
    assert "aab" not in edited  # "aa" swapped would be no change
    assert "ab" in edited and "aa" in edited  # an "a" deleted; the last letter deleted
    assert any(len(w) == 3 and w[:2] == "aa" and w[2] != "b" for w in edited)  # last letter replaced
    assert any(len(w) == 4 and w[:3] == "aab" for w in edited)  # insertion after the last letter


def test_rate_zero_changes_nothing_and_the_input_is_not_modified():
    tokens = list(WORDS)
    assert add_typos(tokens, 0.0) == WORDS
    assert drop_words(tokens, 0.0) == WORDS
    add_typos(tokens, 1.0)
    drop_words(tokens, 1.0)
    assert tokens == WORDS


def test_perturbations_are_seeded():
    assert add_typos(WORDS, 0.5, seed=1) == add_typos(WORDS, 0.5, seed=1)
    assert add_typos(WORDS, 0.5, seed=1) != add_typos(WORDS, 0.5, seed=2)
    assert drop_words(WORDS, 0.5, seed=1) == drop_words(WORDS, 0.5, seed=1)


def test_drop_words_keeps_order_and_never_empties_a_text():
    kept = drop_words(WORDS, 0.5, seed=0)
    assert 0 < len(kept) < len(WORDS)
    positions = [WORDS.index(t) for t in kept]
    assert positions == sorted(positions)
    assert len(drop_words(WORDS, 1.0)) == 1
    assert drop_words([], 0.5) == []


def test_drop_rate_is_about_right_on_many_words():
    tokens = ["word"] * 10_000
    kept = drop_words(tokens, 0.2, seed=0)
    assert len(kept) == pytest.approx(8_000, rel=0.05)
    assert changed_share([tokens], [kept]) == pytest.approx(1 - len(kept) / 10_000)


def test_perturb_texts_gives_each_text_its_own_seed():
    texts = [WORDS, WORDS]
    out = perturb_texts(texts, "typos", 0.5, seed=0)
    assert out[0] == add_typos(WORDS, 0.5, seed=0) and out[1] == add_typos(WORDS, 0.5, seed=1)
    assert perturb_texts(texts[1:], "dropped words", 0.5, seed=1)[0] == perturb_texts(texts, "dropped words", 0.5)[1]


@pytest.mark.parametrize("call, error, message", [
    (lambda: add_typos(WORDS, 1.5), ValueError, r"rate must be a number in \[0, 1\]"),
    (lambda: drop_words(WORDS, -0.1), ValueError, "rate must be"),
    (lambda: add_typos(WORDS, True), ValueError, "rate must be"),
    (lambda: add_typos("a whole string", 0.1), TypeError, "list of strings"),
    (lambda: perturb_texts([WORDS], "shouting", 0.1), ValueError, "unknown perturbation 'shouting'"),
    (lambda: perturb_texts(WORDS, "typos", 0.1), TypeError, "for one text, pass"),
    (lambda: add_typos(iter(WORDS), 0.1), TypeError, "not a string or an iterator"),
    (lambda: changed_share([], []), ValueError, "same non-empty list"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _tiny_sentiment():
    tokens = {"train": [["good", "film"], ["bad", "film"], ["good"], ["bad"]],
              "validation": [["good"], ["bad"]], "test": [["good", "plot"], ["bad", "plot"]]}
    labels = {"train": [1, 0, 1, 0], "validation": [1, 0], "test": [1, 0]}
    vocab = Vocab.build(tokens["train"])
    loaders = {s: l02_rnn.sentiment_loader(vocab, tokens[s], labels[s]) for s in tokens}
    return l02_rnn.SentimentData(vocab, tokens, labels, loaders)


def test_probe_reports_accuracies_and_the_gap():
    data = _tiny_sentiment()
    config.set_seed(0)
    model = BagOfWordsClassifier(len(data.vocab))
    with torch.no_grad():  # a hand-made perfect rule: "good" -> 1, "bad" -> 0
        model.token_weights.weight.zero_()
        model.token_weights.weight[data.vocab.stoi["good"], 1] = 5.0
        model.token_weights.weight[data.vocab.stoi["bad"], 0] = 5.0
    probe = RobustnessProbe(data, typo_rate=0.0, drop_rate=0.0)
    assert probe.perturbations["typos"]["changed_share"] == 0.0
    assert probe.perturbations["none"]["unknown_share"] == 0.5  # "plot" is not in the training vocabulary
    result = probe(model)
    assert result == {"accuracy": 1.0, "train_accuracy": 1.0, "typos_accuracy": 1.0,
                      "dropped_words_accuracy": 1.0, "generalisation_gap": 0.0}
    # every key word mistyped: "good"/"bad" become unknown and the rule has nothing to go on
    typo_probe = RobustnessProbe(data, typo_rate=1.0, drop_rate=0.0)
    assert typo_probe.perturbations["typos"]["changed_share"] == 1.0  # every word has 3+ letters
    typoed = typo_probe(model)
    assert typoed["typos_accuracy"] == 0.5 and typoed["accuracy"] == 1.0


def test_probe_rejects_a_non_model_and_bad_data():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        RobustnessProbe(_tiny_sentiment())("model")
    with pytest.raises(TypeError, match="SentimentData"):
        RobustnessProbe({"tokens": {}})
