"""Run mode, seeding, device choice and directories (nlpprune_lessons.core.config)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nlpprune_lessons.core import config


# --------------------------------------------------------------------------- FAST / FULL
@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE", " Yes ", "on"])
def test_fast_values(monkeypatch, value):
    monkeypatch.setenv("NLPPRUNE_FAST", value)
    assert config.is_fast() is True
    assert config.mode() == "FAST"


@pytest.mark.parametrize("value", ["0", "", "false", "No", "off"])
def test_full_values(monkeypatch, value):
    monkeypatch.setenv("NLPPRUNE_FAST", value)
    assert config.is_fast() is False
    assert config.mode() == "FULL"


def test_full_when_unset(monkeypatch):
    monkeypatch.delenv("NLPPRUNE_FAST", raising=False)
    assert config.is_fast() is False
    assert config.mode() == "FULL"


@pytest.mark.parametrize("value", ["maybe", "2", "fast", "y e s"])
def test_garbage_fast_value_is_rejected(monkeypatch, value):
    monkeypatch.setenv("NLPPRUNE_FAST", value)
    with pytest.raises(ValueError, match=r"NLPPRUNE_FAST=.*not understood"):
        config.is_fast()
    with pytest.raises(ValueError, match="NLPPRUNE_FAST"):
        config.mode()


def test_pick_follows_the_mode(monkeypatch):
    monkeypatch.setenv("NLPPRUNE_FAST", "1")
    assert config.pick(fast=2, full=10) == 2
    monkeypatch.setenv("NLPPRUNE_FAST", "0")
    assert config.pick(fast=2, full=10) == 10
    monkeypatch.delenv("NLPPRUNE_FAST")
    assert config.pick(fast="small", full="big") == "big"


# --------------------------------------------------------------------------- seeding
def _draw():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_set_seed_reproduces_every_generator():
    config.set_seed(123)
    first = _draw()
    config.set_seed(123)
    second = _draw()
    assert first == second
    config.set_seed(124)
    other = _draw()
    # each of the three generators must depend on the seed
    assert all(a != b for a, b in zip(first, other))


def test_set_seed_asks_for_deterministic_algorithms():
    config.set_seed(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed", [1.0, "0", None, True])
def test_set_seed_rejects_non_int(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        config.set_seed(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_set_seed_rejects_out_of_range(seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        config.set_seed(seed)


def test_set_seed_accepts_range_ends():
    config.set_seed(0)
    config.set_seed(2**32 - 1)


# --------------------------------------------------------------------------- devices
@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("NLPPRUNE_DEVICE", raising=False)


def test_default_device_is_cpu_without_cuda(no_cuda):
    assert config.get_device() == torch.device("cpu")


def test_default_device_on_this_machine(monkeypatch):
    monkeypatch.delenv("NLPPRUNE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config.get_device().type == expected


def test_cpu_via_env(monkeypatch):
    monkeypatch.setenv("NLPPRUNE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")


def test_argument_overrides_env(monkeypatch):
    monkeypatch.setenv("NLPPRUNE_DEVICE", "nonsense")
    assert config.get_device("cpu") == torch.device("cpu")


def test_cuda_without_cuda_is_rejected(no_cuda):
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.get_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.get_device("cuda:0")


def test_cuda_via_env_without_cuda_is_rejected(no_cuda, monkeypatch):
    monkeypatch.setenv("NLPPRUNE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="'cuda'.*CUDA is not available"):
        config.get_device()


@pytest.mark.parametrize("name", ["nonsense", "gpu", "cpu:x"])
def test_nonsense_device_is_rejected(name):
    with pytest.raises(ValueError, match=f"unknown device '{name}'"):
        config.get_device(name)


def test_unsupported_device_type_is_rejected():
    with pytest.raises(ValueError, match="unsupported device type 'meta'"):
        config.get_device("meta")


# --------------------------------------------------------------------------- directories
def test_cache_dir_env_override_is_created(monkeypatch, tmp_path):
    target = tmp_path / "a" / "cache"
    monkeypatch.setenv("NLPPRUNE_CACHE", str(target))
    assert config.cache_dir() == target
    assert target.is_dir()


def test_cache_dir_falls_back_to_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NLPPRUNE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "nlpprune_lessons"
    assert (tmp_path / "xdg" / "nlpprune_lessons").is_dir()


def test_results_dir_env_override_is_created(isolated_dirs):
    assert not isolated_dirs.exists()
    assert config.results_dir() == isolated_dirs
    assert isolated_dirs.is_dir()


def test_results_dir_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NLPPRUNE_RESULTS", "~/res")
    assert config.results_dir() == tmp_path / "res"
    assert (tmp_path / "res").is_dir()


def test_seeded_draws_from_the_seed_and_gives_the_callers_random_state_back():
    config.set_seed(5)
    expected = torch.rand(3), random.random(), np.random.rand()
    config.set_seed(5)
    with config.seeded(11):
        inside = torch.rand(3), random.random(), np.random.rand()
    after = torch.rand(3), random.random(), np.random.rand()
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]
    config.set_seed(11)
    assert torch.equal(inside[0], torch.rand(3)) and inside[1:] == (random.random(), np.random.rand())
