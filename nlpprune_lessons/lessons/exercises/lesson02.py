"""Checks for the exercises of lesson 02 (RNN text models)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nlpprune_lessons.lessons.exercises.protocol import exercise, require, require_callable

__all__ = ["check_lstm_parameter_count"]


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
    return ("4 x (hidden*input + hidden*hidden + 2*hidden), as nn.LSTM allocates.")
