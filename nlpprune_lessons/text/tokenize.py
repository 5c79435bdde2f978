"""Word tokens from NLTK (Treebank rules after punkt sentence splitting, offline), subword tokens
from the MiniLM WordPiece tokenizer, normalisation (lowercasing, stopwords, stemming or
lemmatising) and negation cues."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from nlpprune_lessons.core.assets import asset_path, hub_offline
from nlpprune_lessons.data.nltk_data import setup_nltk

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


def negation_safe_stopwords(words: Iterable[str]) -> list[str]:
    """``words`` (a stopword list, e.g. NLTK's) without its negation cues (:func:`is_negation`), in their
    order; every other word is kept, including ``"won"``, which after Treebank tokenisation is only the
    verb. Removing these words leaves *not*, *no*, *n't* and the clipped *didn* in the text."""
    if isinstance(words, str):
        raise TypeError("words must be a list of words, not a single string")
    words = list(words)
    odd = [w for w in words if not isinstance(w, str)]
    if odd:
        raise TypeError(f"words must be strings, got {type(odd[0]).__name__}: {odd[0]!r}")
    return [w for w in words if not is_negation(w)]


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
