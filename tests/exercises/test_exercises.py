"""Every exercise checker accepts the notebooks' worked answer and rejects typical wrong ones.

The right answers are the instructor notebooks' own (tests/notebook_answers.py runs their
exercise cells, whose checker calls must print `correct`); the wrong ones are written here.
"""
import copy

import pytest

from notebook_answers import answer
from resnet_nb.exercises import ExerciseError, check_distance_from_identity


def test_distance_from_identity():
    right = answer("distance_from_identity")     # its notebook cell ran its checker already
    with pytest.raises(ExerciseError, match="not squared"):
        check_distance_from_identity(lambda s, x: right(s, x) ** 2)
    with pytest.raises(ExerciseError, match="changed that"):      # measures in eval mode
        check_distance_from_identity(lambda s, x: right(s.eval(), x))
    with pytest.raises(ExerciseError, match="whole batch"):         # image by image
        check_distance_from_identity(lambda s, x: sum(right(s, x[i:i + 1])
                                                      for i in range(len(x))) / len(x))


def test_02_1_answer_quotes_the_measurement():
    """The worked answer's distances (02's answer cell and the answer key) are what the
    notebook's solution measures: 1, 4 and 16 blocks, plain, residual, residual with bn2 = 0."""
    import re

    import torch
    from torch import nn

    from resnet_nb.formulation import identity_fit_stacks
    import notebook_answers as A
    distance = answer("distance_from_identity")
    torch.manual_seed(0)
    x = torch.relu(torch.randn(512, 16, 8, 8))
    rows = []
    for blocks in (1, 4, 16):
        plain, residual = identity_fit_stacks(channels=16, blocks=blocks)
        zeroed = copy.deepcopy(residual)
        for block in zeroed:
            nn.init.zeros_(block.bn2.weight)
        rows.append([f"{distance(s, x):.2f}" for s in (plain, residual, zeroed)])
    assert [r[2] for r in rows] == ["0.00"] * 3                    # exactly the identity
    plain, residual = ", ".join(r[0] for r in rows), ", ".join(r[1] for r in rows)
    cell = next(c for c in A.read(A.NOTEBOOKS / "02_residual_formulation.ipynb")["cells"]
                if c.get("id") == "c24-answer")
    for text in (A.source(cell), (A.ROOT / "teaching" / "answer_key.md").read_text()):
        text = re.sub(r"\s+", " ", text)
        assert f"({plain} for 1, 4, 16 blocks)" in text
        assert f"starts *farther* ({residual})" in text


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


@pytest.mark.slow
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
