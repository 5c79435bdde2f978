"""Tokenising, normalising, vocabularies and padded batches (nlpprune_lessons.text)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpprune_lessons.data import nltk_stopwords
from nlpprune_lessons.text.batching import (
    BucketBatchSampler,
    EncodedDataset,
    PadCollate,
    encode_texts,
    make_loader,
    padding_fraction,
)
from nlpprune_lessons.text.tokenize import is_negation, load_wordpiece_tokenizer, normalise, word_tokenize
from nlpprune_lessons.text.vocab import SPECIALS, Vocab

CORPUS = [
    ["the", "movie", "was", "good"],
    ["the", "plot", "was", "bad"],
    ["the", "movie", "bored", "me"],
]
# counts: the 3, movie 2, was 2, then bad/bored/good/me/plot 1 each


# =========================================================================== Vocab
def test_vocab_specials_come_first():
    vocab = Vocab.build(CORPUS)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] == list(SPECIALS)
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)


def test_vocab_frequency_order_with_alphabetical_ties():
    vocab = Vocab.build(CORPUS)
    assert vocab.itos[4:] == ["the", "movie", "was", "bad", "bored", "good", "me", "plot"]
    assert all(vocab.stoi[t] == i for i, t in enumerate(vocab.itos))


def test_vocab_tie_order_does_not_depend_on_input_order():
    forward = Vocab.build(CORPUS)
    backward = Vocab.build([list(reversed(tokens)) for tokens in reversed(CORPUS)])
    assert forward.itos == backward.itos


def test_vocab_min_freq():
    vocab = Vocab.build(CORPUS, min_freq=2)
    assert vocab.itos == list(SPECIALS) + ["the", "movie", "was"]
    assert "good" not in vocab
    assert Vocab.build(CORPUS, min_freq=4).itos == list(SPECIALS)


def test_vocab_max_size_counts_specials():
    vocab = Vocab.build(CORPUS, max_size=6)
    assert len(vocab) == 6
    assert vocab.itos == list(SPECIALS) + ["the", "movie"]
    assert Vocab.build(CORPUS, max_size=4).itos == list(SPECIALS)
    assert len(Vocab.build(CORPUS, max_size=100)) == 12


@pytest.mark.parametrize("min_freq", [0, -1, 1.5, "2", True, None])
def test_vocab_bad_min_freq(min_freq):
    with pytest.raises(ValueError, match="min_freq must be an int >= 1"):
        Vocab.build(CORPUS, min_freq=min_freq)


@pytest.mark.parametrize("max_size", [3, 0, 5.0])
def test_vocab_bad_max_size(max_size):
    with pytest.raises(ValueError, match="max_size must be None or an int >= 4"):
        Vocab.build(CORPUS, max_size=max_size)


def test_vocab_rejects_bad_specials_and_duplicates():
    with pytest.raises(ValueError, match="specials must start with"):
        Vocab(["a"], specials=("<unk>", "<pad>"))
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "b", "a"])


def test_vocab_without_bos_eos():
    vocab = Vocab(["a"], specials=("<pad>", "<unk>"))
    assert vocab.encode(["a", "z"]) == [2, 1]
    with pytest.raises(ValueError, match="no <bos> token"):
        vocab.encode(["a"], add_bos=True)


def test_encode_decode_round_trip_with_unk():
    vocab = Vocab.build(CORPUS)
    tokens = ["the", "movie", "was", "great"]
    ids = vocab.encode(tokens)
    assert ids == [4, 5, 6, vocab.unk_id]
    assert vocab.decode(ids) == ["the", "movie", "was"]
    assert vocab.decode(ids, skip_specials=False) == ["the", "movie", "was", "<unk>"]
    known = ["good", "plot", "me", "the"]
    assert vocab.decode(vocab.encode(known)) == known


def test_encode_bos_eos_and_tensor_decode():
    vocab = Vocab.build(CORPUS)
    ids = vocab.encode(["good"], add_bos=True, add_eos=True)
    assert ids == [2, vocab.stoi["good"], 3]
    assert vocab.decode(torch.tensor(ids)) == ["good"]
    assert vocab.decode(ids, skip_specials=False) == ["<bos>", "good", "<eos>"]


def test_encode_rejects_a_string():
    with pytest.raises(TypeError, match="not a string"):
        Vocab.build(CORPUS).encode("the movie")


@pytest.mark.parametrize("bad_id", [12, 100, -1])
def test_decode_out_of_range(bad_id):
    vocab = Vocab.build(CORPUS)
    assert len(vocab) == 12
    with pytest.raises(ValueError, match=f"id {bad_id} is outside the vocabulary \\(size 12\\)"):
        vocab.decode([4, bad_id])


def test_vocab_save_load_round_trip(tmp_path):
    vocab = Vocab.build(CORPUS + [["ünïcode", "日本"]])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded.itos == vocab.itos
    assert loaded.specials == vocab.specials
    assert loaded.stoi == vocab.stoi


def test_vocab_load_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"itos": ["a"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved Vocab"):
        Vocab.load(path)
    path.write_text('{"specials": ["<pad>", "<unk>"], "itos": ["a", "<pad>", "<unk>"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens must come first"):
        Vocab.load(path)


def test_oov_rate_hand_example():
    vocab = Vocab(["a", "b"])
    # 5 tokens, of which "x", "y" and "x" are unknown
    assert vocab.oov_rate([["a", "x", "b"], ["y", "x"]]) == pytest.approx(3 / 5)
    assert vocab.oov_rate([["a", "b"]]) == 0.0
    assert vocab.oov_rate([["<unk>"]]) == 0.0  # specials are in the vocabulary


@pytest.mark.parametrize("corpus", [[], [[]], [[], []]])
def test_oov_rate_of_nothing(corpus):
    with pytest.raises(ValueError, match="no tokens given"):
        Vocab(["a"]).oov_rate(corpus)


def test_encode_texts():
    vocab = Vocab.build(CORPUS)
    ids = encode_texts(["the movie", "bad plot"], vocab, str.split, add_eos=True)
    assert ids == [[4, 5, 3], [vocab.stoi["bad"], vocab.stoi["plot"], 3]]


# =========================================================================== normalise
def test_normalise_lowercases():
    assert normalise(["The", "MOVIE", "Was"]) == ["the", "movie", "was"]
    assert normalise(["The", "MOVIE"], lowercase=False) == ["The", "MOVIE"]


@pytest.mark.assets
def test_normalise_removes_stopwords():
    tokens = word_tokenize("This movie is NOT good, it isn't.")
    out = normalise(tokens, stopwords=nltk_stopwords())
    assert out == ["movie", "good", ",", "n't", "."]
    assert normalise(tokens, stopwords=nltk_stopwords(), drop_punctuation=True) == ["movie", "good", "n't"]


def test_normalise_stopwords_are_case_insensitive():
    assert normalise(["The", "Cat"], lowercase=False, stopwords=["THE"]) == ["Cat"]


def test_normalise_stems():
    assert normalise(["running", "Movies", "happily"], stem=True) == ["run", "movi", "happili"]


@pytest.mark.assets
def test_normalise_lemmatizes_in_context():
    assert normalise(word_tokenize("The geese are flying."), lemmatize=True) == ["the", "goose", "be", "fly", "."]
    assert normalise(["I", "was", "running", "home"], lemmatize=True) == ["i", "be", "run", "home"]
    assert normalise(["The", "mice", "ran"], lemmatize=True) == ["the", "mouse", "run"]


@pytest.mark.assets
def test_normalise_lemmatizes_a_lone_plural_noun():
    assert normalise(["geese"], lemmatize=True) == ["goose"]


@pytest.mark.assets
def test_normalise_empty_list():
    assert normalise([], lemmatize=True) == []
    assert normalise([]) == []


def test_normalise_stem_and_lemmatize_conflict():
    with pytest.raises(ValueError, match="stem=True or lemmatize=True, not both"):
        normalise(["running"], stem=True, lemmatize=True)


def test_normalise_rejects_a_string():
    with pytest.raises(TypeError, match="not a string"):
        normalise("running home")


# =========================================================================== negation
@pytest.mark.parametrize("token", ["not", "no", "n't", "didn't", "never", "Not", "NEVER", "wasn", "nobody"])
def test_negations(token):
    assert is_negation(token) is True


@pytest.mark.parametrize("token", ["good", "won", "wo", "know", "nothingness", "nt", "on"])
def test_non_negations(token):
    assert is_negation(token) is False


# =========================================================================== PadCollate
def test_pad_collate_shapes_lengths_labels():
    batch = PadCollate(pad_id=9)([([1, 2, 3], 1), ([4], 0), ([5, 6], 1)])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9], [5, 6, 9]]
    assert batch["input_ids"].dtype == torch.long
    assert batch["lengths"].tolist() == [3, 1, 2]
    assert batch["labels"].tolist() == [1, 0, 1]


def test_pad_collate_without_labels():
    batch = PadCollate()([([7, 8],), ([9],)])
    assert set(batch) == {"input_ids", "lengths"}
    assert batch["input_ids"].tolist() == [[7, 8], [9, 0]]


def test_pad_collate_truncates():
    batch = PadCollate(pad_id=0, max_length=2)([([1, 2, 3, 4], 1), ([5], 0)])
    assert batch["input_ids"].shape == (2, 2)
    assert batch["input_ids"].tolist() == [[1, 2], [5, 0]]
    assert batch["lengths"].tolist() == [2, 1]


@pytest.mark.parametrize("max_length", [0, -3])
def test_pad_collate_bad_max_length(max_length):
    with pytest.raises(ValueError, match="max_length must be None or >= 1"):
        PadCollate(max_length=max_length)


# =========================================================================== EncodedDataset
def test_encoded_dataset_items():
    data = EncodedDataset([[1, 2], [3]], [0, 1])
    assert len(data) == 2
    assert data[1] == ([3], 1)
    assert data.lengths == [2, 1]
    assert EncodedDataset([[1, 2]])[0] == ([1, 2],)


def test_encoded_dataset_rejects_empty_sequences():
    with pytest.raises(ValueError, match="empty sequences cannot be batched"):
        EncodedDataset([[1, 2], []], [0, 1])


def test_encoded_dataset_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="3 sequences but 2 labels"):
        EncodedDataset([[1], [2], [3]], [0, 1])


# =========================================================================== bucketing
@pytest.fixture(scope="module")
def random_lengths():
    return np.random.default_rng(0).integers(1, 101, size=1003).tolist()


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("pool_batches", [1, 5, 50])
def test_bucket_sampler_covers_every_index_once(random_lengths, shuffle, pool_batches):
    sampler = BucketBatchSampler(random_lengths, batch_size=16, shuffle=shuffle, pool_batches=pool_batches)
    for _ in range(2):  # two epochs
        batches = list(sampler)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(len(random_lengths)))
        assert len(batches) == len(sampler)
        assert all(1 <= len(b) <= 16 for b in batches)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 1003])
def test_bucket_sampler_len_with_drop_last(shuffle, n):
    lengths = list(range(1, n + 1))
    sampler = BucketBatchSampler(lengths, batch_size=16, shuffle=shuffle, pool_batches=3, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == n // 16
    assert all(len(b) == 16 for b in batches)


def test_bucket_sampler_is_deterministic(random_lengths):
    first = list(BucketBatchSampler(random_lengths, 32, seed=7))
    second = list(BucketBatchSampler(random_lengths, 32, seed=7))
    other = list(BucketBatchSampler(random_lengths, 32, seed=8))
    assert first == second
    assert first != other


def test_bucket_sampler_reshuffles_each_epoch(random_lengths):
    sampler = BucketBatchSampler(random_lengths, 32, seed=7)
    assert list(sampler) != list(sampler)


def test_bucket_sampler_without_shuffle_follows_length_order(random_lengths):
    batches = list(BucketBatchSampler(random_lengths, 32, shuffle=False))
    flat_lengths = [random_lengths[i] for batch in batches for i in batch]
    assert flat_lengths == sorted(random_lengths)


def test_bucket_sampler_bad_arguments():
    with pytest.raises(ValueError, match="batch_size and pool_batches must be >= 1"):
        BucketBatchSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="batch_size and pool_batches must be >= 1"):
        BucketBatchSampler([1, 2], batch_size=2, pool_batches=0)


def test_bucketing_pads_less_than_random_batches(random_lengths):
    sequences = [[1] * n for n in random_lengths]
    labels = [0] * len(sequences)
    bucketed = padding_fraction(make_loader(sequences, labels, batch_size=32, shuffle=True, bucket=True))
    random_batches = padding_fraction(make_loader(sequences, labels, batch_size=32, shuffle=True, bucket=False))
    assert 0.0 <= bucketed < 0.1
    assert random_batches > 0.3
    assert bucketed < random_batches / 4


def test_make_loader_yields_every_example_once(random_lengths):
    sequences = [[i + 1] * n for i, n in enumerate(random_lengths)]  # first id identifies the example
    labels = [i % 2 for i in range(len(sequences))]
    for bucket in (True, False):
        seen = []
        for batch in make_loader(sequences, labels, batch_size=32, shuffle=True, bucket=bucket, pad_id=0):
            for row, length, label in zip(batch["input_ids"], batch["lengths"], batch["labels"]):
                i = int(row[0]) - 1
                assert int(length) == random_lengths[i]
                assert int(label) == labels[i]
                assert (row[length:] == 0).all()
                seen.append(i)
        assert sorted(seen) == list(range(len(sequences)))


def test_padding_fraction_hand_example():
    loader = make_loader([[1, 2, 3, 4], [5], [6, 7]], batch_size=3, bucket=False)
    # one batch of 3 x 4 = 12 positions, 7 of them real
    assert padding_fraction(loader) == pytest.approx(5 / 12)
    with pytest.raises(ValueError, match="no batches"):
        padding_fraction([])


# =========================================================================== WordPiece
@pytest.mark.assets
def test_wordpiece_splits_unwatchable():
    tokenizer = load_wordpiece_tokenizer()
    pieces = tokenizer.tokenize("unwatchable")
    assert len(pieces) > 1
    assert pieces[0] == "un"
    assert all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "unwatchable"
    assert tokenizer.tokenize("The") == ["the"]  # uncased
    assert len(tokenizer) == 30522
