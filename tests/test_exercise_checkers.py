"""Each exercise checker still checks what its exercise asks.

tests/test_student_copies.py shows that each checker accepts the instructor notebooks' worked
answer, and tests/test_exercises*.py and tests/test_widgets.py that it rejects a typical
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


def test_path_count_checks_every_n_and_k():
    assert E.check_path_count(math.comb).startswith("correct")
    rejects(E.check_path_count, lambda n, k: math.comb(n, k) if n < 8 else 0,
            r"path_count\(8, 0\) returned 0")
    rejects(E.check_path_count, lambda n, k: math.comb(n, k) + (k == n == 3),
            r"path_count\(3, 3\) returned 2")


def zero_pad(x, out_channels, stride):
    x = x[:, :, ::stride, ::stride]
    return F.pad(x, (0, 0, 0, 0, 0, out_channels - x.shape[1]))


def test_zero_pad_checks_type_shape_kept_channels_and_zeros():
    assert E.check_zero_pad(zero_pad).startswith("correct")
    rejects(E.check_zero_pad, lambda x, c, s: zero_pad(x, c, s).numpy(), "not a tensor")
    rejects(E.check_zero_pad, lambda x, c, s: zero_pad(x, c, 1), "should have shape")
    rejects(E.check_zero_pad, lambda x, c, s: zero_pad(x[:, :, 1:, 1:], c, s)
            if s > 1 else zero_pad(x, c, s), "starting at 0")
    # The new channels must be zeros: ones, or copies of the input, are not option A.
    rejects(E.check_zero_pad, lambda x, c, s: F.pad(x[:, :, ::s, ::s],
                                                    (0, 0, 0, 0, 0, c - x.shape[1]), value=1.0),
            "should be zeros")
    rejects(E.check_zero_pad, lambda x, c, s: torch.cat(
        [x[:, :, ::s, ::s], x[:, :, ::s, ::s]], 1)[:, :c] if c > x.shape[1] else x[:, :, ::s, ::s],
        "should be zeros")


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
def accuracy(model, batches, skip_last=False):
    model.eval()
    correct = seen = 0
    for i, (x, y) in enumerate(batches):
        if skip_last and i == len(batches) - 1:
            break
        correct += (model(x).argmax(1) == y).sum().item()
        seen += len(y)
    return correct / seen


def test_accuracy_checks_every_batch_and_the_model_state():
    assert E.check_accuracy(accuracy).startswith("correct")
    rejects(E.check_accuracy, lambda m, b: accuracy(m, b, skip_last=True), "expected")
    rejects(E.check_accuracy, lambda m, b: 100 * accuracy(m, b), "fraction")

    def moves_weights(model, batches):
        with torch.no_grad():
            model.fc.bias.add_(1.0)
        return accuracy(model, batches)
    rejects(E.check_accuracy, moves_weights, "changed the model")


def test_per_class_accuracy_checks_length_and_values():
    assert E.check_per_class_accuracy(lambda c: c.diagonal() / c.sum(1)).startswith("correct")
    rejects(E.check_per_class_accuracy, lambda c: (c.diagonal() / c.sum(1))[:2], "one per class")
    rejects(E.check_per_class_accuracy, lambda c: c.diagonal() / c.sum(), "rows are the true")


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


def grad_ratio(model, images, labels, mode="train"):
    outs = []

    def keep(_m, _i, out):
        out.retain_grad()
        outs.append(out)
    hooks = [b.register_forward_hook(keep) for b in model.blocks]
    model.train(mode == "train")
    F.cross_entropy(model(images), labels).backward()
    for h in hooks:
        h.remove()
    norm = lambda o: (o.grad * len(images)).flatten(1).norm(dim=1).mean()
    return float(norm(outs[0]) / norm(outs[-1]))


def test_gradient_ratio_checks_the_mode_and_the_blocks():
    assert E.check_gradient_ratio(grad_ratio).startswith("correct")
    rejects(E.check_gradient_ratio, lambda m, x, y: grad_ratio(m, x, y, mode="eval"), "expected")
    rejects(E.check_gradient_ratio, lambda m, x, y: grad_ratio(m, x, y) / len(x),
            "off by the batch size")


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


