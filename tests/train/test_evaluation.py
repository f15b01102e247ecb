"""evaluate, predict and the numbers fit records, against forward passes written out by hand.

Oracles: one eval-mode forward pass over all images at once (loss averaged per image, not
per batch); batch-norm statistics that must not move; the epoch record recomputed after fit.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from resnet_nb import cifar_resnet, fit, make_synthetic, recipe
from resnet_nb.data import Batches, normalize
from resnet_nb.train import evaluate, make_optimizer, predict, train_one_epoch


def model_with_running_statistics(seed=0):
    """A network whose BN running statistics differ clearly from any batch's statistics."""
    torch.manual_seed(seed)
    model = cifar_resnet(8, width=8)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    with torch.no_grad():
        model.fc.weight.mul_(10)
    return model.train()          # as a network is after training


def by_hand(model, images, labels):
    """One eval-mode forward pass of every image: per-image mean loss, accuracy, classes."""
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        logits = ref(normalize(images))
    loss = F.cross_entropy(logits.double(), labels)
    pred = logits.argmax(1)
    return float(loss), float((pred == labels).double().mean()), pred


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    after = model.state_dict()
    return all(torch.equal(before[k], after[k]) for k in before)


def test_evaluate_averages_the_loss_over_images_not_batches():
    data = make_synthetic(10, 50, seed=1)
    model = model_with_running_statistics()
    batches = Batches(data.test, 16)                    # 16 + 16 + 16 + 2 images
    loss, acc, _ = by_hand(model, data.test.images, data.test.labels)
    before = state(model)
    got = evaluate(model, batches)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["acc"] == pytest.approx(acc, abs=1e-12)
    assert unchanged(model, before)                    # eval mode: running statistics kept
    # The check can tell: the mean of the four batch means is another number.
    per_batch = sum(F.cross_entropy(model.eval()(x), y).item() for x, y in batches) / len(batches)
    assert abs(per_batch - loss) > 0.01 * loss


def test_evaluate_uses_the_running_statistics_even_when_called_in_train_mode():
    data = make_synthetic(10, 64, seed=2)
    model = model_with_running_statistics(seed=1)
    loss, acc, _ = by_hand(model, data.test.images, data.test.labels)
    with torch.no_grad():
        train_mode_loss = F.cross_entropy(copy.deepcopy(model).train()(normalize(
            data.test.images)), data.test.labels).item()
    assert abs(train_mode_loss - loss) > 0.05 * loss    # the two modes differ on this network
    assert evaluate(model.train(), Batches(data.test, 64))["loss"] == pytest.approx(loss, rel=1e-5)


def test_predict_in_train_mode_leaves_batch_norm_statistics_unchanged():
    data = make_synthetic(10, 50, seed=3)
    model = model_with_running_statistics(seed=2)
    _, _, want = by_hand(model, data.test.images, data.test.labels)
    before = state(model)
    got = predict(model, Batches(data.test, 16))
    assert unchanged(model, before)
    assert got.dtype == torch.int64 and got.device.type == "cpu"
    assert torch.equal(got, want)                       # in order, every image, eval mode
    with torch.no_grad():                               # train mode would predict otherwise
        assert not torch.equal(copy.deepcopy(model).train()(normalize(data.test.images))
                               .argmax(1), want)


def test_training_loss_and_accuracy_of_an_epoch():
    data = make_synthetic(96, 10, seed=4)
    model = model_with_running_statistics(seed=3)
    batches = Batches(data.train, 32)
    with torch.no_grad():
        ref = copy.deepcopy(model).train()
        per_batch = [(F.cross_entropy(ref(x), y).item(), int((ref(x).argmax(1) == y).sum()))
                     for x, y in batches]
    # lr 0: every step sees the same weights, so the epoch's numbers are known beforehand.
    stats = train_one_epoch(model, batches, make_optimizer(model, recipe("paper")),
                            lambda s: 0.0, progress=False)
    assert stats["step_loss"] == pytest.approx([l for l, _ in per_batch], rel=1e-5)
    assert stats["loss"] == pytest.approx(sum(l for l, _ in per_batch) / 3, rel=1e-5)
    assert stats["acc"] == sum(c for _, c in per_batch) / 96
    assert 0 < stats["acc"] < 1                         # a value the check can get wrong


def test_the_epoch_record_of_fit():
    data = make_synthetic(192, 40, seed=5).split_validation(64)
    torch.manual_seed(0)
    model = cifar_resnet(8, width=8)
    h = fit(model, data, recipe("fast", epochs=2, batch_size=64), device="cpu", progress=False,
            verbose=False)
    assert h.steps_per_epoch == 2 and h.total_steps == 4 and len(h.step_loss) == 4
    last = h.epochs[-1]
    assert [e["epoch"] for e in h.epochs] == [1, 2]
    for key, part in (("val", data.val), ("test", data.test)):
        again = evaluate(model, Batches(part, 100))
        assert last[f"{key}_loss"] == pytest.approx(again["loss"], rel=1e-5)
        assert last[f"{key}_acc"] == again["acc"]
    assert [e["train_loss"] for e in h.epochs] == pytest.approx(
        [sum(h.step_loss[:2]) / 2, sum(h.step_loss[2:]) / 2])
    assert h.wall_time == pytest.approx(sum(e["seconds"] for e in h.epochs))
    assert h.status == "completed" and h.model["depth"] == 8 and h.config["epochs"] == 2


def test_predict_passes_its_precision_on():
    """predict(precision=...) reaches the autocast: bf16 on a CPU is refused, as in fit."""
    import torch
    from resnet_nb import cifar_resnet
    from resnet_nb.data import Batches, ImageSet
    from resnet_nb.train import predict
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    batches = Batches(ImageSet(images, torch.zeros(4, dtype=torch.long)), 2)
    with pytest.raises(ValueError, match="bf16 mixed precision needs a CUDA GPU"):
        predict(cifar_resnet(8), batches, precision="bf16")
    assert predict(cifar_resnet(8), batches, precision="fp32").shape == (4,)
