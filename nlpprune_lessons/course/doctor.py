"""``nlpprune doctor``: check the Python environment, run mode, directories and offline assets."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.core.assets import ASSETS, MissingAssetError, asset_path

#: (distribution name, required): required ones make the doctor fail when missing.
PACKAGES: tuple[tuple[str, bool], ...] = (
    ("transformers", True),
    ("nltk", True),
    ("numpy", True),
    ("pandas", True),
    ("matplotlib", True),
    ("ipywidgets", True),
    ("nbval", False),
    ("jupyterlab", False),
)


@dataclass(frozen=True)
class Check:
    """The outcome of one check; ``fix`` is a command or hint that repairs a failure."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    fix: str | None = None


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip(" *\t")]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, version if ok else f"{version} (3.10 or newer needed)",
                 fix=None if ok else "install Python 3.10 or newer")


def _package(name: str, required: bool) -> Check:
    try:
        return Check(name, True, importlib.metadata.version(name), required)
    except importlib.metadata.PackageNotFoundError:
        detail = "not installed" if required else "not installed (optional)"
        return Check(name, False, detail, required, fix=f"pip install {name}")


def _setting(name: str, read: Callable[[], str], fix: str) -> Check:
    """A check that passes when ``read()`` returns without ValueError."""
    try:
        return Check(name, True, read())
    except ValueError as err:
        return Check(name, False, str(err), fix=fix)


def _directory(name: str, get: Callable[[], Path], env: str) -> Check:
    try:
        path = get()
    except OSError as err:
        return Check(name, False, _first_line(err), fix=f"set {env} to a writable directory")
    writable = os.access(path, os.W_OK)
    return Check(name, writable, str(path) if writable else f"{path} is not writable",
                 fix=None if writable else f"set {env} to a writable directory")


def _asset(key: str) -> Check:
    asset = ASSETS[key]
    try:
        return Check(f"asset {key}", True, str(asset_path(key)))
    except MissingAssetError:
        return Check(f"asset {key}", False, f"missing ({asset.pip_name} {asset.version})",
                     fix=asset.install_command)


def _nltk() -> Check:
    try:
        import nltk

        from nlpprune_lessons.data.nltk_data import setup_nltk

        setup_nltk()
        tokens = nltk.word_tokenize("It wasn't bad.")
    except MissingAssetError as err:
        return Check("nltk offline", False, _first_line(err), fix=ASSETS["nltk_data"].install_command)
    except Exception as err:  # noqa: BLE001 - the doctor reports any failure instead of crashing
        return Check("nltk offline", False, _first_line(err))
    return Check("nltk offline", True, " | ".join(tokens))


def run_checks() -> list[Check]:
    """Run every check and return them in display order."""
    checks = [_python(), Check("torch", True, torch.__version__)]
    checks += [_package(name, required) for name, required in PACKAGES]
    checks += [
        _setting("device", lambda: str(config.get_device()),
                 f"unset {config.DEVICE_ENV} or set it to 'cpu'"),
        Check("torch threads", True, str(torch.get_num_threads())),
        _setting("mode", config.mode, f"set {config.FAST_ENV}=1 (FAST) or {config.FAST_ENV}=0 (FULL)"),
        _directory("cache dir", config.cache_dir, config.CACHE_ENV),
        _directory("results dir", config.results_dir, config.RESULTS_ENV),
    ]
    checks += [_asset(key) for key in ASSETS]
    checks.append(_nltk())
    return checks


def failed(checks: Sequence[Check]) -> list[Check]:
    """The required checks that did not pass."""
    return [c for c in checks if c.required and not c.ok]


def format_report(checks: Sequence[Check]) -> str:
    """An aligned table (✔ pass, ✘ failure, ! optional warning) followed by the fixes to run."""
    width = max((len(c.name) for c in checks), default=0)
    marks = ["✔" if c.ok else "✘" if c.required else "!" for c in checks]
    lines = [f"{mark} {c.name:<{width}}  {c.detail}" for mark, c in zip(marks, checks)]
    bad = failed(checks)
    if not bad:
        return "\n".join([*lines, "", "All required checks passed."])
    fixes = list(dict.fromkeys(c.fix for c in bad if c.fix))
    lines += ["", f"{len(bad)} required check(s) failed."]
    if fixes:
        lines += ["To fix:", *(f"  {fix}" for fix in fixes)]
    return "\n".join(lines)
