"""Every exercise checker accepts a right answer and rejects a typical wrong one."""
import math

import pytest

from resnet_nb.exercises import ExerciseError, check_path_count


def test_path_count():
    assert check_path_count(lambda n, k: math.comb(n, k)).startswith("correct")
    with pytest.raises(ExerciseError, match="Hint"):
        check_path_count(lambda n, k: n * k)          # not a count of choices
    with pytest.raises(ExerciseError):
        check_path_count(lambda n, k: 2 ** k)


# --- 00, 01, 02 ----------------------------------------------------------------------

from torch import nn                                                    # noqa: E402
import torch                                                            # noqa: E402
import torch.nn.functional as F                                         # noqa: E402

from resnet_nb.exercises import (check_fixed_block, check_gradient_ratio,  # noqa: E402
                                 check_weighted_layers)


def test_weighted_layers():
    def right(model):
        shortcut_convs = {id(m) for b in model.blocks for m in b.shortcut.modules()}
        return sum(isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in shortcut_convs
                   for m in model.modules())
    assert check_weighted_layers(right).startswith("correct")
    with pytest.raises(ExerciseError, match="shortcut"):     # counts the projections too
        check_weighted_layers(lambda m: sum(isinstance(x, (nn.Conv2d, nn.Linear))
                                            for x in m.modules()))
    with pytest.raises(ExerciseError):                        # forgets the classifier
        check_weighted_layers(lambda m: right(m) - 1)


def _keep(model, outs):
    def hook(_module, _inputs, out):      # returns None: the output is left as it is
        out.retain_grad()
        outs.append(out)
    return [b.register_forward_hook(hook) for b in model.blocks]


def _gradient_ratio(model, images, labels, per_image=True):
    outs = []
    hooks = _keep(model, outs)
    F.cross_entropy(model(images), labels).backward()
    for h in hooks:
        h.remove()
    n = len(images) if per_image else 1
    norm = lambda o: (o.grad * n).flatten(1).norm(dim=1).mean()
    return float(norm(outs[0]) / norm(outs[-1]))


def test_gradient_ratio():
    assert check_gradient_ratio(_gradient_ratio).startswith("correct")
    with pytest.raises(ExerciseError):                    # the last block over the first
        check_gradient_ratio(lambda m, x, y: 1 / _gradient_ratio(m, x, y))
    with pytest.raises(ExerciseError):                    # one norm over the whole batch
        def whole_batch(model, images, labels):
            outs = []
            _keep(model, outs)
            F.cross_entropy(model(images), labels).backward()
            return float(outs[0].grad.norm() / outs[-1].grad.norm())
        check_gradient_ratio(whole_batch)


class _Fixed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class _Buggy(_Fixed):
    def __init__(self, c):
        super().__init__(c)
        self.shortcut, self.shortcut2 = nn.Sequential(), nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x) + self.shortcut2(out)
        return F.relu(out)


class _NoShortcut(_Fixed):
    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def test_fixed_block():
    assert check_fixed_block(_Fixed).startswith("correct")
    with pytest.raises(ExerciseError, match="2 F"):
        check_fixed_block(_Buggy)
    with pytest.raises(ExerciseError):
        check_fixed_block(_NoShortcut)
