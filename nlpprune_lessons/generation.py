"""Text generation with a causal LM (lesson 09): greedy and seeded sampling."""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_positive_int


@torch.no_grad()
def generate(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int = 40, *, sample: bool = False,
             temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> str:
    """The text a causal LM writes after ``prompt`` (the continuation only, special tokens dropped).

    Greedy by default (always the most likely next token). With ``sample=True`` each token is drawn
    from the ``top_k`` most likely ones at ``temperature``, seeded by ``seed`` in a forked random
    state, so the same call gives the same text and the caller's random state is left alone.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    check_positive_int(max_new_tokens, "max_new_tokens")
    if sample and (isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if sample and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    device = next(model.parameters()).device
    ids = torch.as_tensor([tokenizer(prompt)["input_ids"]], dtype=torch.long, device=device)
    settings = dict(do_sample=True, temperature=float(temperature), top_k=top_k) if sample else dict(do_sample=False)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.eos_token_id, top_p=None, **settings)
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
