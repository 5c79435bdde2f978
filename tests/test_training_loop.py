"""Metrics, the bag-of-words model, the training loop and results files."""

from __future__ import annotations

import json

import pytest
import torch

from nlpprune_lessons.core import config
from nlpprune_lessons.course.results import load_results, save_results
from nlpprune_lessons.evaluate import evaluate_classifier, predict
from nlpprune_lessons.metrics import accuracy, macro_f1
from nlpprune_lessons.models import BagOfWordsClassifier
from nlpprune_lessons.text.batching import make_loader
from nlpprune_lessons.training.loop import History, train_classifier

VOCAB_SIZE = 10


# =========================================================================== metrics
def test_accuracy_hand_example():
    assert accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx(0.75)
    assert accuracy(torch.tensor([2, 2]), torch.tensor([2, 2])) == 1.0
    assert accuracy([0, 0, 0], [1, 1, 1]) == 0.0


def test_macro_f1_hand_example():
    # class 0: tp=1 fp=0 fn=1 -> F1 2/3; class 1: tp=2 fp=1 fn=0 -> F1 4/5
    assert macro_f1([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert macro_f1([1, 0, 1], [1, 0, 1]) == 1.0


def test_macro_f1_counts_classes_only_predicted():
    # class 0: tp=2 fp=0 fn=1 -> 4/5; class 2 (never true): tp=0 fp=1 -> 0
    assert macro_f1([0, 0, 2], [0, 0, 0]) == pytest.approx(0.4)


def test_macro_f1_differs_from_accuracy_on_imbalance():
    preds, labels = [0] * 10, [0] * 9 + [1]
    assert accuracy(preds, labels) == pytest.approx(0.9)
    # class 0: tp=9 fp=1 fn=0 -> 18/19; class 1: 0
    assert macro_f1(preds, labels) == pytest.approx(9 / 19)


@pytest.mark.parametrize("metric", [accuracy, macro_f1])
def test_metrics_reject_shape_mismatch(metric):
    with pytest.raises(ValueError, match=r"1-D of equal length, got \(3,\) and \(2,\)"):
        metric([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="1-D of equal length"):
        metric([[1, 0]], [[1, 0]])


@pytest.mark.parametrize("metric", [accuracy, macro_f1])
def test_metrics_reject_empty_input(metric):
    with pytest.raises(ValueError, match="no predictions given"):
        metric([], [])


# =========================================================================== bag of words
@pytest.fixture
def bow():
    torch.manual_seed(0)
    model = BagOfWordsClassifier(VOCAB_SIZE, num_classes=3, pad_id=0)
    with torch.no_grad():
        model.token_weights.weight.normal_()  # random, including a non-zero pad row
        model.bias.normal_()
    return model


def test_bow_starts_at_zero():
    model = BagOfWordsClassifier(VOCAB_SIZE)
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 2)
    assert torch.equal(logits, torch.zeros(1, 2))


def test_bow_equals_hand_computation(bow):
    W, b = bow.token_weights.weight.detach(), bow.bias.detach()
    input_ids = torch.tensor([[3, 5, 5, 0, 0], [7, 1, 2, 4, 9]])
    expected = torch.stack([(W[3] + 2 * W[5]) / 3 + b, (W[7] + W[1] + W[2] + W[4] + W[9]) / 5 + b])
    logits = bow(input_ids, torch.tensor([3, 5]))
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, expected)


def test_bow_ignores_padding(bow):
    assert torch.count_nonzero(bow.token_weights.weight[0]) > 0
    short = bow(torch.tensor([[4, 8]]))
    long = bow(torch.tensor([[4, 8, 0, 0, 0, 0]]))
    torch.testing.assert_close(short, long)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 1}, "vocab_size >= 2"),
        ({"vocab_size": 5, "num_classes": 1}, "num_classes >= 2"),
        ({"vocab_size": 5, "pad_id": 5}, "pad_id 5 is outside"),
        ({"vocab_size": 5, "pad_id": -1}, "pad_id -1 is outside"),
    ],
)
def test_bow_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BagOfWordsClassifier(**kwargs)


# =========================================================================== training
def _toy(n: int, seed: int, flip: bool = False):
    """Separable data: a sequence holding token 5 is class 1, one holding token 6 is class 0."""
    g = torch.Generator().manual_seed(seed)
    sequences, labels = [], []
    for i in range(n):
        label = i % 2
        noise = torch.randint(1, 5, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
        key = 5 if label == 1 else 6
        position = int(torch.randint(0, len(noise) + 1, (1,), generator=g))
        sequences.append(noise[:position] + [key] + noise[position:])
        labels.append(1 - label if flip else label)
    return sequences, labels


def _loaders(flip_val: bool = False, seed: int = 0):
    train = make_loader(*_toy(200, seed=1), batch_size=16, shuffle=True, bucket=False, seed=seed)
    val = make_loader(*_toy(60, seed=2, flip=flip_val), batch_size=32)
    return train, val


def _train(seed: int = 0, **kwargs):
    config.set_seed(seed)
    model = BagOfWordsClassifier(VOCAB_SIZE)
    train, val = _loaders(seed=seed)
    kwargs = {"epochs": 8, "lr": 0.1, "progress": False, "device": "cpu", **kwargs}
    return model, train_classifier(model, train, val, **kwargs), val


def test_training_learns_separable_toy_data():
    model, history, val = _train()
    assert isinstance(history, History)
    assert history.epochs == 8
    assert len(history.val_loss) == len(history.val_accuracy) == 8
    assert history.val_accuracy[history.best_epoch] == 1.0
    assert 0 <= history.best_epoch < history.epochs
    assert history.best_epoch == min(range(8), key=history.val_loss.__getitem__)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.seconds >= 0.0
    result = evaluate_classifier(model, val)
    assert result["accuracy"] == 1.0
    assert result["f1"] == 1.0
    assert result["n"] == 60 and result["accuracy_se"] == 0.0  # sqrt(p (1 - p) / n) at p = 1
    assert result["loss"] == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)
    # the model uses the informative tokens: 5 pushes to class 1, 6 to class 0
    W = model.token_weights.weight.detach()
    assert W[5, 1] - W[5, 0] > 0 > W[6, 1] - W[6, 0]


def test_predict_returns_loader_order():
    model, _, val = _train(epochs=3)
    logits, preds, labels = predict(model, val)
    assert logits.shape == (60, 2)
    assert torch.equal(preds, logits.argmax(dim=-1))
    assert labels.tolist() == [y for batch in val for y in batch["labels"].tolist()]
    assert sorted(labels.tolist()) == sorted(_toy(60, seed=2)[1])
    assert model.training  # predict restores the mode it found


def test_training_is_deterministic_for_a_seed():
    first, h1, _ = _train(seed=3, epochs=4)
    second, h2, _ = _train(seed=3, epochs=4)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    assert h1.train_loss == h2.train_loss
    assert h1.val_loss == h2.val_loss
    third, _, _ = _train(seed=4, epochs=4)
    assert not torch.equal(first.token_weights.weight, third.token_weights.weight)


def test_early_stopping_keeps_the_best_epoch():
    # validation labels are the opposite of the training rule: validation loss rises after epoch 0
    config.set_seed(0)
    model = BagOfWordsClassifier(VOCAB_SIZE)
    train, val = _loaders(flip_val=True)
    history = train_classifier(model, train, val, epochs=20, lr=0.1, patience=2, progress=False)
    assert history.best_epoch == 0
    assert history.epochs == 3  # epoch 0 best, then 2 epochs without improvement
    assert history.val_loss[1] > history.val_loss[0] and history.val_loss[2] > history.val_loss[0]
    assert evaluate_classifier(model, val)["loss"] == pytest.approx(history.val_loss[0], rel=1e-5)


def test_restore_best_false_keeps_the_last_epoch():
    # as above, validation loss rises after epoch 0; without restoring, the model ends at epoch 3
    config.set_seed(0)
    model = BagOfWordsClassifier(VOCAB_SIZE)
    train, val = _loaders(flip_val=True)
    history = train_classifier(model, train, val, epochs=4, lr=0.1, progress=False, restore_best=False)
    assert history.best_epoch == 3
    assert evaluate_classifier(model, val)["loss"] == pytest.approx(history.val_loss[3], rel=1e-5)
    assert history.val_loss[3] > history.val_loss[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"epochs": 2, "lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"epochs": 2, "lr": -1e-3}, "lr must be > 0"),
        ({"epochs": 2, "patience": 0}, "patience must be None or >= 1, got 0"),
    ],
)
def test_train_classifier_bad_arguments(kwargs, message):
    model = BagOfWordsClassifier(VOCAB_SIZE)
    before = model.token_weights.weight.detach().clone()
    train, val = _loaders()
    with pytest.raises(ValueError, match=message):
        train_classifier(model, train, val, progress=False, **kwargs)
    assert torch.equal(model.token_weights.weight, before)


# =========================================================================== results
def test_save_and_load_results(isolated_dirs, monkeypatch):
    monkeypatch.setenv("NLPPRUNE_FAST", "1")
    records = [{"method": "magnitude", "sparsity": 0.5, "accuracy": 0.81}, {"method": "none", "accuracy": 0.83}]
    path = save_results("99_test_results", records, seed=7)
    assert path == isolated_dirs / "99_test_results.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["name"] == "99_test_results"
    assert raw["mode"] == "FAST"
    assert raw["seed"] == 7
    assert raw["torch"] == torch.__version__
    assert raw["records"] == records
    assert load_results(path) == raw


def test_save_results_records_full_mode_and_numpy_values(isolated_dirs, monkeypatch):
    import numpy as np

    monkeypatch.setenv("NLPPRUNE_FAST", "0")
    path = save_results("mode_check", ({"acc": np.float32(0.5)} for _ in range(2)))
    payload = load_results(path)
    assert payload["mode"] == "FULL"
    assert payload["seed"] is None
    assert payload["records"] == [{"acc": 0.5}, {"acc": 0.5}]


def test_save_results_writes_missing_values_as_null(isolated_dirs):
    import json

    import numpy as np
    import pandas as pd

    frame = pd.DataFrame([{"accuracy": 0.75}, {"perplexity": 80.0}])  # each row lacks one column: NaN
    path = save_results("gaps", frame.to_dict("records") + [{"x": np.float32("nan"), "sizes": [3, 4]}])
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text)["records"] == [{"accuracy": 0.75, "perplexity": None},
                                           {"accuracy": None, "perplexity": 80.0}, {"x": None, "sizes": [3, 4]}]


def test_save_results_explicit_directory(isolated_dirs, tmp_path):
    path = save_results("elsewhere", [{"x": 1}], directory=tmp_path / "other")
    assert path == tmp_path / "other" / "elsewhere.json"
    assert not (isolated_dirs / "elsewhere.json").exists()


def test_save_results_records_a_mode_given_by_the_caller(isolated_dirs, monkeypatch):
    monkeypatch.setenv("NLPPRUNE_FAST", "1")
    assert load_results(save_results("runtimes", [{"x": 1}]))["mode"] == "FAST"
    assert load_results(save_results("runtimes", [{"x": 1}], mode="FAST and FULL (per record)"))["mode"] == (
        "FAST and FULL (per record)")


@pytest.mark.parametrize("name", ["", "a/b", "..\\x", None])
def test_save_results_bad_name(isolated_dirs, name):
    with pytest.raises(ValueError, match="name must be a plain file stem"):
        save_results(name, [{"x": 1}])
    assert not isolated_dirs.exists() or not any(isolated_dirs.iterdir())


def test_save_results_needs_records(isolated_dirs):
    with pytest.raises(ValueError, match="no records to save"):
        save_results("empty", [])
    assert not (isolated_dirs / "empty.json").exists()


def test_load_results_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"name": "x", "records": []}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"not a results file \(missing \['mode'\]\)"):
        load_results(path)


def test_training_does_not_depend_on_earlier_reads_of_the_loader():
    from nlpprune_lessons.core import config
    from nlpprune_lessons.models import RNNClassifier
    from nlpprune_lessons.text.batching import make_loader
    from nlpprune_lessons.training.loop import train_classifier

    sequences = [[2 + (i % 7)] * (1 + i % 5) for i in range(60)]
    labels = [i % 2 for i in range(60)]
    loader = make_loader(sequences, labels, batch_size=8, shuffle=True, seed=3)
    val = make_loader(sequences, labels, batch_size=16)
    weights = []
    for reads_before in (0, 2):
        for _ in range(reads_before):
            list(loader)
        config.set_seed(0)
        model = RNNClassifier(10, 2, embed_dim=4, hidden_size=4)
        train_classifier(model, loader, val, epochs=2, progress=False)
        weights.append(model.classifier.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


# =========================================================================== the one step loop
def test_fit_steps_equals_a_hand_written_loop_and_logs_each_step():
    from nlpprune_lessons.training.loop import fit_steps

    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    batches = [{"x": torch.randn(n, 3), "y": torch.randint(0, 2, (n,))} for n in (4, 2, 5)]

    def objective(batch):
        loss = torch.nn.functional.cross_entropy(ours(batch["x"]), batch["y"])
        return loss + 0.1 * ours.weight.abs().sum(), loss, len(batch["y"])

    optimizer = torch.optim.SGD(ours.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    seen = []
    log = fit_steps(ours, batches, objective, optimizer, device=torch.device("cpu"), max_grad_norm=0.3,
                    scheduler=scheduler, after_step=seen.append, progress=False)

    reference = torch.optim.SGD(theirs.parameters(), lr=0.5)
    losses = []
    for step, batch in enumerate(batches):
        for group in reference.param_groups:
            group["lr"] = 0.5 / (step + 1)
        loss = torch.nn.functional.cross_entropy(theirs(batch["x"]), batch["y"])
        reference.zero_grad()
        (loss + 0.1 * theirs.weight.abs().sum()).backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.3)
        reference.step()
        losses.append(loss.item())
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)
    assert seen == [1, 2, 3] and log.losses == pytest.approx(losses) and log.counts == [4, 2, 5]
    assert log.lrs == pytest.approx([0.5, 0.25, 0.5 / 3])
    assert log.mean_loss == pytest.approx(sum(l * n for l, n in zip(losses, (4, 2, 5))) / 11)


def test_fit_steps_clips_only_the_parameters_it_is_given():
    from nlpprune_lessons.training.loop import fit_steps

    model = torch.nn.Linear(2, 1, bias=False)
    frozen_in_clip = torch.nn.Parameter(torch.zeros(1))  # not in the model: clipping must ignore it

    def objective(batch):
        loss = 100 * model(batch["x"]).sum() + 1000 * frozen_in_clip.sum()
        return loss, loss, 1

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = model.weight.detach().clone()
    fit_steps(model, [{"x": torch.ones(1, 2)}], objective, optimizer, device=torch.device("cpu"),
              max_grad_norm=1.0, clip_params=list(model.parameters()), progress=False)
    assert (before - model.weight.detach()).norm().item() == pytest.approx(1.0)  # clipped to norm 1
