"""Does pruning improve generalisation and robustness? The measurements lesson 03 needs for the claim."""

from __future__ import annotations

from torch import nn

from .perturb import changed_share, perturb_texts
from .recipes import SentimentData, sentiment_loader
from .train import evaluate_classifier


class RobustnessProbe:
    """An ``evaluate(model) -> dict`` for the sweeps: test and train accuracy, their gap, and accuracy on
    perturbed copies of the test reviews (:func:`~nlpprune_lessons.perturb.add_typos` at ``typo_rate``,
    :func:`~nlpprune_lessons.perturb.drop_words` at ``drop_rate``). The perturbed texts are drawn once,
    with ``seed``, so every model is tested on the same inputs; :attr:`perturbations` says how much
    each perturbation changed (share of tokens changed, share of tokens unknown to the vocabulary)."""

    def __init__(self, data: SentimentData, typo_rate: float = 0.2, drop_rate: float = 0.2, seed: int = 0) -> None:
        if not isinstance(data, SentimentData):
            raise TypeError(f"data must be a SentimentData (recipes.sentiment_data()), got {type(data).__name__}")
        test_tokens, test_labels = data.tokens["test"], data.labels["test"]
        perturbed = {kind: perturb_texts(test_tokens, kind, rate, seed)
                     for kind, rate in (("typos", typo_rate), ("dropped words", drop_rate))}
        self.perturbations = {"none": {"rate": 0.0, "changed_share": 0.0,
                                       "unknown_share": data.vocab.oov_rate(test_tokens)}}
        for kind, texts in perturbed.items():
            self.perturbations[kind] = {"rate": typo_rate if kind == "typos" else drop_rate,
                                        "changed_share": changed_share(test_tokens, texts),
                                        "unknown_share": data.vocab.oov_rate(texts)}
        self.loaders = {
            "accuracy": data.loaders["test"],
            "train_accuracy": sentiment_loader(data.vocab, data.tokens["train"], data.labels["train"]),
            **{f"{kind.replace(' ', '_')}_accuracy": sentiment_loader(data.vocab, texts, test_labels)
               for kind, texts in perturbed.items()},
        }

    def __call__(self, model: nn.Module) -> dict[str, float]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        result = {name: evaluate_classifier(model, loader)["accuracy"] for name, loader in self.loaders.items()}
        result["generalisation_gap"] = result["train_accuracy"] - result["accuracy"]
        return result
