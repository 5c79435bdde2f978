"""Shared fixtures of the unit tests.

Run with ``NLPPRUNE_FAST=1`` and ``NLPPRUNE_CACHE`` pointing at a reusable directory, so the NLTK
conversion built by :func:`nlpprune_lessons.data.setup_nltk` is made once and reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Send results to a fresh temporary directory (NLPPRUNE_CACHE is left as the environment set it)."""
    results = tmp_path / "results"
    monkeypatch.setenv("NLPPRUNE_RESULTS", str(results))
    return results
