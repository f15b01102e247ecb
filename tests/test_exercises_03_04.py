"""The checkers of notebooks 03 and 04 accept a right answer and reject typical wrong ones."""
import pytest
import torch
import torch.nn.functional as F

from resnet_nb.exercises import (ExerciseError, check_accuracy, check_parameter_count,
                                 check_per_class_accuracy, check_step_schedule, check_zero_pad)


def _parameter_count(depth, bn=True):
    n = (depth - 2) // 6
    total, c_in = 3 * 9 * 16 + (2 * 16 if bn else 0), 16
    for w in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * w + 9 * w * w + (4 * w if bn else 0)
            c_in = w
    return total + 64 * 10 + 10


def test_parameter_count():
    assert check_parameter_count(_parameter_count).startswith("correct")
    with pytest.raises(ExerciseError, match="BatchNorm"):
        check_parameter_count(lambda d: _parameter_count(d, bn=False))   # forgot the BNs
    with pytest.raises(ExerciseError):
        check_parameter_count(lambda d: 270_000 * d // 20)


def test_zero_pad():
    def right(x, out_channels, stride):
        x = x[:, :, ::stride, ::stride]
        return F.pad(x, (0, 0, 0, 0, 0, out_channels - x.shape[1]))
    assert check_zero_pad(right).startswith("correct")
    with pytest.raises(ExerciseError, match="zeros go after"):    # zeros in front
        check_zero_pad(lambda x, c, s: F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, c - x.shape[1], 0)))
    with pytest.raises(ExerciseError, match="averaging"):          # pooling, not subsampling
        check_zero_pad(lambda x, c, s: F.pad(F.avg_pool2d(x, s), (0, 0, 0, 0, 0, c - x.shape[1])))


def test_step_schedule():
    right = lambda step, total, base: base * 0.1 ** ((step >= total / 2) + (step >= 3 * total / 4))
    assert check_step_schedule(right).startswith("correct")
    with pytest.raises(ExerciseError, match="32000"):              # milestones one step late
        check_step_schedule(lambda s, t, b: b * 0.1 ** ((s > t / 2) + (s > 3 * t / 4)))
    with pytest.raises(ExerciseError):
        check_step_schedule(lambda s, t, b: b)


@torch.no_grad()
def _accuracy(model, batches, eval_mode=True, per_batch_mean=False):
    if eval_mode:
        model.eval()
    if per_batch_mean:
        return sum((model(x).argmax(1) == y).float().mean().item() for x, y in batches) / len(batches)
    correct = seen = 0
    for x, y in batches:
        correct += (model(x).argmax(1) == y).sum().item()
        seen += len(y)
    return correct / seen


def test_accuracy():
    assert check_accuracy(_accuracy).startswith("correct")
    with pytest.raises(ExerciseError, match="model.eval"):
        check_accuracy(lambda m, b: _accuracy(m, b, eval_mode=False))
    with pytest.raises(ExerciseError, match="number of images"):
        check_accuracy(lambda m, b: _accuracy(m, b, per_batch_mean=True))


def test_per_class_accuracy():
    assert check_per_class_accuracy(lambda c: c.diagonal() / c.sum(1)).startswith("correct")
    with pytest.raises(ExerciseError, match="precision"):
        check_per_class_accuracy(lambda c: c.diagonal() / c.sum(0))
