import pytest
import torch

from resnet_nb import cifar_resnet, make_synthetic, plain_net
from resnet_nb.data import Batches, normalize
from resnet_nb.probes import lesion_study, signal_profile
from resnet_nb.train import evaluate


def _batch(n=16):
    data = make_synthetic(n, 10)
    return normalize(data.train.images), data.train.labels


def test_signal_profile_shapes_and_no_side_effects():
    model = cifar_resnet(14)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch()
    p = signal_profile(model, x, y)
    assert len(p.activation_rms) == len(p.grad_norm) == len(p.weight_grad_norm) == 6
    assert p.stages == (1, 1, 2, 2, 3, 3)
    assert all(v > 0 for v in p.grad_norm + p.activation_rms + p.weight_grad_norm)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # BN statistics untouched


@pytest.mark.slow
def test_gradient_reaches_early_blocks_of_a_deep_resnet_but_not_of_a_plain_net():
    # With BN the forward signal of a plain net stays healthy (He et al. 2015, sec. 4.1);
    # what differs at initialisation is how the gradient is spread over depth: in a deep
    # plain BN net it grows by orders of magnitude towards the input.
    torch.manual_seed(0)
    x, y = _batch(32)
    res = signal_profile(cifar_resnet(56), x, y)
    torch.manual_seed(0)
    plain = signal_profile(plain_net(56), x, y)
    # The residual net's gradient grows towards the input (the identity paths add up) ...
    assert res.grad_norm[0] > res.grad_norm[-1]
    # ... and varies across blocks far less than the plain net's does.
    spread = lambda g: max(g) / min(g)
    assert spread(res.grad_norm) < 100 < spread(plain.grad_norm)
    # The forward signal of the plain net is of the same size in every block.
    assert spread(plain.activation_rms) < 1.5


def test_lesion_study_restores_the_model():
    data = make_synthetic(64, 64)
    model = cifar_resnet(8).eval()
    batches = Batches(data.test, 32)
    r = lesion_study(model, batches)
    assert len(r.lesioned_acc) == 3 and r.downsampling == (False, True, True)
    assert all(b.enabled for b in model.blocks)
    assert r.baseline_acc == evaluate(model, batches)["acc"]
    assert r.drop == tuple(r.baseline_acc - a for a in r.lesioned_acc)
