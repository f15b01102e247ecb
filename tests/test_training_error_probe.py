"""probes.TrainingErrorProbe measures the training error during fit() without changing it."""
import functools

import torch

from resnet_nb import cifar_resnet, fit, make_synthetic, recipe
from resnet_nb.probes import TrainingErrorProbe


@functools.lru_cache(maxsize=None)     # each run once per test session
def _run(with_probe: bool):
    data = make_synthetic(128, 16, seed=1)
    torch.manual_seed(0)
    model = cifar_resnet(8)
    cfg = recipe("fast", epochs=2, batch_size=32, lr=0.05, label_smoothing=0.0)
    probe = TrainingErrorProbe(model, data.train.take(torch.arange(64)), every=3,
                               total_steps=8) if with_probe else None
    history = fit(model, data, cfg, on_step=probe, progress=False, evaluate_test=False)
    return history, probe, model


def test_probe_records_every_few_steps_and_the_last():
    history, probe, model = _run(True)
    assert history.total_steps == 8
    assert probe.steps == [3, 6, 8]
    assert all(0.0 <= e <= 1.0 for e in probe.errors)
    assert model.training                     # handed back in training mode
    # The error is measured on the images given: the last value equals a fresh evaluation.
    from resnet_nb.train import evaluate
    from resnet_nb.data import Batches
    data = make_synthetic(128, 16, seed=1)
    acc = evaluate(model, Batches(data.train.take(torch.arange(64)), 500))["acc"]
    assert abs(probe.errors[-1] - (1 - acc)) < 1e-9


def test_probe_does_not_change_training():
    with_probe, _, m1 = _run(True)
    without, _, m2 = _run(False)
    assert with_probe.step_loss == without.step_loss
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
