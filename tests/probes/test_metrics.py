import pytest
import torch

from resnet_nb import cifar_resnet, make_synthetic
from resnet_nb.metrics import (confusion_matrix, misclassified, per_class_accuracy,
                               training_throughput)


def test_confusion_matrix_counts_pairs():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(labels, preds, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert int(cm.sum()) == 6 and int(cm.trace()) == int((labels == preds).sum())


def test_confusion_matrix_agrees_with_a_loop_on_random_data():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    preds = torch.randint(0, 10, (500,), generator=g)
    slow = torch.zeros(10, 10, dtype=torch.int64)
    for t, p in zip(labels.tolist(), preds.tolist()):
        slow[t, p] += 1
    assert torch.equal(confusion_matrix(labels, preds), slow)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="0..9"):
        confusion_matrix(torch.tensor([0, 10]), torch.tensor([0, 1]))


def test_per_class_accuracy_is_recall_and_nan_for_empty_classes():
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    acc = per_class_accuracy(cm)
    assert acc[0] == pytest.approx(0.75) and acc[2] == pytest.approx(0.5)
    assert torch.isnan(acc[1])


def test_misclassified_indices():
    assert misclassified(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0])).tolist() == [1, 3]


def test_training_throughput_counts_images_and_trains(monkeypatch):
    data = make_synthetic(40, 10).train
    model = cifar_resnet(8)
    before = [p.detach().clone() for p in model.parameters()]
    # A clock that reads the number of images the model has seen: the time measured is then
    # the number of images trained on while the clock ran, warm-up steps excluded.
    seen = []
    model.register_forward_pre_hook(lambda _m, inputs: seen.append(len(inputs[0])))
    import resnet_nb.metrics as M
    monkeypatch.setattr(M, "time", type("Clock", (), {"perf_counter": lambda: float(sum(seen))}))
    t = training_throughput(model, data, batch_size=8, images=16, warmup_steps=1)
    assert seen == [8, 8, 8]                    # one warm-up step, two timed steps
    assert t.images == 16 and t.seconds == 16.0 and t.images_per_second == 1.0
    assert str(t) == "batch    8:      1.0 images/s (16 images in 16.00 s)"
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="need"):
        training_throughput(cifar_resnet(8), data, batch_size=32, images=64)
