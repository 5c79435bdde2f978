"""Run mode (FAST/FULL), seeding, device choice and the course's paths.

FAST mode (``NLPPRUNE_FAST=1``; set by the tests, CI and Binder) runs the same code on smaller
data with fewer steps; FULL mode (the default) gives the real results.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

FAST_ENV = "NLPPRUNE_FAST"
DEVICE_ENV = "NLPPRUNE_DEVICE"
CACHE_ENV = "NLPPRUNE_CACHE"
RESULTS_ENV = "NLPPRUNE_RESULTS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

#: The repository checkout this package lives in (``None`` when installed elsewhere).
PROJECT_ROOT: Path | None = (
    Path(__file__).resolve().parents[2]
    if (Path(__file__).resolve().parents[2] / "notebooks").is_dir()
    else None
)


def is_fast() -> bool:
    """Return True in FAST mode, read from ``NLPPRUNE_FAST`` at every call."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{FAST_ENV}={os.environ[FAST_ENV]!r} is not understood; use 1/true/yes for FAST mode "
        "or 0/false/no (or leave it unset) for FULL mode"
    )


def mode() -> str:
    """Return ``"FAST"`` or ``"FULL"``."""
    return "FAST" if is_fast() else "FULL"


def pick(fast: T, full: T) -> T:
    """Choose a setting by mode: ``epochs = pick(fast=2, full=10)``."""
    return fast if is_fast() else full


def set_seed(seed: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask torch for deterministic kernels."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs this for deterministic matmuls on CUDA; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block Python, NumPy and torch draw from ``seed`` as after :func:`set_seed`; the
    caller's random states come back when it ends, so a library call that seeds leaves global state
    alone. (Deterministic kernels stay as the caller set them.)"""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        set_seed(seed, deterministic=False)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def get_device(name: str | None = None) -> torch.device:
    """Return the device to use: ``name``, else ``NLPPRUNE_DEVICE``, else CUDA if present, else CPU."""
    requested = name if name is not None else os.environ.get(DEVICE_ENV, "").strip()
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(
            f"unknown device {requested!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {requested!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {requested!r} requested but MPS is not available; use 'cpu'")
    if device.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"unsupported device type {device.type!r}; use 'cpu', 'cuda' or 'mps'")
    return device


def cache_dir() -> Path:
    """Directory for derived files (converted NLTK data, trained checkpoints); created on demand.

    ``NLPPRUNE_CACHE`` overrides; otherwise ``$XDG_CACHE_HOME/nlpprune_lessons`` or
    ``~/.cache/nlpprune_lessons``.
    """
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
        path = Path(base) / "nlpprune_lessons"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Directory where notebooks and benchmarks write ``<name>.json``; created on demand.

    ``NLPPRUNE_RESULTS`` overrides; otherwise ``results/`` of the checkout, or of the working
    directory when the package is installed outside a checkout.
    """
    override = os.environ.get(RESULTS_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
    else:
        path = (PROJECT_ROOT or Path.cwd()) / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path
