import torch

from resnet_nb import cifar_resnet, make_synthetic
from resnet_nb.data import normalize
from resnet_nb.probes import batch_dependence


def test_batch_dependence_falls_with_batch_size_and_leaves_model_untouched():
    data = make_synthetic(64, 10, seed=1)
    x = normalize(data.train.images)
    torch.manual_seed(0)
    model = cifar_resnet(8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = batch_dependence(model, x, batch_size=2, trials=2)
    large = batch_dependence(model, x, batch_size=32, trials=2)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)    # BN running stats too
    assert small.images == large.images == 64
    # Batch statistics of 2 images are far noisier than those of 32.
    assert small.spread > 3 * large.spread
    # Shares of the 64 images: more of them change their class with 2 batch-mates than with 32.
    assert small.changed > large.changed > 0
    assert (small.changed * 64).is_integer() and (large.changed * 64).is_integer()
    assert "batch    2" in str(small)


def test_batch_dependence_is_zero_in_a_network_without_batch_statistics():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x = torch.randn(32, 3, 32, 32)
    d = batch_dependence(model, x, batch_size=4, trials=2)
    assert d.changed == 0 and d.vs_eval == 0 and d.spread < 1e-6
