"""Encoded texts as padded batches: a dataset of token ids, padding collation, length-bucketed
sampling (less padding, same epoch), loaders, the share of padding a loader produces, and token-budget
batches of sentence pairs for translation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nlpprune_lessons.text.vocab import Vocab


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


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def translation_batches(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], *, max_tokens: int,
                        shuffle: bool = True, seed: int = 0, pad_id: int = 0, bos_id: int = 1) -> list[dict]:
    """Batches of sentence pairs holding at most ``max_tokens`` padded source or target positions each,
    of similar lengths (sorted by length, ties broken at random), in shuffled order when ``shuffle``.
    Each batch: ``source`` (B, S), ``target_in`` (``<s>`` + target without its last token) and
    ``target_out`` (the target, ending with ``</s>``), padded with ``pad_id``."""
    if len(sources) != len(targets) or not sources:
        raise ValueError(f"sources and targets must be non-empty and of equal length, got {len(sources)} and "
                         f"{len(targets)}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    longest = max(max(len(s), len(t)) for s, t in zip(sources, targets))
    if longest > max_tokens or min(min(len(s), len(t)) for s, t in zip(sources, targets)) == 0:
        raise ValueError(f"every sentence needs 1 to max_tokens ({max_tokens}) tokens; the longest has {longest}")
    rng = np.random.default_rng(seed)
    lengths = np.array([max(len(s), len(t)) for s, t in zip(sources, targets)])
    order = np.lexsort((rng.random(len(lengths)) if shuffle else np.arange(len(lengths)), lengths))
    groups, current, width = [], [], 0
    for i in order:
        if current and (len(current) + 1) * max(width, lengths[i]) > max_tokens:
            groups.append(current)
            current, width = [], 0
        current.append(int(i))
        width = max(width, int(lengths[i]))
    groups.append(current)
    if shuffle:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return [{"source": _pad([sources[i] for i in g], pad_id),
             "target_in": _pad([[bos_id, *targets[i][:-1]] for i in g], pad_id),
             "target_out": _pad([targets[i] for i in g], pad_id)} for g in groups]
