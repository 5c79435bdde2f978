"""Does pruning improve generalisation and robustness? The measurements lesson 03 needs for the claim."""

from __future__ import annotations

from torch import nn

from .perturb import perturb_texts
from .recipes import SentimentData, sentiment_loader
from .train import evaluate_classifier


class RobustnessProbe:
    """An ``evaluate(model) -> dict`` for the sweeps: test and train accuracy, their gap, and accuracy on
    perturbed copies of the test reviews (typos in a share ``typo_rate`` of the words, a share
    ``drop_rate`` of the words dropped). The perturbed texts are drawn once, with ``seed``, so every
    model is tested on the same inputs."""

    def __init__(self, data: SentimentData, typo_rate: float = 0.2, drop_rate: float = 0.2, seed: int = 0):
        test_tokens, test_labels = data.tokens["test"], data.labels["test"]
        self.rates = {"typos": typo_rate, "dropped words": drop_rate}
        self.loaders = {
            "accuracy": data.loaders["test"],
            "train_accuracy": sentiment_loader(data.vocab, data.tokens["train"], data.labels["train"]),
            **{f"{kind.replace(' ', '_')}_accuracy": sentiment_loader(
                data.vocab, perturb_texts(test_tokens, kind, rate, seed), test_labels)
               for kind, rate in self.rates.items()},
        }

    def __call__(self, model: nn.Module) -> dict[str, float]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        result = {name: evaluate_classifier(model, loader)["accuracy"] for name, loader in self.loaders.items()}
        result["generalisation_gap"] = result["train_accuracy"] - result["accuracy"]
        return result
