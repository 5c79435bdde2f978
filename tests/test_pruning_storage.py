"""Unit tests of nlpprune_lessons.pruning.storage (bitmask + values safetensors files) on tiny seeded models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from nlpprune_lessons.pruning import (
    effective_state_dict,
    load_sparse,
    make_permanent,
    prune,
    pruned_params,
    save_sparse,
    sparse_storage_report,
)
from nlpprune_lessons.pruning.storage import METADATA_KEY

MLP_WEIGHTS = {"0.weight", "2.weight", "4.weight"}


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))


class TiedLM(nn.Module):
    """Embedding(20, 8) -> Linear(8, 8) -> output Linear(8, 20) sharing the embedding's weight."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.proj(self.emb(ids))))


def inputs(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def rewrite_metadata(path: Path, **changes) -> None:
    """Rewrite the sparse metadata of ``path`` with ``changes`` (None deletes a key)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[METADATA_KEY])
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(load_file(str(path)), str(path), metadata={METADATA_KEY: json.dumps(meta)})


# --- round trips -------------------------------------------------------------------------------


def test_round_trip_of_a_masked_mlp_is_exact_and_small(tmp_path):
    model = mlp()
    prune(model, 0.9, scope="layer")  # masks stay attached
    summary = save_sparse(model, tmp_path / "mlp.safetensors")
    loaded = load_sparse(summary["path"], mlp(seed=1))

    x = inputs(5, 32)
    assert torch.equal(loaded(x), model(x))
    expected = effective_state_dict(model)
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    assert not pruned_params(loaded)

    save_file({k: v.contiguous() for k, v in expected.items()}, str(tmp_path / "dense.safetensors"))
    assert summary["file_bytes"] == summary["path"].stat().st_size
    assert summary["file_bytes"] < (tmp_path / "dense.safetensors").stat().st_size
    assert summary["dense_bytes"] == sum(v.numel() * 4 for v in expected.values())
    assert set(summary["sparse_tensors"]) == MLP_WEIGHTS
    for name, info in summary["sparse_tensors"].items():
        weight = expected[name]
        nonzeros = int((weight != 0).sum())
        assert info["sparsity"] == pytest.approx(0.9, abs=0.01)
        assert info["stored_bytes"] == math.ceil(weight.numel() / 8) + 4 * nonzeros
        assert info["stored_bytes"] <= 0.15 * info["dense_bytes"]


def test_tiny_bert_is_rebuilt_from_the_file_alone(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    params = [(m, "weight") for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." in n]
    prune(model, 0.8, params=params)
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 8:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=attention_mask).logits

    save_sparse(model, tmp_path / "bert.safetensors")
    loaded = load_sparse(tmp_path / "bert.safetensors")

    assert type(loaded) is transformers.BertForSequenceClassification and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, attention_mask=attention_mask).logits, expected)
    weights = [m.weight for n, m in loaded.named_modules() if isinstance(m, nn.Linear) and ".encoder." in n]
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == round(0.8 * total)


def test_sparse_form_is_used_only_when_it_saves_bytes(tmp_path):
    layer = nn.Linear(64, 64).half()
    with torch.no_grad():
        layer.weight[0, :200 // 64] = 0  # a few zeros: float16 bitmask + values would be larger
    summary = save_sparse(layer, tmp_path / "f16.safetensors", min_sparsity=0.0)
    assert summary["sparse_tensors"] == {}
    assert torch.equal(load_sparse(summary["path"], nn.Linear(64, 64).half()).weight, layer.weight)


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    model = TiedLM()
    prune(model, 0.5, params=[(model.proj, "weight")])
    with torch.no_grad():
        model.emb.weight[::2] = 0  # half the rows of the tied table: it goes sparse too
    summary = save_sparse(model, tmp_path / "tied.safetensors")
    with safe_open(str(summary["path"]), framework="pt") as handle:
        assert json.loads(handle.metadata()[METADATA_KEY])["aliases"] == {"out.weight": "emb.weight"}
        assert not any(key.startswith("out.weight") for key in handle.keys())
    assert set(summary["sparse_tensors"]) == {"emb.weight", "proj.weight"}

    loaded = load_sparse(summary["path"], TiedLM(seed=1))
    assert loaded.out.weight is loaded.emb.weight
    assert torch.equal(loaded.emb.weight, model.emb.weight)
    ids = torch.tensor([[1, 5, 19], [0, 2, 7]])
    assert torch.equal(loaded(ids), model(ids))


def test_overlapping_views_of_one_storage_are_stored_separately(tmp_path):
    model = mlp()
    model.register_buffer("rows", model[0].weight.detach()[:3])  # shares storage, not the same tensor
    save_sparse(model, tmp_path / "views.safetensors")
    fresh = mlp(seed=1)
    fresh.register_buffer("rows", torch.empty(3, 32))
    load_sparse(tmp_path / "views.safetensors", fresh)
    assert torch.equal(fresh.rows, model[0].weight[:3])


# --- effective_state_dict and what is stored sparse ----------------------------------------------


def test_effective_state_dict_folds_masks_like_make_permanent():
    model = mlp()
    assert effective_state_dict(model).keys() == model.state_dict().keys()  # nothing to fold
    prune(model, 0.7)
    effective = effective_state_dict(model)
    assert not any(key.endswith(("_orig", "_mask")) for key in effective)
    assert not any(tensor.requires_grad for tensor in effective.values())
    make_permanent(model)
    expected = model.state_dict()
    assert effective.keys() == expected.keys()
    assert all(torch.equal(effective[k], v) for k, v in expected.items())


def test_only_sparse_enough_matrices_are_stored_sparse(tmp_path):
    model = mlp()
    prune(model, 0.5, scope="layer", params=[(model[0], "weight")])
    path = tmp_path / "m.safetensors"
    assert save_sparse(model, path, min_sparsity=0.6)["sparse_tensors"] == {}
    with safe_open(str(path), framework="pt") as handle:
        assert set(handle.keys()) == set(effective_state_dict(model))
    assert set(save_sparse(model, path, min_sparsity=0.5)["sparse_tensors"]) == {"0.weight"}
    summary = save_sparse(model, path, min_sparsity=0.0)
    assert set(summary["sparse_tensors"]) == {"0.weight"}  # dense matrices would grow; never biases (1 dim)

    table = sparse_storage_report(summary)
    assert list(table.columns) == ["name", "dense_mb", "stored_mb", "ratio", "sparsity"]
    assert list(table["name"]) == [*summary["sparse_tensors"], "(whole file)"]
    assert table["ratio"].iloc[-1] == pytest.approx(summary["file_bytes"] / summary["dense_bytes"])


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_sparsity", [-0.1, 1.5, "x", True, float("nan")])
def test_bad_min_sparsity_is_refused(tmp_path, min_sparsity):
    with pytest.raises(ValueError, match=r"min_sparsity must be a number in \[0, 1\]"):
        save_sparse(mlp(), tmp_path / "m.safetensors", min_sparsity=min_sparsity)


def test_model_must_be_a_module(tmp_path):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        save_sparse({"w": torch.zeros(2, 2)}, tmp_path / "m.safetensors")
    save_sparse(mlp(), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        load_sparse(tmp_path / "m.safetensors", {"w": torch.zeros(2, 2)})


def test_file_without_our_metadata_is_refused(tmp_path):
    save_file({"w": torch.zeros(2, 2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not written by save_sparse"):
        load_sparse(tmp_path / "plain.safetensors", mlp())


@pytest.mark.parametrize("model_class", [None, "GPT2LMHeadModel", "AutoModel"])
def test_model_class_outside_the_allow_list_is_refused(tmp_path, model_class):
    path = tmp_path / "m.safetensors"
    save_sparse(mlp(), path)  # a plain module: no class recorded
    rewrite_metadata(path, model_class=model_class, config="{}" if model_class else None)
    with pytest.raises(ValueError, match="pass it as model="):
        load_sparse(path)


def test_loading_into_a_masked_model_is_refused(tmp_path):
    save_sparse(mlp(), tmp_path / "m.safetensors")
    target = mlp()
    prune(target, 0.5)
    with pytest.raises(ValueError, match="make_permanent"):
        load_sparse(tmp_path / "m.safetensors", target)
