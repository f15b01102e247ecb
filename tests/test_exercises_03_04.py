"""The checkers of notebooks 03 and 04 accept the notebooks' worked answers (tests/
notebook_answers.py) and reject typical wrong ones."""
import pytest
import torch
import torch.nn.functional as F

from notebook_answers import answer

from resnet_nb.exercises import (ExerciseError, check_accuracy, check_parameter_count,
                                 check_per_class_accuracy, check_step_schedule, check_zero_pad)


def test_parameter_count():
    right = answer("parameter_count")          # its notebook cell ran its checker already
    assert right(20) == 269_722                # He et al. 2015, Table 6: 0.27M
    bn_parameters = lambda d: 2 * 16 + sum(4 * w * (d - 2) // 6 for w in (16, 32, 64))
    with pytest.raises(ExerciseError, match="BatchNorm"):
        check_parameter_count(lambda d: right(d) - bn_parameters(d))   # forgot the BNs
    with pytest.raises(ExerciseError):
        check_parameter_count(lambda d: 270_000 * d // 20)


def test_zero_pad():
    assert check_zero_pad(answer("zero_pad")).startswith("correct")
    with pytest.raises(ExerciseError, match="zeros go after"):    # zeros in front
        check_zero_pad(lambda x, c, s: F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, c - x.shape[1], 0)))
    with pytest.raises(ExerciseError, match="averaging"):          # pooling, not subsampling
        check_zero_pad(lambda x, c, s: F.pad(F.avg_pool2d(x, s), (0, 0, 0, 0, 0, c - x.shape[1])))


def test_step_schedule():
    assert check_step_schedule(answer("step_lr")).startswith("correct")
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
    answer("accuracy")                         # its notebook cell ran its checker already
    with pytest.raises(ExerciseError, match="model.eval"):
        check_accuracy(lambda m, b: _accuracy(m, b, eval_mode=False))
    with pytest.raises(ExerciseError, match="number of images"):
        check_accuracy(lambda m, b: _accuracy(m, b, per_batch_mean=True))


def test_per_class_accuracy():
    assert check_per_class_accuracy(answer("per_class")).startswith("correct")
    with pytest.raises(ExerciseError, match="precision"):
        check_per_class_accuracy(lambda c: c.diagonal() / c.sum(0))
