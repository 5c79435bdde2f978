"""Lesson 05: the text GAN (models.gan, training.gan, text.sentences, evaluate), generated-text metrics, distillation loss and
generator pruning with learned unit masks (structured.adversarial)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from torch import nn

from nlpprune_lessons.evaluate import evaluate_generator, sentence_perplexity
from nlpprune_lessons.losses import distillation_loss
from nlpprune_lessons.metrics import bleu, distinct_n, self_bleu
from nlpprune_lessons.models import Discriminator, RNNLanguageModel
from nlpprune_lessons.models.gan import alive_mask, gumbel_sentences, sample_sentences
from nlpprune_lessons.structured import remove_hidden_units
from nlpprune_lessons.structured.adversarial import (
    METHODS,
    OutputAdversary,
    UnitMaskedLM,
    fold_unit_masks,
    prune_generator,
    units_below,
)
from nlpprune_lessons.text.sentences import IGNORE, SentenceData, decode
from nlpprune_lessons.text.vocab import Vocab
from nlpprune_lessons.training.gan import AdversarialObjective, train_discriminator, train_steps

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "a"]
MAX_LEN = 8


def toy_data(n: int = 48, seed: int = 0) -> SentenceData:
    """Sentences "the|a cat|dog sat|ran on the mat <eos>" with random lengths, padded to MAX_LEN."""
    vocab = Vocab(WORDS)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        words = [["the", "a"][int(torch.randint(2, (1,), generator=g))],
                 ["cat", "dog"][int(torch.randint(2, (1,), generator=g))],
                 ["sat", "ran"][int(torch.randint(2, (1,), generator=g))], "on", "the", "mat"]
        words = words[:int(torch.randint(3, 7, (1,), generator=g))]
        ids = vocab.encode(words, add_eos=True)
        rows.append(ids + [vocab.pad_id] * (MAX_LEN - len(ids)))
    ids = torch.tensor(rows)
    return SentenceData(vocab, {"train": ids, "validation": ids[:16], "test": ids[16:32]}, MAX_LEN)


def toy_lm(vocab_size: int, cell: str = "lstm", seed: int = 0, layers: int = 2) -> RNNLanguageModel:
    torch.manual_seed(seed)
    return RNNLanguageModel(vocab_size, embed_dim=6, hidden_size=10, num_layers=layers, cell=cell).eval()


# --------------------------------------------------------------------------- sampling
class EosAfter(nn.Module):
    """A fake generator that emits ``token`` until step ``k`` (per row), then ``<eos>``."""

    def __init__(self, vocab_size: int, eos_id: int, token: int, k: list[int]):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.vocab_size, self.eos_id, self.token, self.k = vocab_size, eos_id, token, k

    def forward(self, ids, state=None):
        step = 0 if state is None else state
        logits = torch.full((ids.size(0), ids.size(1), self.vocab_size), -1e4)
        for row, k in enumerate(self.k):
            logits[row, -1, self.eos_id if step >= k else self.token] = 0.0
        return logits, step + 1


def test_sample_sentences_shape_eos_and_padding():
    v = Vocab(WORDS)
    model = EosAfter(len(v), v.eos_id, v.stoi["cat"], k=[0, 2, 100])
    rows = sample_sentences(model, 3, MAX_LEN, start_id=v.eos_id, eos_id=v.eos_id, pad_id=v.pad_id,
                            temperature=0)
    assert rows.shape == (3, MAX_LEN) and rows.dtype == torch.long
    cat, eos, pad = v.stoi["cat"], v.eos_id, v.pad_id
    assert rows[0].tolist() == [eos] + [pad] * (MAX_LEN - 1)
    assert rows[1].tolist() == [cat, cat, eos] + [pad] * (MAX_LEN - 3)
    assert rows[2].tolist() == [cat] * MAX_LEN  # no <eos> within max_len: cut there
    assert decode(rows, v) == [[], ["cat", "cat"], ["cat"] * MAX_LEN]


def test_sampling_is_seeded_and_only_pads_after_eos():
    data = toy_data()
    model = toy_lm(len(data.vocab)).train()
    v = data.vocab
    kwargs = dict(start_id=data.start_id, eos_id=v.eos_id, pad_id=v.pad_id, temperature=1.0)
    a = sample_sentences(model, 20, MAX_LEN, generator=torch.Generator().manual_seed(1), **kwargs)
    b = sample_sentences(model, 20, MAX_LEN, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(a, b)
    assert sample_sentences(model, 20, MAX_LEN, batch_size=7, **kwargs).shape == (20, MAX_LEN)
    alive = alive_mask(a, v.eos_id)
    assert torch.all(a[~alive] == v.pad_id)
    assert torch.all((a[alive] != v.pad_id))
    assert model.training  # mode restored after sampling in eval mode
    with pytest.raises(ValueError, match="batch_size"):
        sample_sentences(model, 2, MAX_LEN, batch_size=0, **kwargs)
    with pytest.raises(ValueError, match="temperature"):
        sample_sentences(model, 2, MAX_LEN, temperature=-1, start_id=3, eos_id=3, pad_id=0)
    with pytest.raises(ValueError, match="max_len"):
        sample_sentences(model, 2, 0, start_id=3, eos_id=3, pad_id=0)


def test_gumbel_sentences_are_one_hot_masked_and_differentiable():
    data = toy_data()
    model = toy_lm(len(data.vocab)).train()
    v = data.vocab
    torch.manual_seed(0)
    tokens, one_hot = gumbel_sentences(model, 16, MAX_LEN, start_id=data.start_id, eos_id=v.eos_id,
                                       pad_id=v.pad_id, tau=0.5)
    alive = alive_mask(tokens, v.eos_id)
    assert one_hot.shape == (16, MAX_LEN, len(v))
    assert torch.allclose(one_hot.sum(-1), alive.float())
    assert torch.equal(one_hot.argmax(-1)[alive], tokens[alive])
    assert torch.all(tokens[~alive] == v.pad_id)
    (one_hot * torch.randn_like(one_hot)).sum().backward()
    assert model.decoder.weight.grad is not None and model.decoder.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- discriminator
def test_discriminator_output_range_and_soft_inputs():
    v = Vocab(WORDS)
    torch.manual_seed(0)
    d = Discriminator(len(v), embed_dim=8, channels=4, widths=(2, 3), pad_id=v.pad_id).eval()
    ids = toy_data().ids["train"][:10]
    p = d.prob(ids)
    assert p.shape == (10,) and torch.all((p > 0) & (p < 1))
    one_hot = nn.functional.one_hot(ids, len(v)).float()
    one_hot[ids == v.pad_id] = 0.0  # padded positions: zero rows, as gumbel_sentences makes them
    assert torch.allclose(d(one_hot), d(ids), atol=1e-6)
    assert d(ids[:, :1]).shape == (10,)  # shorter than the widest filter
    with pytest.raises(ValueError, match="distributions"):
        d(torch.rand(2, 3, len(v) + 1))
    with pytest.raises(ValueError, match="widths"):
        Discriminator(len(v), widths=())
    with pytest.raises(ValueError, match="pad_id"):
        Discriminator(5, pad_id=5)


def test_discriminator_learns_to_tell_real_from_a_bad_generator():
    data = toy_data()
    torch.manual_seed(0)
    d = Discriminator(len(data.vocab), embed_dim=8, channels=8, pad_id=data.vocab.pad_id)
    result = train_discriminator(d, toy_lm(len(data.vocab)), data, 60, lr=1e-2, batch_size=16, progress=False)
    assert result["val_accuracy"] >= 0.9
    assert result["loss"][-1] < result["loss"][0]


# --------------------------------------------------------------------------- metrics
REF = "the cat sat on the mat today".split()
HYP = "the cat sat on a mat".split()


def test_bleu_equals_nltk():
    expected = corpus_bleu([[REF]], [HYP], weights=(1 / 3, 1 / 3, 1 / 3), smoothing_function=SmoothingFunction().method1)
    assert bleu([HYP], [REF])["bleu3"] == pytest.approx(expected, abs=1e-12)
    assert bleu([HYP], [REF], orders=(2,))["bleu2"] == pytest.approx(sentence_bleu([REF], HYP, weights=(0.5, 0.5)))
    # 5 of 6 unigrams match, 3 of 5 bigrams; brevity penalty exp(1 - 7/6)
    assert bleu([HYP], [REF], orders=(2,))["bleu2"] == pytest.approx(math.exp(1 - 7 / 6) * math.sqrt(5 / 6 * 3 / 5))
    assert bleu([REF], [REF, HYP])["bleu4"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hypotheses"):
        bleu([], [REF])
    with pytest.raises(TypeError, match="string tokens"):
        bleu(["a b c"], [REF])
    with pytest.raises(ValueError, match="orders"):
        bleu([HYP], [REF], orders=(0,))


def test_self_bleu_and_distinct():
    same = [REF, list(REF), list(REF)]
    assert self_bleu(same)["self_bleu4"] == pytest.approx(1.0)
    mixed = [REF, HYP, "she walked home".split()]
    expected = corpus_bleu([[HYP, mixed[2]], [REF, mixed[2]], [REF, HYP]], mixed, weights=(0.5, 0.5),
                           smoothing_function=SmoothingFunction().method1)
    assert self_bleu(mixed, orders=(2,))["self_bleu2"] == pytest.approx(expected)
    assert distinct_n([["a", "b", "a"], ["a", "b"]], 1) == pytest.approx(2 / 5)
    assert distinct_n([["a", "b", "a"], ["a", "b"]], 2) == pytest.approx(2 / 3)
    assert distinct_n([["a"]], 2) == 0.0
    with pytest.raises(ValueError, match="two sentences"):
        self_bleu([REF])


def test_distillation_loss_equals_hand_computation():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, IGNORE], [0, IGNORE, 4]])
    T, w = 2.0, 0.7
    keep = targets != IGNORE
    p_t = torch.softmax(teacher[keep] / T, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(student[keep] / T, -1))).sum(-1).mean() * T * T
    ce = nn.functional.cross_entropy(student[keep], targets[keep])
    got = distillation_loss(student, teacher, targets, temperature=T, weight=w)
    assert got.item() == pytest.approx((w * kl + (1 - w) * ce).item(), rel=1e-6)
    assert distillation_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="targets are needed"):
        distillation_loss(student, teacher, weight=0.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(student, teacher, temperature=0)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(student, teacher[:, :2])


# --------------------------------------------------------------------------- training and evaluation
class Uniform(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, ids, state=None):
        return self.bias.expand(*ids.shape, -1), state


def test_sentence_batches_and_perplexity():
    data = toy_data()
    batch = data.batch(data.ids["train"][:4])
    assert torch.all(batch["input_ids"][:, 0] == data.start_id)
    assert torch.equal(batch["input_ids"][:, 1:], data.ids["train"][:4, :-1])
    assert torch.all((batch["targets"] == IGNORE) == (data.ids["train"][:4] == data.vocab.pad_id))
    assert sentence_perplexity(Uniform(len(data.vocab)), data)["perplexity"] == pytest.approx(len(data.vocab))


def test_mle_training_lowers_perplexity_and_evaluation_reports_everything():
    data = toy_data()
    model = toy_lm(len(data.vocab))
    before = sentence_perplexity(model, data)["perplexity"]
    history = train_steps(model, data, 60, lr=1e-2, batch_size=16, eval_every=20, progress=False)
    assert history.eval_steps == [0, 20, 40, 60] and len(history.train_loss) == 60
    assert history.val_perplexity[-1] < history.val_perplexity[0]
    after = sentence_perplexity(model, data)["perplexity"]
    assert after < before / 2
    metrics = evaluate_generator(model, data, 20)
    assert set(metrics) == {"bleu2", "bleu3", "bleu4", "self_bleu2", "self_bleu3", "self_bleu4", "distinct1",
                            "perplexity_low", "perplexity_high", "loss_se",
                            "distinct2", "mean_words", "perplexity"}
    assert metrics["bleu2"] > 0.5  # the toy language is easy
    with pytest.raises(ValueError, match="steps"):
        train_steps(model, data, 0)


def test_adversarial_term_alone_reaches_the_generator():
    data = toy_data()
    model = toy_lm(len(data.vocab)).train()
    torch.manual_seed(0)
    d = Discriminator(len(data.vocab), embed_dim=8, channels=4, pad_id=data.vocab.pad_id)
    objective = AdversarialObjective(d, data, adv_weight=1.0, mle_weight=0.0, tau=0.5)
    batch = data.batch(data.ids["train"][:8])
    loss = objective(model, batch)
    assert loss.item() == pytest.approx(objective.log["g_adv"])
    loss.backward()  # -log D(G's samples) alone must give the generator a gradient (straight-through)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (model.decoder.weight, model.embedding.weight))
    with pytest.raises(ValueError, match="tau"):
        AdversarialObjective(d, data, tau=0.0)


def test_adversarial_objective_trains_both_players():
    data = toy_data()
    model = toy_lm(len(data.vocab)).train()
    torch.manual_seed(0)
    d = Discriminator(len(data.vocab), embed_dim=8, channels=4, pad_id=data.vocab.pad_id)
    objective = AdversarialObjective(d, data, adv_weight=1.0, mle_weight=0.5, tau=0.5)
    d_before = copy.deepcopy(d.state_dict())
    g_before = copy.deepcopy(model.state_dict())
    history = train_steps(model, data, 3, objective, lr=1e-3, batch_size=8, progress=False)
    assert set(history.extra) == {"d_loss", "d_real", "d_fake", "g_adv"} and len(history.extra["d_loss"]) == 3
    assert any(not torch.equal(d_before[k], v) for k, v in d.state_dict().items())
    assert any(not torch.equal(g_before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="weights"):
        AdversarialObjective(d, data, adv_weight=0, mle_weight=0)


# --------------------------------------------------------------------------- masks and pruning
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_folding_masked_off_units_reproduces_the_masked_generator(cell):
    data = toy_data()
    masked = UnitMaskedLM(toy_lm(len(data.vocab), cell))
    with torch.no_grad():
        masked.masks[0].copy_(torch.rand(10) + 0.5)
        masked.masks[1].copy_(torch.rand(10) + 0.5)
        masked.masks[0][[1, 4, 7]] = 0.0
        masked.masks[1][[0, 9]] = 0.0
    assert units_below(masked) == {0: [1, 4, 7], 1: [0, 9]}
    slim = fold_unit_masks(masked).eval()
    masked.eval()
    ids = data.batch(data.ids["test"])["input_ids"]
    assert [layer.hidden_size for layer in slim.rnn.layers] == [7, 8]
    assert torch.allclose(slim(ids)[0], masked(ids)[0], atol=1e-5)
    # a model already slimmed (StackedRNN) can be masked and folded again
    again = UnitMaskedLM(copy.deepcopy(slim))
    with torch.no_grad():
        again.masks[1][2] = 0.0
    assert torch.allclose(fold_unit_masks(again).eval()(ids)[0], again.eval()(ids)[0], atol=1e-5)


def test_masks_of_one_are_the_plain_model_and_get_gradients():
    data = toy_data()
    model = toy_lm(len(data.vocab))
    masked = UnitMaskedLM(copy.deepcopy(model)).eval()
    batch = data.batch(data.ids["train"][:8])
    assert torch.allclose(masked(batch["input_ids"])[0], model(batch["input_ids"])[0], atol=1e-6)
    nn.functional.cross_entropy(masked(batch["input_ids"])[0].reshape(-1, len(data.vocab)),
                                batch["targets"].reshape(-1)).backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in masked.masks)
    with pytest.raises(ValueError, match="tied"):
        UnitMaskedLM(RNNLanguageModel(20, embed_dim=8, hidden_size=8, tie_weights=True))
    with pytest.raises(TypeError, match="RNNLanguageModel"):
        UnitMaskedLM(nn.Linear(2, 2))


def test_mask_phase_runs_until_the_target_share_is_exactly_zero_and_searches_the_penalty():
    data = toy_data()
    dense = toy_lm(len(data.vocab))
    train_steps(dense, data, 60, lr=1e-2, batch_size=16, progress=False)
    torch.manual_seed(0)
    result = prune_generator(dense, data, "masks+kd", 0.5, steps=200, mask_steps=150, progress=False,
                             l1=[0.01, 2.0, 3.0], eval_every=10)
    assert set(result.l1_search) == {0.01, 2.0, 3.0}
    # a penalty this weak never switches half the units off: it may not compete, whatever its perplexity
    assert result.l1 in (2.0, 3.0)
    assert result.l1 == min((2.0, 3.0), key=result.l1_search.get)  # chosen on validation perplexity
    assert all(int(m.eq(0).sum()) >= 5 for m in result.masks)  # the target share is exactly 0 before the cut
    assert result.mask_steps + result.recover_steps == 200  # every method gets the same budget
    strong = prune_generator(dense, data, "masks+kd", 0.5, steps=200, mask_steps=150, progress=False, l1=3.0)
    assert strong.masks_at_zero >= 0.5 and strong.mask_steps < 150  # stopped as soon as half the masks were 0
    assert [layer.hidden_size for layer in strong.model.rnn.layers] == [5, 5]


def test_recovery_keeps_the_weights_validation_prefers():
    data = toy_data()
    dense = toy_lm(len(data.vocab))
    history = train_steps(dense, data, 30, lr=5e-2, batch_size=16, eval_every=5, restore_best=True, progress=False)
    best = history.val_perplexity.index(min(history.val_perplexity))
    assert history.best_step == history.eval_steps[best]
    assert sentence_perplexity(dense, data, "validation")["perplexity"] == pytest.approx(min(history.val_perplexity))
    with pytest.raises(ValueError, match="restore_best needs eval_every"):
        train_steps(dense, data, 3, restore_best=True, progress=False)
    stopped = train_steps(dense, data, 30, lr=1e-3, until=lambda: True, progress=False)
    assert stopped.steps == 1


@pytest.mark.parametrize("method", METHODS)
def test_prune_generator_removes_the_asked_share_and_keeps_dense(method):
    data = toy_data()
    dense = toy_lm(len(data.vocab))
    before = copy.deepcopy(dense.state_dict())
    torch.manual_seed(0)
    result = prune_generator(dense, data, method, 0.5, steps=6, mask_steps=3, progress=False, l1=0.5, eval_every=2)
    assert [layer.hidden_size for layer in result.model.rnn.layers] == [5, 5]
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())
    assert math.isfinite(sentence_perplexity(result.model, data)["perplexity"])
    assert (result.masks is not None) == method.startswith("masks")
    assert result.mask_steps + result.recover_steps == 6 and result.best_step in range(0, 7)


def test_prune_generator_rejects_bad_arguments():
    data = toy_data()
    dense = toy_lm(len(data.vocab))
    with pytest.raises(ValueError, match="unknown method"):
        prune_generator(dense, data, "gan", 0.5, steps=1)
    with pytest.raises(ValueError, match="mask_steps"):
        prune_generator(dense, data, "masks+kd", 0.5, steps=1)
    with pytest.raises(ValueError, match="mask_steps"):
        prune_generator(dense, data, "masks+kd", 0.5, steps=3, mask_steps=3)  # no budget left to recover
    with pytest.raises(ValueError, match="unknown setting"):
        prune_generator(dense, data, "l2+mle", 0.5, steps=1, learning_rate=1)
    with pytest.raises(ValueError, match="sparsity"):
        prune_generator(dense, data, "l2+mle", 1.0, steps=1)
    for l1 in (-1.0, 0.0, [], [0.5, -2.0], True):
        with pytest.raises(ValueError, match="l1"):
            prune_generator(dense, data, "masks+kd", 0.5, steps=2, mask_steps=1, l1=l1)
    with pytest.raises(ValueError, match="steps"):
        prune_generator(dense, data, "l2+mle", 0.5, steps=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        train_steps(dense, data, 1, max_grad_norm=-1.0)
    with pytest.raises(ValueError, match="split"):
        sentence_perplexity(dense, data, "dev")


def test_output_adversary_pushes_the_student_towards_the_teacher():
    data = toy_data()
    teacher = toy_lm(len(data.vocab), seed=0)
    train_steps(teacher, data, 60, lr=1e-2, batch_size=16, progress=False)
    student = remove_hidden_units(teacher, {0: [0, 1, 2], 1: [3, 4, 5]})
    torch.manual_seed(0)
    d = Discriminator(len(data.vocab), embed_dim=8, channels=4, dropout=0.0, pad_id=data.vocab.pad_id)
    objective = OutputAdversary(teacher, d, adv_weight=1.0, kd_weight=0.0)
    batch = data.batch(data.ids["train"][:16])
    teacher.zero_grad(set_to_none=True)
    loss = objective(student, batch)
    d_out = d(torch.softmax(student(batch["input_ids"])[0], -1) * (batch["targets"] != IGNORE).unsqueeze(-1))
    assert loss.item() == pytest.approx(nn.functional.softplus(-d_out).mean().item(), rel=1e-5)  # -log D(fake),
    # with D's weights after its own step
    loss.backward()
    assert student.decoder.weight.grad.abs().sum() > 0 and teacher.decoder.weight.grad is None
    history = train_steps(student, data, 5, objective, lr=1e-3, batch_size=16, progress=False)
    assert set(history.extra) == {"d_loss", "d_real", "d_fake"}
    with pytest.raises(ValueError, match="adv_weight"):
        OutputAdversary(teacher, d, adv_weight=0.0)
    # GAL's teacher-matching term needs no labels: the loss is the same whatever the targets say
    matching = OutputAdversary(teacher, copy.deepcopy(d), adv_weight=1e-9, kd_weight=1.0)
    shuffled = {**batch, "targets": batch["targets"].masked_fill(batch["targets"] != IGNORE, 3)}
    assert matching(student, batch).item() == pytest.approx(
        OutputAdversary(teacher, copy.deepcopy(d), adv_weight=1e-9, kd_weight=1.0)(student, shuffled).item(), rel=1e-4)


def test_cost_report_times_the_whole_model():
    from nlpprune_lessons.structured.protocols import cost_report

    dense = toy_lm(12)
    slim = remove_hidden_units(dense, {0: [0, 1, 2, 3, 4], 1: [0, 1, 2, 3, 4]})
    report = cost_report(slim, dense, seq_len=5, batch_sizes=(2,), repeats=3, rounds=2, part="model")
    assert {"model_ms_b2", "speedup_b2", "params", "file_MB", "flop_ratio"} <= set(report)
    assert report["params"] < sum(p.numel() for p in dense.parameters())
    with pytest.raises(ValueError, match="part"):
        cost_report(slim, dense, part="decoder")
