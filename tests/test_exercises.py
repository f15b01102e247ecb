"""Every exercise checker accepts the notebooks' worked answer and rejects typical wrong ones.

The right answers are the instructor notebooks' own (tests/notebook_answers.py runs their
exercise cells, whose checker calls must print `correct`); the wrong ones are written here.
"""
import math

import pytest

from notebook_answers import answer
from resnet_nb.exercises import ExerciseError, check_path_count


def test_path_count():
    assert check_path_count(answer("path_count")).startswith("correct")
    assert answer("path_count")(54, 27) == math.comb(54, 27)
    with pytest.raises(ExerciseError, match="Hint"):
        check_path_count(lambda n, k: n * k)          # not a count of choices
    with pytest.raises(ExerciseError):
        check_path_count(lambda n, k: 2 ** k)


# --- 00, 01, 02 ----------------------------------------------------------------------

from torch import nn                                                    # noqa: E402
import torch                                                            # noqa: E402
import torch.nn.functional as F                                         # noqa: E402

from resnet_nb.exercises import (check_fixed_block, check_weight_gradient_ratio,  # noqa: E402
                                 check_weighted_layers)


def test_weighted_layers():
    right = answer("count_weighted_layers")
    assert check_weighted_layers(right).startswith("correct")
    with pytest.raises(ExerciseError, match="shortcut"):     # counts the projections too
        check_weighted_layers(lambda m: sum(isinstance(x, (nn.Conv2d, nn.Linear))
                                            for x in m.modules()))
    with pytest.raises(ExerciseError):                        # forgets the classifier
        check_weighted_layers(lambda m: right(m) - 1)


def test_weight_gradient_ratio():
    right = answer("weight_gradient_ratio")    # its notebook cell ran its checker already
    with pytest.raises(ExerciseError, match="last block over the first"):
        check_weight_gradient_ratio(lambda m, x, y: 1 / right(m, x, y))

    def output_gradient(model, images, labels):           # the gradient at the block outputs
        outs = []
        hooks = [b.register_forward_hook(lambda _m, _i, out: (out.retain_grad(), outs.append(out))
                                         and None) for b in model.blocks]
        F.cross_entropy(model.train()(images), labels).backward()
        for h in hooks:
            h.remove()
        return float(outs[0].grad.norm() / outs[-1].grad.norm())
    with pytest.raises(ExerciseError):
        check_weight_gradient_ratio(output_gradient)


def test_fixed_block():
    fixed = answer("FixedBlock")               # the notebook's layers, wrong forwards below

    class Buggy(fixed):
        def __init__(self, c):
            super().__init__(c)
            self.shortcut, self.shortcut2 = nn.Sequential(), nn.Sequential()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out = out + self.shortcut(x) + self.shortcut2(out)
            return F.relu(out)

    class NoShortcut(fixed):
        def forward(self, x):
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    with pytest.raises(ExerciseError, match="2 F"):
        check_fixed_block(Buggy)
    with pytest.raises(ExerciseError):
        check_fixed_block(NoShortcut)
