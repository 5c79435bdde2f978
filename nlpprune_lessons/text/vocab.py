"""A word vocabulary with special tokens, frequency cut-off and out-of-vocabulary handling."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


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
