"""Checks for the exercises of lesson 02 (RNN text models)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nlpprune_lessons.lessons.exercises.protocol import (
    compare_numbers,
    compare_tensors,
    exercise,
    require,
    require_callable,
)

__all__ = ["check_lstm_parameter_count", "check_lstm_step", "check_perplexity_from_batches"]


@exercise("02.1", "LSTM parameter count")
def check_lstm_parameter_count(lstm_parameters: Callable[[int, int], int]) -> str:
    """Exercise 02.1: parameters of one unidirectional ``nn.LSTM`` layer, by formula."""
    require_callable(lstm_parameters, "lstm_parameters")
    for input_size, hidden_size in [(128, 256), (1, 1), (300, 50), (256, 256)]:
        expected = sum(p.numel() for p in torch.nn.LSTM(input_size, hidden_size).parameters())
        got = lstm_parameters(input_size, hidden_size)
        require(
            got == expected,
            f"for input_size={input_size}, hidden_size={hidden_size} nn.LSTM has {expected} "
            f"parameters, you returned {got}. Four gates, each with an input matrix "
            "(hidden x input), a recurrent matrix (hidden x hidden) and two bias vectors (PyTorch "
            "keeps b_ih and b_hh separately).",
        )
    return "4 x (hidden*input + hidden*hidden + 2*hidden), as nn.LSTM allocates."


@exercise("02.2", "one LSTM step")
def check_lstm_step(lstm_step: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Exercise 02.2: ``lstm_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh) -> (h, c)``, one time
    step of ``nn.LSTM`` (gates stacked in the order input, forget, cell, output)."""
    require_callable(lstm_step, "lstm_step")
    generator = torch.Generator().manual_seed(0)
    hint = ("The four gates are stacked along the first dimension of weight_ih in the order i, f, g, o; "
            "i, f and o go through a sigmoid, g through tanh; the new cell state is f * c + i * g and the new "
            "hidden state o * tanh(new cell state).")
    for batch, input_size, hidden_size in [(3, 5, 4), (1, 2, 7), (4, 6, 6)]:
        lstm = torch.nn.LSTM(input_size, hidden_size, batch_first=True)
        with torch.no_grad():
            for p in lstm.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.8)
        x = torch.randn(batch, input_size, generator=generator)
        h = torch.randn(batch, hidden_size, generator=generator)
        c = torch.randn(batch, hidden_size, generator=generator)
        with torch.no_grad():
            _, (h_expected, c_expected) = lstm(x.unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
        weights = [t.detach().clone() for t in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)]
        got = lstm_step(x.clone(), h.clone(), c.clone(), *weights)
        require(isinstance(got, (tuple, list)) and len(got) == 2,
                f"return the pair (h, c) of new states, got {type(got).__name__}")
        where = f"batch {batch}, input_size {input_size}, hidden_size {hidden_size}"
        compare_tensors(got[1], c_expected[0], f"{where}: the new cell state c", hint)
        compare_tensors(got[0], h_expected[0], f"{where}: the new hidden state h", hint)
    return "your step equals nn.LSTM's for one time step: four gates from one matrix product, in the order i, f, g, o."


@exercise("02.3", "perplexity from batches")
def check_perplexity_from_batches(
    perplexity_from_batches: Callable[[Sequence[tuple[torch.Tensor, torch.Tensor]]], float],
) -> str:
    """Exercise 02.3: ``perplexity_from_batches(batches)``, ``batches`` a list of ``(logits [B, T, V],
    targets [B, T])`` with windows of different lengths ``T``, = ``exp(total NLL / total tokens)``, as
    :func:`~nlpprune_lessons.evaluate.token_perplexity` of the summed loss."""
    from nlpprune_lessons.evaluate import token_perplexity

    require_callable(perplexity_from_batches, "perplexity_from_batches")
    generator = torch.Generator().manual_seed(0)
    vocab = 11
    for lengths in [(35, 35, 35, 6), (5, 40), (12,)]:  # the last window of a stream is often shorter
        batches = []
        for i, length in enumerate(lengths):
            scale = 1.0 + 2.0 * i  # windows of different difficulty, so weighting matters
            logits = torch.randn(4, length, vocab, generator=generator) * scale
            targets = torch.randint(0, vocab, (4, length), generator=generator)
            batches.append((logits, targets))
        total = sum(torch.nn.functional.cross_entropy(lg.reshape(-1, vocab), tg.reshape(-1), reduction="sum").item()
                    for lg, tg in batches)
        expected = token_perplexity(total, sum(tg.numel() for _, tg in batches))["perplexity"]
        got = perplexity_from_batches([(lg.clone(), tg.clone()) for lg, tg in batches])
        compare_numbers(got, expected,
                        f"for windows of {list(lengths)} tokens (batch 4, vocabulary {vocab}): the perplexity",
                        "Perplexity is exp of the mean loss per token over the whole text: add up the summed (not "
                        "mean) cross-entropy of every window and the number of tokens of every window, divide once, "
                        "then exponentiate. A mean of per-window means gives a short window as much weight as a "
                        "long one.", rel=1e-5)
    return "exp(total NLL / total tokens): each token counts once, whatever the length of its window."
