"""Tokenising, normalising, vocabularies, encoding and padded batches.

Word-level tokens come from NLTK (Treebank rules after punkt sentence splitting, offline);
subword tokens from the MiniLM WordPiece tokenizer via transformers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .assets import asset_path, hub_offline
from .data.nltk_data import setup_nltk

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)

# Negation cues as word tokens: whole words, Treebank's "n't", and the clipped forms ("didn",
# "wasn", ...) that NLTK's stopword list holds for tokenisers that split "didn't" into "didn ' t".
# "won" (from "won't") is left out: after Treebank tokenisation ("wo", "n't") it is only the verb.
_NEGATION_WORDS = frozenset(
    "no not nor never none nobody nothing neither nowhere cannot n't "
    "ain aren couldn didn doesn don hadn hasn haven isn mightn mustn needn shan shouldn wasn "
    "weren wouldn".split()
)


def is_negation(token: str) -> bool:
    """True for negation tokens: ``not``, ``no``, ``never``, ``n't``, ``didn't``, ``didn``, ..."""
    t = token.lower()
    return t in _NEGATION_WORDS or t.endswith("n't")


# --------------------------------------------------------------------------- tokenisers
def word_tokenize(text: str, lowercase: bool = False) -> list[str]:
    """NLTK word tokens (punkt sentences, then Treebank rules: ``"wasn't"`` -> ``was``, ``n't``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    setup_nltk()
    import nltk

    tokens = nltk.word_tokenize(text)
    return [t.lower() for t in tokens] if lowercase else tokens


@lru_cache(maxsize=1)
def load_wordpiece_tokenizer():
    """The MiniLM-L6 WordPiece tokenizer (uncased, 30,522 tokens), loaded offline."""
    hub_offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(asset_path("minilm")), local_files_only=True)


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=1)
def _lemmatizer():
    from nltk.stem import WordNetLemmatizer

    setup_nltk()
    return WordNetLemmatizer()


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    return _stemmer().stem(token)


@lru_cache(maxsize=200_000)
def _lemma(token: str, wordnet_pos: str) -> str:
    lemma = _lemmatizer().lemmatize(token, wordnet_pos)
    if lemma == token and wordnet_pos != "n":
        # The tagger errs on short or odd contexts ("geese" tagged JJ); WordNet then has no entry
        # for that word class and returns the word unchanged. Try the noun reading before giving up.
        lemma = _lemmatizer().lemmatize(token, "n")
    return lemma


def _wordnet_pos(treebank_tag: str) -> str:
    return {"J": "a", "V": "v", "R": "r"}.get(treebank_tag[:1], "n")


def normalise(
    tokens: Sequence[str],
    *,
    lowercase: bool = True,
    stem: bool = False,
    lemmatize: bool = False,
    stopwords: Iterable[str] | None = None,
    drop_punctuation: bool = False,
) -> list[str]:
    """Apply the usual normalisation steps to one token list, in a fixed order.

    Order: POS-tag (only when lemmatising, on the original tokens), lowercase, drop stopwords
    (compared lower-cased), drop punctuation, then Porter-stem or WordNet-lemmatise.
    """
    if stem and lemmatize:
        raise ValueError("choose stem=True or lemmatize=True, not both")
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of tokens, not a string; tokenise first")
    stop = frozenset(w.lower() for w in stopwords) if stopwords is not None else frozenset()
    if lemmatize:
        import nltk

        setup_nltk(tagger=True)
        tags = [tag for _, tag in nltk.pos_tag(list(tokens))] if tokens else []
    else:
        tags = [""] * len(tokens)
    out = []
    for token, tag in zip(tokens, tags):
        word = token.lower() if lowercase else token
        if word.lower() in stop:
            continue
        if drop_punctuation and not any(ch.isalnum() for ch in word):
            continue
        if stem:
            word = _stem(word)
        elif lemmatize:
            word = _lemma(word, _wordnet_pos(tag))
        out.append(word)
    return out


# --------------------------------------------------------------------------- vocabulary
class Vocab:
    """Token <-> id mapping with ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = SPECIALS):
        if list(specials[:2]) != [PAD, UNK]:
            raise ValueError(f"specials must start with {PAD!r} and {UNK!r}, got {list(specials)}")
        itos = list(specials) + [t for t in tokens if t not in set(specials)]
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary tokens must be unique")
        self.itos: list[str] = itos
        self.specials: tuple[str, ...] = tuple(specials)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> "Vocab":
        """Vocabulary of the tokens seen at least ``min_freq`` times, most frequent first.

        Ties are broken alphabetically, so the result does not depend on input order.
        ``max_size`` counts the special tokens too.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(specials)):
            raise ValueError(f"max_size must be None or an int >= {len(specials)}, got {max_size!r}")
        counts = Counter(t for tokens in token_lists for t in tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls(ranked, specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)})"

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    @property
    def bos_id(self) -> int:
        return self._special_id(BOS)

    @property
    def eos_id(self) -> int:
        return self._special_id(EOS)

    def _special_id(self, token: str) -> int:
        if token not in self.stoi:
            raise ValueError(f"this vocabulary has no {token} token (specials: {list(self.specials)})")
        return self.stoi[token]

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids; unknown tokens map to ``<unk>``."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a list of tokens, not a string; tokenise first")
        unk = self.unk_id
        ids = [self.stoi.get(t, unk) for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> list[str]:
        """Tokens for ``ids``; special tokens are dropped unless ``skip_specials=False``."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self)})")
            token = self.itos[i]
            if not (skip_specials and token in self.specials):
                out.append(token)
        return out

    def oov_rate(self, token_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tokens (not types) in ``token_lists`` that are not in the vocabulary."""
        total = unknown = 0
        for tokens in token_lists:
            total += len(tokens)
            unknown += sum(t not in self.stoi for t in tokens)
        if total == 0:
            raise ValueError("no tokens given: the OOV rate of an empty corpus is undefined")
        return unknown / total

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (tokens in id order, and the specials)."""
        payload = {"specials": list(self.specials), "itos": self.itos}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """Read a vocabulary written by :meth:`save`."""
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if not {"specials", "itos"} <= payload.keys():
            raise ValueError(f"{path} is not a saved Vocab (needs 'specials' and 'itos')")
        specials = payload["specials"]
        if payload["itos"][: len(specials)] != specials:
            raise ValueError(f"{path}: the special tokens must come first")
        return cls(payload["itos"][len(specials) :], specials)


# --------------------------------------------------------------------------- batching
class EncodedDataset(Dataset):
    """Token-id sequences with optional integer labels."""

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int] | None = None):
        if labels is not None and len(labels) != len(sequences):
            raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
        if any(len(s) == 0 for s in sequences):
            raise ValueError("empty sequences cannot be batched; drop them or add <bos>/<eos>")
        self.sequences = [list(map(int, s)) for s in sequences]
        self.labels = None if labels is None else [int(y) for y in labels]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int):
        return (self.sequences[i], self.labels[i]) if self.labels is not None else (self.sequences[i],)

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.sequences]


class PadCollate:
    """Collate ``(ids[, label])`` items into right-padded ``input_ids [B, T]`` and ``lengths [B]``.

    ``max_length`` truncates longer sequences (their ``lengths`` entry is the truncated length).
    ``attention_mask=True`` adds ``attention_mask [B, T]`` (1 = real token, 0 = padding), which
    transformer encoders read instead of ``lengths``.
    """

    def __init__(self, pad_id: int = 0, max_length: int | None = None, attention_mask: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be None or >= 1, got {max_length}")
        self.pad_id = pad_id
        self.max_length = max_length
        self.attention_mask = attention_mask

    def __call__(self, items) -> dict[str, torch.Tensor]:
        seqs = [item[0][: self.max_length] for item in items]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        input_ids = torch.full((len(seqs), int(lengths.max())), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        batch = {"input_ids": input_ids, "lengths": lengths}
        if self.attention_mask:
            batch["attention_mask"] = (torch.arange(input_ids.size(1)) < lengths[:, None]).long()
        if len(items[0]) > 1:
            batch["labels"] = torch.tensor([item[1] for item in items], dtype=torch.long)
        return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length sequences, so little of each batch is padding.

    Indices are shuffled (seeded, new order each epoch), cut into pools of
    ``batch_size * pool_batches``, sorted by length inside each pool and cut into batches; the
    batch order is shuffled again. With ``shuffle=False`` batches follow global length order.
    The order depends on ``seed`` and the epoch number only: each pass advances the epoch, and
    :meth:`set_epoch` (which the training loops call) pins it, so a training run does not depend
    on how often the loader was read before.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1 or pool_batches < 1:
            raise ValueError("batch_size and pool_batches must be >= 1")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            pools = [order]
        else:
            order = rng.permutation(len(self.lengths))
            size = self.batch_size * self.pool_batches
            pools = [order[i : i + size] for i in range(0, len(order), size)]
        batches = []
        for pool in pools:
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return iter(batches)

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.lengths) // self.batch_size  # a lower bound when pools leave remainders
        if not self.shuffle:
            return math.ceil(len(self.lengths) / self.batch_size)
        size = self.batch_size * self.pool_batches
        full, rest = divmod(len(self.lengths), size)
        return full * self.pool_batches + math.ceil(rest / self.batch_size)


def make_loader(
    sequences: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    bucket: bool = True,
    pad_id: int = 0,
    max_length: int | None = None,
    seed: int = 0,
    attention_mask: bool = False,
) -> DataLoader:
    """A DataLoader of padded batches (``input_ids``, ``lengths``[, ``labels``]).

    ``bucket=True`` groups similar lengths (:class:`BucketBatchSampler`); ``bucket=False`` batches
    in the given order, shuffled with ``seed`` when ``shuffle=True``. ``attention_mask=True`` adds
    the transformer padding mask to each batch (:class:`PadCollate`).
    """
    dataset = EncodedDataset(sequences, labels)
    collate = PadCollate(pad_id, max_length, attention_mask)
    if bucket:
        sampler = BucketBatchSampler(dataset.lengths, batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)


def padding_fraction(loader: Iterable[dict[str, torch.Tensor]]) -> float:
    """Share of the positions in all batches of ``loader`` that are padding."""
    padded = real = 0
    for batch in loader:
        padded += batch["input_ids"].numel()
        real += int(batch["lengths"].sum())
    if padded == 0:
        raise ValueError("the loader produced no batches")
    return 1.0 - real / padded


def encode_texts(
    texts: Iterable[str], vocab: Vocab, tokenize: Callable[[str], list[str]], **encode_kwargs
) -> list[list[int]]:
    """Tokenise and encode each text (``encode_kwargs`` go to :meth:`Vocab.encode`)."""
    return [vocab.encode(tokenize(t), **encode_kwargs) for t in texts]


# --------------------------------------------------------------------------- language-model streams
def batchify(ids: Sequence[int] | torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` contiguous rows ``[B, N]`` (the tail that does not fit is dropped).

    Row ``b`` continues where it left off from one BPTT window to the next, so a recurrent state
    can be carried across windows (truncated backpropagation through time).
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for {batch_size} rows of at least 2 tokens")
    return ids[: n * batch_size].view(batch_size, n)


def num_bptt_windows(data: torch.Tensor, bptt: int) -> int:
    """How many windows :func:`bptt_batches` yields for ``data`` (one optimiser step each in training)."""
    return math.ceil((data.size(1) - 1) / bptt)


def bptt_batches(data: torch.Tensor, bptt: int) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive windows of a batchified stream: ``input_ids`` ``[B, T]`` and next-token ``targets``."""
    if data.ndim != 2:
        raise ValueError(f"data must be [batch, tokens] from batchify, got shape {tuple(data.shape)}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    for start in range(0, data.size(1) - 1, bptt):
        end = min(start + bptt, data.size(1) - 1)
        yield {"input_ids": data[:, start:end], "targets": data[:, start + 1 : end + 1]}
