"""Lesson 10's parallel corpus (Japanese WordNet) and its subword tokenizers."""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest

from nlpprune_lessons.data import SPLITS, load_japanese_wordnet
from nlpprune_lessons.data.japanese_wordnet import (
    FAST_SIZES,
    ascii_share,
    clean_pairs,
    english_key,
    read_pairs,
    split_by_synset,
)
from nlpprune_lessons.text.subword import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    cached_subword_tokenizer,
    decode_ids,
    encode_sentences,
    train_subword_tokenizer,
)


@pytest.fixture(scope="module")
def corpus():
    return load_japanese_wordnet()


def test_the_file_holds_the_pairs_the_resources_list():
    pairs = read_pairs()
    assert len(pairs) == 183_968
    assert pairs.kind.value_counts().to_dict() == {"def": 135_692, "exe": 48_276}
    first = pairs.iloc[0]
    assert (first.synset, first.kind, first["index"]) == ("00001740-a", "def", 0)
    assert first.english.startswith("having the necessary means") and first.japanese.startswith("何かをする")


def test_a_synset_never_crosses_splits(corpus):
    synsets = {name: set(corpus[name].synset) for name in SPLITS}
    assert not synsets["train"] & synsets["validation"]
    assert not synsets["train"] & synsets["test"]
    assert not synsets["validation"] & synsets["test"]
    assert all(len(corpus[name]) > 10_000 for name in ("validation", "test")) and len(corpus["train"]) > 140_000


def test_no_english_side_of_a_later_split_occurs_in_an_earlier_one(corpus):
    train = set(corpus["train"].english.map(english_key))
    validation = set(corpus["validation"].english.map(english_key))
    test = set(corpus["test"].english.map(english_key))
    assert not validation & train and not test & (train | validation)
    assert corpus.counts["test: dropped, English side seen in an earlier split"] > 0


def test_counts_add_up(corpus):
    counts = corpus.counts
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped:"))
    assert counts["pairs in the file"] - dropped == counts["pairs kept"]
    later = sum(counts[f"{name}: dropped, English side seen in an earlier split"] for name in ("validation", "test"))
    assert sum(counts[f"{name}: pairs"] for name in SPLITS) == counts["pairs kept"] - later
    assert all(counts[f"{name}: pairs"] == len(corpus[name]) for name in SPLITS)
    assert not any(frame.duplicated(["english", "japanese"]).any() for frame in corpus.splits.values())


def test_cleaning_drops_ascii_japanese_misaligned_lengths_and_duplicates():
    pairs = pd.DataFrame({"synset": ["a", "b", "c", "d", "e"],
                          "english": ["a dog", "a dog", "an ABC order", "x", "a long sentence about many things"],
                          "japanese": ["犬", "犬", "ABC順", "とても長い日本語の文です", "本"]})
    kept, counts = clean_pairs(pairs)
    assert list(kept.synset) == ["a"]
    assert counts["dropped: Japanese side mostly ASCII"] == 1
    assert counts["dropped: length ratio outside 0.1-1.2"] == 2
    assert counts["dropped: duplicate pair"] == 1
    assert ascii_share("ABC順") == 0.75 and ascii_share("") == 0.0
    assert english_key("  The  Dog. ") == english_key("the dog")
    with pytest.raises(ValueError, match="missing"):
        clean_pairs(pairs.drop(columns="japanese"))


def test_split_is_seeded_and_the_fast_subset_is_fixed_and_inside_the_full_split(corpus):
    again = load_japanese_wordnet()
    assert all(again[name].equals(corpus[name]) for name in SPLITS)
    other = load_japanese_wordnet(seed=1)
    assert set(other["test"].synset) != set(corpus["test"].synset)
    fast = load_japanese_wordnet(fast=True)
    assert {name: len(fast[name]) for name in SPLITS} == FAST_SIZES
    for name in SPLITS:
        merged = fast[name].merge(corpus[name], on=["synset", "kind", "index"], how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
    assert load_japanese_wordnet(fast=True)["test"].equals(fast["test"])


def test_split_by_synset_keeps_a_gloss_shared_by_two_synsets_out_of_later_splits():
    pairs = pd.DataFrame({"synset": [f"s{i}" for i in range(40)], "english": ["the same gloss"] * 40,
                          "japanese": ["同じ"] * 40})
    splits, counts = split_by_synset(pairs, (0.5, 0.25, 0.25), seed=0)
    assert len(splits["train"]) == 20 and splits["validation"].empty and splits["test"].empty
    assert counts["validation: dropped, English side seen in an earlier split"] == 10


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(fast="yes"), TypeError, "fast"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(fractions=(0.5, 0.5)), ValueError, "three numbers"),
    (dict(fractions=(0.8, 0.3, -0.1)), ValueError, "fraction"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_japanese_wordnet(**kwargs)


def test_an_unknown_split_is_refused(corpus):
    with pytest.raises(KeyError, match="unknown split"):
        corpus["dev"]


# --------------------------------------------------------------------------- subword tokenizers
SENTENCES = ["the dog runs in the park", "a cat sleeps", "the park is green", "犬が公園で走る", "猫が寝る"] * 20


def test_a_tokenizer_round_trips_and_puts_the_special_tokens_first():
    tokenizer = train_subword_tokenizer(SENTENCES, 60)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [PAD_ID, BOS_ID, EOS_ID, UNK_ID]
    ids = encode_sentences(tokenizer, SENTENCES[:5], add_bos=True)
    assert all(row[0] == BOS_ID and row[-1] == EOS_ID and EOS_ID not in row[1:-1] for row in ids)
    assert decode_ids(tokenizer, ids) == SENTENCES[:5]
    assert decode_ids(tokenizer, [ids[0] + [PAD_ID, PAD_ID, 7]]) == SENTENCES[:1]  # cut at the first </s>
    assert UNK_ID in encode_sentences(tokenizer, ["象"])[0]  # a character never seen


def test_the_tokenizers_round_trip_the_corpus_where_every_character_is_known(corpus):
    for language in ("english", "japanese"):
        texts = list(corpus["train"][language][:3000])
        tokenizer = train_subword_tokenizer(texts, 1000)
        ids = encode_sentences(tokenizer, texts[:300])
        known = [i for i, row in enumerate(ids) if UNK_ID not in row]
        assert len(known) >= 100  # Japanese: a 1,000-piece vocabulary leaves rare kanji out
        decoded = decode_ids(tokenizer, [ids[i] for i in known])
        assert decoded == [unicodedata.normalize("NFKC", texts[i]) for i in known]


def test_the_cached_tokenizer_is_reused_and_keyed_by_its_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPPRUNE_CACHE", str(tmp_path))
    first = cached_subword_tokenizer("toy", SENTENCES, 60)
    files = list((tmp_path / "tokenizers").glob("toy-60-*.json"))
    assert len(files) == 1
    again = cached_subword_tokenizer("toy", SENTENCES, 60)
    assert again.get_vocab() == first.get_vocab()
    cached_subword_tokenizer("toy", SENTENCES[:-1], 60)
    assert len(list((tmp_path / "tokenizers").glob("toy-60-*.json"))) == 2


@pytest.mark.parametrize("call, error, match", [
    (lambda: train_subword_tokenizer("one string", 60), TypeError, "not a single string"),
    (lambda: train_subword_tokenizer([], 60), ValueError, "empty"),
    (lambda: train_subword_tokenizer(["ok", 3], 60), TypeError, "strings"),
    (lambda: train_subword_tokenizer(SENTENCES, 4), ValueError, "special tokens"),
    (lambda: train_subword_tokenizer(SENTENCES, 2.5), ValueError, "vocab_size"),
    (lambda: train_subword_tokenizer(SENTENCES, 60, alphabet=60), ValueError, "room"),
    (lambda: cached_subword_tokenizer("a/b", SENTENCES, 60), ValueError, "name"),
])
def test_bad_tokenizer_arguments_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
