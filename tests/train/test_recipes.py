"""The recipe reaches training: the loss, the optimizer and the schedule carry its values.

Oracles: a label-smoothed cross-entropy computed by hand, an SGD step computed by hand,
the recipes' published values, and the optimizer state that `fit` saves.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from resnet_nb import cifar_resnet, fit, load_checkpoint, make_synthetic, recipe
from resnet_nb.data import Batches
from resnet_nb.runs import loss_bound
from resnet_nb.train import lr_at, make_optimizer, train_one_epoch


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> float:
    """By hand: the target puts 1 - eps + eps/K on the label and eps/K on every other class."""
    logp = logits.double().log_softmax(1)
    k = logits.shape[1]
    target = torch.full_like(logp, eps / k)
    target[torch.arange(len(labels)), labels] += 1 - eps
    return float(-(target * logp).sum(1).mean())


def confident_model(depth=8, seed=0):
    """A fresh network whose predictions are far from uniform, so that label smoothing
    changes the loss by a lot (near-uniform predictions hide it)."""
    torch.manual_seed(seed)
    model = cifar_resnet(depth, width=8)
    with torch.no_grad():
        model.fc.weight.mul_(40)
    return model


def first_training_batch(data, cfg):
    """The first batch `fit` trains on: epoch 0 of a seeded, augmented Batches."""
    batches = Batches(data.train, cfg.batch_size, train=True, seed=cfg.seed)
    batches.set_epoch(0)
    return next(iter(batches))


def test_recipes_hold_the_published_values():
    paper = recipe("paper")      # He et al. 2015, sec. 4.2
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert (paper.nesterov, paper.label_smoothing, paper.schedule) == (False, 0.0, "step")
    assert paper.milestones == (0.5, 0.75) and paper.epochs == 182 and paper.warmup_steps == 0
    fast = recipe("fast")        # the docstring's short-budget recipe
    assert (fast.lr, fast.momentum, fast.weight_decay, fast.batch_size) == (0.2, 0.9, 5e-4, 128)
    assert (fast.nesterov, fast.label_smoothing, fast.schedule) == (True, 0.1, "onecycle")
    assert fast.warmup_fraction == 0.2 and fast.epochs == 10
    assert recipe("fast", nesterov=False).nesterov is False     # overrides apply


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_optimizer_param_groups_carry_the_recipe(name):
    cfg = recipe(name)
    model = cifar_resnet(8)
    opt = make_optimizer(model, cfg)
    assert len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == \
        (cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    # Weight decay on every parameter, as in the paper (BN scales and shifts included).
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_training_loss_is_the_label_smoothed_cross_entropy(eps):
    data = make_synthetic(64, 10, seed=2)
    model = confident_model()
    opt = make_optimizer(model, recipe("fast"))
    batches = Batches(data.train, 32)                      # no augmentation: known batches
    with torch.no_grad():                                  # train mode: BN uses batch statistics
        reference = copy.deepcopy(model).train()
        want = [smoothed_cross_entropy(reference(x), y, eps) for x, y in batches]
        plain = [smoothed_cross_entropy(reference(x), y, 0.0) for x, y in batches]
    # lr 0: the weights stay as they are, so every step's loss is known beforehand.
    stats = train_one_epoch(model, batches, opt, lambda s: 0.0, label_smoothing=eps,
                            progress=False)
    assert stats["step_loss"] == pytest.approx(want, rel=1e-5)
    assert stats["loss"] == pytest.approx(sum(want) / len(want), rel=1e-5)
    if eps:   # the check can tell smoothing from none
        assert all(abs(w - p) > 0.05 for w, p in zip(want, plain))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_fit_trains_with_the_recipes_label_smoothing(eps):
    data = make_synthetic(64, 10, seed=2)
    cfg = recipe("fast", epochs=1, batch_size=32, label_smoothing=eps, seed=4)
    model = confident_model()
    x, y = first_training_batch(data, cfg)
    with torch.no_grad():
        logits = copy.deepcopy(model).train()(x)
    h = fit(model, data, cfg, device="cpu", progress=False, evaluate_test=False, verbose=False)
    # Step 0's loss is measured before the first update: the smoothed loss of the first batch.
    assert h.step_loss[0] == pytest.approx(smoothed_cross_entropy(logits, y, eps), rel=1e-4)
    other = smoothed_cross_entropy(logits, y, 0.1 - eps)
    assert abs(h.step_loss[0] - other) > 0.05


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_one_training_step_is_the_recipes_sgd_step(name):
    """p <- p - lr * d, d = g + wd * p, and with Nesterov d = (1 + momentum) * d on step one."""
    cfg = recipe(name)
    data = make_synthetic(32, 10, seed=5)
    # Not confident_model(): with the weights below, its loss (about 60) would be above the
    # bound at which train_one_epoch stops a run as exploded (10 x ln(10), see runs.loss_bound).
    torch.manual_seed(0)
    model = cifar_resnet(8, width=8)
    with torch.no_grad():            # weights large enough that weight decay shows in a step
        for p in model.parameters():
            p.add_(0.5 * torch.sign(p) + 0.5 * (p == 0))
    before = [p.detach().clone() for p in model.parameters()]
    batches = Batches(data.train, 32)
    x, y = next(iter(batches))
    reference = copy.deepcopy(model).train()
    loss = F.cross_entropy(reference(x), y, label_smoothing=cfg.label_smoothing)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    assert float(loss.detach()) < loss_bound(10)
    lr = 0.05
    train_one_epoch(model, batches, make_optimizer(model, cfg), lambda s: lr,
                    label_smoothing=cfg.label_smoothing, progress=False)

    def step(g, p, nesterov, wd):
        d = g + wd * p
        return p - lr * ((1 + cfg.momentum) * d if nesterov else d)

    after = [p.detach() for p in model.parameters()]
    for g, p0, p1 in zip(grads, before, after):
        # Compare the updates (a few 1e-4), not the weights: float32 rounds weights near 1
        # to about 6e-8, far below weight decay's share of an update (lr * wd * p >= 2e-6).
        torch.testing.assert_close(p1 - p0, step(g, p0, cfg.nesterov, cfg.weight_decay) - p0,
                                   rtol=1e-3, atol=2e-7)
    # The check tells the recipe's step from the step without Nesterov or without decay.
    off = lambda **kw: max(float((p1 - step(g, p0, **kw)).abs().max())
                           for g, p0, p1 in zip(grads, before, after))
    assert off(nesterov=not cfg.nesterov, wd=cfg.weight_decay) > 1e-4
    assert off(nesterov=cfg.nesterov, wd=0.0) > 1e-6


def test_each_step_runs_at_the_scheduled_learning_rate():
    data = make_synthetic(96, 10)
    model = cifar_resnet(8)
    opt = make_optimizer(model, recipe("paper"))
    seen = []
    train_one_epoch(model, Batches(data.train, 32), opt, lambda s: 0.001 * (s + 1), first_step=5,
                    on_step=lambda step, loss: seen.append((step, opt.param_groups[0]["lr"])),
                    progress=False)
    # on_step(step) is called after step `step - 1` (0-based), which ran at lr_schedule(step - 1).
    assert seen == [(6, pytest.approx(0.006)), (7, pytest.approx(0.007)),
                    (8, pytest.approx(0.008))]


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_fit_builds_its_optimizer_from_the_recipe(name, tmp_path):
    data = make_synthetic(128, 10)
    cfg = recipe(name, epochs=2, batch_size=32, lr=0.05)
    h = fit(cifar_resnet(8), data, cfg, out_dir=tmp_path, device="cpu", progress=False,
            evaluate_test=False, verbose=False)
    (group,) = load_checkpoint(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == \
        (cfg.momentum, cfg.nesterov, cfg.weight_decay)
    # The last step (of 8) ran at the schedule's rate for that step.
    assert h.total_steps == 8
    assert group["lr"] == pytest.approx(lr_at(7, 8, cfg))
    # Each epoch records the rate of its first step.
    assert [e["lr"] for e in h.epochs] == [pytest.approx(lr_at(0, 8, cfg)),
                                           pytest.approx(lr_at(4, 8, cfg))]
