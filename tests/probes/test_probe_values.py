"""The probes' numbers, not only their ratios: each value against a computation by hand.

signal_profile on a small network: the RMS of each block's output from a forward pass written
out block by block; the last block's per-image gradient from the chain rule through the
average pool and the classifier (no autograd); the other gradients and the weight gradients
from autograd with a summed loss. lesion_study: each accuracy equals `evaluate` with that one
block lesioned.
"""
import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from resnet_nb import cifar_resnet, fit, lesioned, make_synthetic, plain_net, recipe
from resnet_nb.data import Batches, normalize
from resnet_nb.probes import (BatchDependence, TrainingErrorProbe, batch_dependence,
                             lesion_study, signal_profile)
from resnet_nb.train import evaluate


def small_net(shortcut="A", seed=0):
    torch.manual_seed(seed)
    return cifar_resnet(8, shortcut, width=4)


def batch(n=12, seed=3):
    data = make_synthetic(n, 10, seed=seed)
    return normalize(data.train.images), data.train.labels


def block_outputs(model, x):
    """x_1 .. x_L, written out: stem, then each block in turn (training mode: batch statistics)."""
    outs = []
    h = model.stem(x)
    for b in model.blocks:
        h = b(h)
        outs.append(h)
    return outs


@pytest.mark.parametrize("shortcut", ["A", "none"])
def test_activation_rms_is_the_root_mean_square_of_each_block_output(shortcut):
    model = small_net(shortcut)
    x, y = batch()
    p = signal_profile(model, x, y)
    with torch.no_grad():
        outs = block_outputs(copy.deepcopy(model).train(), x)
    want = [float(o.pow(2).mean().sqrt()) for o in outs]
    assert p.activation_rms == pytest.approx(want, rel=1e-5)
    # ReLU outputs are not constant, so the RMS is well above the mean absolute value.
    assert all(float(o.abs().mean()) < 0.95 * w for o, w in zip(outs, want))


def test_last_gradient_is_per_image_by_the_chain_rule():
    """For image j: dl_j/dx_L = W^T (softmax_j - onehot_j) / 64 at each of the 8x8 positions,
    so its norm is ||W^T (p_j - e_j)|| * 8 / 64 (l_j: image j's own cross-entropy)."""
    model = small_net()
    x, y = batch()
    p = signal_profile(model, x, y)
    with torch.no_grad():
        probe = copy.deepcopy(model).train()
        out = block_outputs(probe, x)[-1]                                  # (N, 16, 8, 8)
        probs = probe.fc(out.mean((2, 3))).softmax(1)
        residual = probs - F.one_hot(y, 10).float()                        # (N, 10)
        per_image = (residual @ probe.fc.weight).norm(dim=1) * 8 / 64     # (N,)
    assert p.grad_norm[-1] == pytest.approx(float(per_image.mean()), rel=1e-4)
    # Not the norm of the batch-mean loss's gradient, which is N times smaller.
    assert p.grad_norm[-1] > 5 * float(per_image.mean()) / len(x)


def test_every_gradient_and_weight_gradient_by_autograd():
    model = small_net(seed=1)
    x, y = batch(seed=4)
    p = signal_profile(model, x, y)
    probe = copy.deepcopy(model).train()
    outs = block_outputs(probe, x)
    logits = probe.fc(F.adaptive_avg_pool2d(outs[-1], 1).flatten(1))
    total = F.cross_entropy(logits, y, reduction="sum")     # = N x the batch mean
    grads = torch.autograd.grad(total, outs, retain_graph=True)
    want = [float(g.flatten(1).norm(dim=1).mean()) for g in grads]
    assert p.grad_norm == pytest.approx(want, rel=1e-4)
    mean_loss = total / len(x)
    assert p.loss == pytest.approx(float(mean_loss.detach()), rel=1e-5)
    for b, got in zip(probe.blocks, p.weight_grad_norm):
        params = list(b.parameters())
        g = torch.autograd.grad(mean_loss, params, retain_graph=True)
        assert got == pytest.approx(float(torch.sqrt(sum(t.pow(2).sum() for t in g))), rel=1e-4)
    assert p.grad_ratio == pytest.approx(want[0] / want[-1], rel=1e-4)
    assert p.stages == (1, 2, 3) and p.depth_index == (1, 2, 3)
    assert p.model_name == "ResNet-8 (A)"


@functools.lru_cache(maxsize=None)
def trained_nets():
    """A ResNet-14 and a plain-14 trained briefly on synthetic classes (once per session)."""
    data = make_synthetic(256, 128, seed=1)
    nets = []
    for shortcut in ("A", "none"):
        torch.manual_seed(0)
        m = cifar_resnet(14, shortcut, width=8)
        fit(m, data, recipe("fast", epochs=2, batch_size=64), device="cpu", progress=False,
            evaluate_test=False, verbose=False)
        nets.append(m.eval())
    return data, nets


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1])
def test_lesion_accuracy_of_block_i_is_evaluate_with_block_i_lesioned(which):
    data, nets = trained_nets()
    model = nets[which]
    test = Batches(data.test, 64)
    r = lesion_study(model, test)
    assert r.baseline_acc == evaluate(model, test)["acc"]
    want = []
    for i in range(6):
        with lesioned(model, [i]):
            want.append(evaluate(model, test)["acc"])
    assert list(r.lesioned_acc) == want
    # The numbers tell the blocks apart, so a study that lesions the wrong block fails.
    assert want != want[::-1] and len(set(want)) >= 3
    assert r.drop == pytest.approx(tuple(r.baseline_acc - a for a in want))
    assert r.downsampling == (False, False, True, False, True, False)
    assert r.model_name == model.name
    assert all(b.enabled for b in model.blocks)


def test_lesion_study_keeps_a_block_that_was_already_off_switched_off():
    data, nets = trained_nets()
    model = nets[0]
    test = Batches(data.test, 64)
    model.set_block(2, False)
    try:
        r = lesion_study(model, test)
        with lesioned(model, []):
            assert r.baseline_acc == evaluate(model, test)["acc"]
        for i in (0, 4):
            with lesioned(model, [i]):          # block 2 stays off too
                assert r.lesioned_acc[i] == evaluate(model, test)["acc"]
        assert [b.enabled for b in model.blocks] == [True, True, False, True, True, True]
    finally:
        model.restore_blocks()


def test_plain_lesion_passes_the_input_on_so_accuracy_is_not_chance():
    """A lesioned plain block is not a dead end: it passes on its (option-A mapped) input."""
    data, nets = trained_nets()
    plain = nets[1]
    x = normalize(data.test.images[:8])
    with torch.no_grad():
        h = plain.stem(x)
        for i, b in enumerate(plain.blocks):
            h = F.relu(b.pass_through(h)) if i == 1 else b(h)
        want = plain.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
        with lesioned(plain, [1]):
            torch.testing.assert_close(plain(x), want)


class Centring(torch.nn.Module):
    """The first 10 pixels as logits, minus their batch mean in training mode (BN's centring)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))   # batch_dependence reads the device
        self.scale = scale

    def forward(self, x):
        z = self.scale * x.flatten(1)[:, :10]
        return z - z.mean(0) if self.training else z


def test_batch_dependence_values_by_hand():
    x = torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = x.flatten(1)[:, :10]
    # One batch of all the images: every trial sees the same batch-mates.
    d = batch_dependence(Centring(), x, batch_size=40, trials=3)
    assert (d.batch_size, d.trials, d.images) == (40, 3, 40)
    assert d.changed == 0 and d.spread < 1e-6        # only rounding: the sums run in other orders
    assert d.vs_eval == pytest.approx(float(((z - z.mean(0)).argmax(1) != z.argmax(1))
                                            .float().mean()))
    assert 0 < d.vs_eval < 1
    # Batches of 8 drawn anew in each trial: predictions now change with the batch-mates.
    d8 = batch_dependence(Centring(), x[:37], batch_size=8, trials=3)
    assert d8.images == 32 and d8.changed > 0 and d8.spread > 0.01
    with pytest.raises(ValueError, match="at least one batch of 64"):
        batch_dependence(Centring(), x, batch_size=64)


def test_lesion_study_with_a_progress_bar_gives_the_same_numbers():
    data, nets = trained_nets()
    test = Batches(data.test, 64)
    assert lesion_study(nets[0], test, progress=True) == lesion_study(nets[0], test)


def test_batch_dependence_text():
    d = BatchDependence(batch_size=8, trials=4, images=64, changed=0.125, vs_eval=0.5,
                        spread=0.0312)
    assert str(d) == ("batch    8: prediction changes with the batch-mates for  12.5% of images "
                      "(logit noise   3.1%); differs from eval mode in  50.0%")


def test_training_error_probe_steps():
    data = make_synthetic(20, 10)
    model = small_net()
    with pytest.raises(ValueError, match="every must be a positive number"):
        TrainingErrorProbe(model, data.train, every=0)
    probe = TrainingErrorProbe(model, data.train, every=4, batch_size=8)
    for step in range(1, 11):
        probe(step, 0.0)
    assert probe.steps == [4, 8] and len(probe.errors) == 2       # no total: multiples only
    assert probe._batches.batch_size == 8 and len(probe._batches) == 3
    assert model.training                                          # handed back as it was
    acc = evaluate(model, Batches(data.train, 20))["acc"]          # (leaves it in eval mode)
    assert probe.errors == [pytest.approx(1 - acc)] * 2
    probe(12, 0.0)
    assert not model.training and probe.steps == [4, 8, 12]


def test_batch_dependence_is_seeded_scale_free_and_leaves_the_random_state_alone():
    x = torch.randn(48, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a = batch_dependence(Centring(), x, batch_size=8)
    assert torch.equal(torch.get_rng_state(), state)        # its own generator, seeded
    torch.manual_seed(2)
    assert batch_dependence(Centring(), x, batch_size=8) == a
    assert a == batch_dependence(Centring(), x, batch_size=8, trials=4, seed=0)   # defaults
    assert a.trials == 4 and batch_dependence(Centring(), x, 8, seed=1) != a
    # The spread is a ratio: logits ten times larger have the same spread.
    assert batch_dependence(Centring(10.0), x, batch_size=8).spread == pytest.approx(a.spread)
    # One trial: nothing to compare with, so no prediction changes.
    one = batch_dependence(Centring(), x, batch_size=8, trials=1)
    assert one.changed == 0 and one.vs_eval > 0


def test_training_error_probe_can_measure_after_every_step():
    data = make_synthetic(20, 10)
    probe = TrainingErrorProbe(small_net(), data.train, every=1)
    for step in (1, 2, 3):
        probe(step, 0.0)
    assert probe.steps == [1, 2, 3]


def test_lesion_study_shows_a_bar_only_when_asked(monkeypatch):
    import resnet_nb.probes as P
    data, nets = trained_nets()
    bars = []
    monkeypatch.setattr(P, "progress_bar", lambda it, **kw: bars.append(kw) or it)
    lesion_study(nets[0], Batches(data.test, 128))
    assert bars == []
    lesion_study(nets[0], Batches(data.test, 128), progress=True)
    assert bars == [{"desc": "lesions", "leave": False}]
