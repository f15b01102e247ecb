"""Each exercise checker still checks what its exercise asks.

tests/notebooks/test_student_copies.py shows that each checker accepts the instructor notebooks' worked
answer, and tests/test_exercises*.py and tests/widgets/test_widgets.py that it rejects a typical
wrong one. Here every check inside
each checker meets a wrong answer that only that check catches, and the message it gives is
the one meant for that mistake: a checker that stopped checking something fails here.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import exercises as E
from resnet_nb.exercises import ExerciseError


def rejects(check, answer, match):
    with pytest.raises(ExerciseError, match=match):
        check(answer)


def distance(stack, x):
    with torch.no_grad():
        return float((stack(x) - x).norm() / x.norm())


def test_distance_from_identity_checks_size_batch_mode_and_graph():
    assert E.check_distance_from_identity(distance).startswith("correct")
    rejects(E.check_distance_from_identity, lambda s, x: distance(s, x) + 0.01,
            "empty stack")
    rejects(E.check_distance_from_identity, lambda s, x: float((s(x) - x).norm()),
            "triples its input")                                       # not relative
    rejects(E.check_distance_from_identity, lambda s, x: (s(x) - x).norm() / x.norm(),
            "carries a graph")
    rejects(E.check_distance_from_identity, lambda s, x: (s(x) - x).norm(dim=1),
            "not one number")
    rejects(E.check_distance_from_identity, lambda s, x: "far", "not a number")
    rejects(E.check_distance_from_identity, lambda s, x: distance(s, x[:2])     # a subset
            if isinstance(s, nn.Sequential) and len(s) else distance(s, x), "on x itself")

    def switches_back(s, x):                   # measures in eval mode, then restores the mode
        was = s.training
        try:
            return distance(s.eval(), x)
        finally:
            s.train(was)
    rejects(E.check_distance_from_identity, switches_back, "training mode you measured")


def receptive_field(module, in_channels, size):
    was = module.training
    module.eval()
    x = torch.randn(1, in_channels, size, size, requires_grad=True)
    out = module(x)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    module.train(was)
    rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_receptive_field_checks_every_case_and_the_mode():
    assert E.check_receptive_field(receptive_field).startswith("correct")
    rejects(E.check_receptive_field, lambda m, c, s: None, "returned None")
    rejects(E.check_receptive_field, lambda m, c, s: 3 if receptive_field(m, c, s) == 1
            else receptive_field(m, c, s), "1x1 convolution you measured 3")
    rejects(E.check_receptive_field, lambda m, c, s: receptive_field(m, c, s) + 1, "expected 3")
    # A stride ignored: 3x3 stride 2 then 3x3 counted as two stride-1 convolutions.
    rejects(E.check_receptive_field, lambda m, c, s: 5 if receptive_field(m, c, s) == 7
            else receptive_field(m, c, s), "stride 2, then a 3x3 convolution you measured 5")

    def no_restore(m, c, s):
        r = receptive_field(m, c, s)
        m.eval()
        return r
    rejects(E.check_receptive_field, no_restore, "another mode")


def parameter_count(depth):
    n = (depth - 2) // 6
    total, c_in = 3 * 9 * 16 + 2 * 16, 16
    for w in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * w + 9 * w * w + 4 * w
            c_in = w
    return total + 64 * 10 + 10


def test_parameter_count_checks_every_depth():
    assert E.check_parameter_count(parameter_count).startswith("correct")
    assert parameter_count(20) == 269_722                      # He et al. 2015, Table 6: 0.27M
    rejects(E.check_parameter_count, lambda d: parameter_count(d) - 10, "fc layer")  # no bias
    rejects(E.check_parameter_count, lambda d: parameter_count(d) if d < 110 else 0,
            r"parameter_count\(110\)")


def test_step_schedule_checks_both_milestones():
    right = lambda s, t, b: b * 0.1 ** ((s >= t / 2) + (s >= 3 * t / 4))
    assert E.check_step_schedule(right).startswith("correct")
    rejects(E.check_step_schedule, lambda s, t, b: b * 0.1 ** (s >= t / 2), "48000")
    rejects(E.check_step_schedule, lambda s, t, b: None, "returned None")


@torch.no_grad()
def accuracy(model, batches, skip_last=False, restore=True):
    was = model.training
    model.eval()
    correct = seen = 0
    for i, (x, y) in enumerate(batches):
        if skip_last and i == len(batches) - 1:
            break
        correct += (model(x).argmax(1) == y).sum().item()
        seen += len(y)
    if restore:
        model.train(was)
    return correct / seen


@pytest.mark.slow
def test_accuracy_checks_every_batch_and_the_model_state():
    assert E.check_accuracy(accuracy).startswith("correct")
    rejects(E.check_accuracy, lambda m, b: accuracy(m, b, skip_last=True), "expected")
    rejects(E.check_accuracy, lambda m, b: 100 * accuracy(m, b), "fraction")

    def moves_weights(model, batches):
        with torch.no_grad():
            model.fc.bias.add_(1.0)
        return accuracy(model, batches)
    rejects(E.check_accuracy, moves_weights, "changed the model")
    rejects(E.check_accuracy, lambda m, b: accuracy(m, b, restore=False), "left the model in eval")

    def half_restored(model, batches):         # the model back in training mode, one BN not
        result = accuracy(model, batches)
        next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
        return result
    rejects(E.check_accuracy, half_restored, "left the model in eval")


def loss_floor(classes, e):
    q_true, q_other = 1 - e + e / classes, e / classes
    return -q_true * math.log(q_true) - ((classes - 1) * q_other * math.log(q_other)
                                         if q_other else 0.0)


def test_loss_floor_checks_every_case():
    assert E.check_loss_floor(loss_floor).startswith("correct")
    rejects(E.check_loss_floor, lambda c, e: loss_floor(c, e) + 0.01, r"loss_floor\(10, 0.0\)")
    rejects(E.check_loss_floor, lambda c, e: 0.1 if e == 0 else loss_floor(c, e),
            "approach loss 0")
    rejects(E.check_loss_floor, lambda c, e: loss_floor(c, e) if c < 1000 else 0.0,
            r"loss_floor\(1000, 0.1\)")
    rejects(E.check_loss_floor, lambda c, e: loss_floor(c, e) / math.log(2) if e else 0.0,
            "natural log")                                             # in bits
    rejects(E.check_loss_floor, lambda c, e: torch.tensor([loss_floor(c, e)] * 2),
            "not one number")


def test_weighted_layers_checks_every_option():
    def right(model):
        inside = {id(m) for b in model.blocks for m in b.shortcut.modules()}
        return sum(isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in inside
                   for m in model.modules())
    assert E.check_weighted_layers(right).startswith("correct")
    rejects(E.check_weighted_layers, lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules()),
            r"ResNet-8 \(A\) you counted 7")                 # forgot the classifier
    rejects(E.check_weighted_layers, lambda m: right(m) + sum(
        isinstance(x, nn.BatchNorm2d) for x in m.modules()), "BatchNorm")


def weight_grad_ratio(model, images, labels, mode="train", params=lambda b: b.parameters()):
    model.train(mode == "train")
    F.cross_entropy(model(images), labels).backward()
    norm = lambda b: torch.cat([p.grad.flatten() for p in params(b)]).norm()
    return float(norm(model.blocks[0]) / norm(model.blocks[-1]))


@pytest.mark.slow
def test_weight_gradient_ratio_checks_the_mode_and_the_blocks():
    assert E.check_weight_gradient_ratio(weight_grad_ratio).startswith("correct")
    rejects(E.check_weight_gradient_ratio,
            lambda m, x, y: weight_grad_ratio(m, x, y, mode="eval"), "training mode")
    rejects(E.check_weight_gradient_ratio, _first_over_second, "expected")


def _first_over_second(model, images, labels):             # the second block, not the last
    model.train()
    F.cross_entropy(model(images), labels).backward()
    norm = lambda b: torch.cat([p.grad.flatten() for p in b.parameters()]).norm()
    return float(norm(model.blocks[0]) / norm(model.blocks[1]))


class Block(nn.Module):
    def __init__(self, c, shortcut_scale=1.0, relu_after=True):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.scale, self.relu_after = shortcut_scale, relu_after

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = out + self.scale * x
        return F.relu(out) if self.relu_after else out


def test_fixed_block_checks_names_and_the_function():
    assert E.check_fixed_block(Block).startswith("correct")

    class Renamed(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.first = nn.Conv2d(c, c, 3, padding=1, bias=False)

    rejects(E.check_fixed_block, Renamed, "has no conv1, bn1, conv2, bn2")
    rejects(E.check_fixed_block, lambda c: Block(c, relu_after=False), r"relu\(F\(x\) \+ x\)")
    rejects(E.check_fixed_block, lambda c: Block(c, shortcut_scale=0.5), r"relu\(F\(x\) \+ x\)")


def test_additive_accuracy_checks_numbering_and_the_sum():
    right = lambda r, blocks: r.baseline_acc - sum(r.drop[b - 1] for b in blocks)
    assert E.check_additive_accuracy(right).startswith("correct")
    rejects(E.check_additive_accuracy,
            lambda r, blocks: r.baseline_acc - sum(r.drop[b] for b in blocks
                                                   if b < len(r.drop)), "numbered from 1")
    rejects(E.check_additive_accuracy, lambda r, blocks: None, "forget `return`")
    rejects(E.check_additive_accuracy,                      # the worst block alone
            lambda r, blocks: r.baseline_acc - max((r.drop[b - 1] for b in blocks), default=0),
            "take off each block's cost")
    rejects(E.check_additive_accuracy,                      # the drops, not the accuracy
            lambda r, blocks: sum(r.drop[b - 1] for b in blocks), "take off each block's cost")
    rejects(E.check_additive_accuracy,
            lambda r, blocks: [r.lesioned_acc[b - 1] for b in blocks], "return one number")


