"""The checkers of 05_tutorial_forensics accept the notebook's worked answers (tests/
notebook_answers.py) and reject typical wrong ones."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from notebook_answers import answer

from resnet_nb.exercises import ExerciseError, check_channel_stats, check_repaired_block


def _stats(images, correction=1):
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), correction=correction)


def test_channel_stats():
    assert check_channel_stats(answer("channel_stats")).startswith("correct")
    assert check_channel_stats(lambda im: _stats(im, correction=0)).startswith("correct")
    # as plain lists, too
    assert check_channel_stats(lambda im: tuple(t.tolist() for t in _stats(im)))

    def per_image(images):      # the average of each image's own spread
        x = images.float() / 255
        return x.mean(dim=(0, 2, 3)), x.std(dim=(2, 3)).mean(dim=0)
    with pytest.raises(ExerciseError, match="each image's own"):
        check_channel_stats(per_image)
    with pytest.raises(ExerciseError, match="0..255"):
        check_channel_stats(lambda im: (im.float().mean(dim=(0, 2, 3)),
                                        im.float().std(dim=(0, 2, 3))))
    with pytest.raises(ExerciseError, match="one per colour channel"):
        check_channel_stats(lambda im: (im.float().div(255).mean(dim=(0, 1, 2)),
                                        im.float().div(255).std(dim=(0, 1, 2))))
    with pytest.raises(ExerciseError, match="pair"):
        check_channel_stats(lambda im: im.float().div(255).mean(dim=(0, 2, 3)))


class _Repaired(nn.Module):
    def __init__(self, c_in, c_out, stride=1, doubled=False, pad=True):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.c_out, self.stride, self.doubled, self.pad = c_out, stride, doubled, pad

    def shortcut(self, x):
        if not self.pad:
            return x                                  # the snippet's identity everywhere
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.c_out - x.shape[1]))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x) + (out if self.doubled else 0))


def test_repaired_block():
    answer("RepairedBlock")                    # its notebook cell ran its checker already
    assert check_repaired_block(_Repaired).startswith("correct")   # the variants' base
    with pytest.raises(ExerciseError, match="2 F"):
        check_repaired_block(lambda i, o, s=1: _Repaired(i, o, s, doubled=True))
    with pytest.raises(ExerciseError, match="shortcut must produce"):
        check_repaired_block(lambda i, o, s=1: _Repaired(i, o, s, pad=False))

    class WithBias(_Repaired):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__(c_in, c_out, stride)
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
    with pytest.raises(ExerciseError, match="bias"):
        check_repaired_block(WithBias)

    class NoBN(_Repaired):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__(c_in, c_out, stride)
            self.bn1 = nn.Identity()
    with pytest.raises(ExerciseError, match="batch normalisation"):
        check_repaired_block(NoBN)

    class Projection(_Repaired):                      # option B: parameters in the shortcut
        def __init__(self, c_in, c_out, stride=1):
            super().__init__(c_in, c_out, stride)
            self.proj = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

        def shortcut(self, x):
            return self.proj(x)
    with pytest.raises(ExerciseError, match="no parameters"):
        check_repaired_block(Projection)

    class NoFinalReLU(_Repaired):
        def forward(self, x):
            return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x)
    with pytest.raises(ExerciseError, match="differs from"):
        check_repaired_block(NoFinalReLU)

    def broken_constructor(c_in, c_out, stride=1):
        raise TypeError("oops")
    with pytest.raises(ExerciseError, match="raised TypeError"):
        check_repaired_block(broken_constructor)


def test_repaired_block_matches_the_course_block():
    """The checker's right answer is resnet_nb's own BasicBlock."""
    from resnet_nb import BasicBlock
    assert check_repaired_block(BasicBlock).startswith("correct")
