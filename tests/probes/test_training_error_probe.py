"""probes.TrainingErrorProbe measures the training error during fit() without changing it."""
import functools

import torch

from resnet_nb import cifar_resnet, fit, make_synthetic, recipe
from resnet_nb.data import Batches
from resnet_nb.probes import TrainingErrorProbe
from resnet_nb.train import evaluate


@functools.lru_cache(maxsize=None)     # each run once per test session
def _run(with_probe: bool):
    data = make_synthetic(128, 16, seed=1)
    torch.manual_seed(0)
    model = cifar_resnet(8)
    cfg = recipe("fast", epochs=2, batch_size=32, lr=0.05, label_smoothing=0.0)
    images = data.train.take(torch.arange(64))
    probe = TrainingErrorProbe(model, images, every=3, total_steps=8) if with_probe else None
    measured = []        # the error measured independently, right after the probe measured

    def on_step(step, loss):
        probe(step, loss)
        if probe.steps and probe.steps[-1] == step:
            measured.append(1 - evaluate(model, Batches(images, 64))["acc"])
            model.train()
    history = fit(model, data, cfg, on_step=on_step if with_probe else None, progress=False,
                  evaluate_test=False)
    return history, probe, model, measured


def test_probe_records_every_few_steps_and_the_last():
    history, probe, model, measured = _run(True)
    assert history.total_steps == 8
    assert probe.steps == [3, 6, 8]
    # The error is measured on the images given, at those steps: 1 - accuracy, each time.
    assert probe.errors == measured and len(set(measured)) > 1
    assert model.training                     # handed back in training mode
    data = make_synthetic(128, 16, seed=1)
    acc = evaluate(model, Batches(data.train.take(torch.arange(64)), 500))["acc"]
    assert abs(probe.errors[-1] - (1 - acc)) < 1e-9


def test_probe_does_not_change_training():
    with_probe, _, m1, _ = _run(True)
    without, _, m2, _ = _run(False)
    assert with_probe.step_loss == without.step_loss
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
