"""The checkers of notebooks 03 and 04 accept the notebooks' worked answers (tests/
notebook_answers.py) and reject typical wrong ones."""
import pytest
import torch
import torch.nn.functional as F

from notebook_answers import answer

from resnet_nb.exercises import (ExerciseError, check_accuracy, check_loss_floor,
                                 check_parameter_count, check_receptive_field,
                                 check_step_schedule)


def test_parameter_count():
    right = answer("parameter_count")          # its notebook cell ran its checker already
    assert right(20) == 269_722                # He et al. 2015, Table 6: 0.27M
    bn_parameters = lambda d: 2 * 16 + sum(4 * w * (d - 2) // 6 for w in (16, 32, 64))
    with pytest.raises(ExerciseError, match="BatchNorm"):
        check_parameter_count(lambda d: right(d) - bn_parameters(d))   # forgot the BNs
    with pytest.raises(ExerciseError):
        check_parameter_count(lambda d: 270_000 * d // 20)


def test_receptive_field():
    right = answer("receptive_field")          # its notebook cell ran its checker already

    def in_training_mode(module, in_channels, size):     # BN's batch statistics mix pixels
        was = module.training
        module.train()
        try:
            x = torch.randn(1, in_channels, size, size, requires_grad=True)
            out = module(x)
            out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
            rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero()
            return int(rows.max() - rows.min() + 1)
        finally:
            module.train(was)
    with pytest.raises(ExerciseError, match="measure in eval mode"):
        check_receptive_field(in_training_mode)
    with pytest.raises(ExerciseError, match="other mode"):          # left in eval mode
        check_receptive_field(lambda m, c, s: right(m, c, s) if m.eval() is m else None)
    with pytest.raises(ExerciseError, match="measured 1 pixels, expected 3"):   # a radius
        check_receptive_field(lambda m, c, s: right(m, c, s) // 2)


def test_03_2_answer_quotes_the_measurement():
    """ResNet-20 and its plain twin: 15, 37 and 81 pixels after stages 1, 2 and 3 (stem
    included), as the answer key says and as 2 x the strides before each 3x3 convolution
    predicts."""
    import re
    from pathlib import Path

    from torch import nn

    from resnet_nb import cifar_resnet, plain_net
    right = answer("receptive_field")
    for model in (cifar_resnet(20), plain_net(20)):
        parts = [model.stem, model.stage1, model.stage2, model.stage3]
        got = [right(nn.Sequential(*parts[:i]), 3, 97) for i in (2, 3, 4)]
        assert got == [15, 37, 81], (model.name, got)
    key = re.sub(r"\s+", " ", (Path(__file__).resolve().parents[2] / "teaching" / "answer_key.md")
                 .read_text())
    assert "Measured with the function above, `size=97`: **15, 37 and 81**" in key


def test_step_schedule():
    assert check_step_schedule(answer("step_lr")).startswith("correct")
    with pytest.raises(ExerciseError, match="32000"):              # milestones one step late
        check_step_schedule(lambda s, t, b: b * 0.1 ** ((s > t / 2) + (s > 3 * t / 4)))
    with pytest.raises(ExerciseError):
        check_step_schedule(lambda s, t, b: b)


@torch.no_grad()
def _accuracy(model, batches, eval_mode=True, per_batch_mean=False, restore=False):
    was = model.training
    if eval_mode:
        model.eval()
    if per_batch_mean:
        result = sum((model(x).argmax(1) == y).float().mean().item()
                     for x, y in batches) / len(batches)
    else:
        correct = seen = 0
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum().item()
            seen += len(y)
        result = correct / seen
    if restore:
        model.train(was)
    return result


def test_accuracy():
    answer("accuracy")                         # its notebook cell ran its checker already
    with pytest.raises(ExerciseError, match="model.eval"):
        check_accuracy(lambda m, b: _accuracy(m, b, eval_mode=False))
    with pytest.raises(ExerciseError, match="number of images"):
        check_accuracy(lambda m, b: _accuracy(m, b, per_batch_mean=True, restore=True))


def test_accuracy_must_leave_the_mode_as_it_was():
    """The checker's model is in training mode; an answer that leaves it in eval mode fails
    (the notebook's answer once did, and the checker said 'model unchanged')."""
    with pytest.raises(ExerciseError, match="left the model in eval mode"):
        check_accuracy(_accuracy)


def test_loss_floor():
    right = answer("loss_floor")               # its notebook cell ran its checker already
    assert abs(right(10, 0.1) - 0.5003) < 1e-4
    import math
    with pytest.raises(ExerciseError, match="the true one included"):   # 1 - e, e/(C - 1)
        check_loss_floor(lambda c, e: -(1 - e) * math.log(1 - e) - e * math.log(e / (c - 1))
                         if 0 < e < 1 else right(c, e))
    with pytest.raises(ExerciseError, match="entropy"):
        check_loss_floor(lambda c, e: 0.0)
