"""The checkers of 05_tutorial_forensics accept the notebook's worked answers (tests/
notebook_answers.py) and reject typical wrong ones."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from notebook_answers import answer

from resnet_nb import BasicBlock
from resnet_nb.exercises import (ExerciseError, _doubled_blocks, check_adds_branch_once,
                                 check_batch_independent)


def _branch(block, x):
    bn1, bn2 = (getattr(block, n, nn.Identity()) for n in ("bn1", "bn2"))
    return bn2(block.conv2(F.relu(bn1(block.conv1(x)))))


def _compare(block, x, reinit=True, with_bn=True):
    block = copy.deepcopy(block).eval()
    if reinit:
        for p in block.parameters():
            nn.init.normal_(p, std=0.3)
    with torch.no_grad():
        f = (_branch(block, x) if with_bn else
             block.conv2(F.relu(block.conv1(x))))
        return torch.allclose(block(x), F.relu(f + block.shortcut(x)), atol=1e-5)


def _input(block):
    return torch.randn(2, block.conv1.in_channels, 8, 8)


def test_the_checkers_blocks_are_what_they_say():
    """Once-blocks compute relu(F + shortcut), twice-blocks relu(2F + shortcut); the trap is a
    twice-block that a test without weights of its own cannot tell from a once-block."""
    once, twice, (trap_name, trap) = _doubled_blocks()
    for _, make in once + twice:
        block = make().eval()
        for p in block.parameters():
            nn.init.normal_(p, std=0.3)
        x = _input(block)
        with torch.no_grad():
            f, s, got = _branch(block, x), block.shortcut(x), block(x)
        k = 1 if (_, make) in once else 2
        assert torch.allclose(got, F.relu(k * f + s), atol=1e-5)
        assert not torch.allclose(got, F.relu((3 - k) * f + s), atol=1e-3)
    block = trap().eval()
    x = _input(block)
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(_branch(block, x) + block.shortcut(x)))


def test_adds_branch_once():
    assert check_adds_branch_once(answer("adds_branch_once")).startswith("correct")
    assert check_adds_branch_once(lambda b: _compare(b, _input(b))).startswith("correct")
    with pytest.raises(ExerciseError, match="starts at F = 0"):        # the zero-branch trap
        check_adds_branch_once(lambda b: _compare(b, _input(b), reinit=False))
    with pytest.raises(ExerciseError, match="your test failed BasicBlock"):   # BN ignored
        check_adds_branch_once(lambda b: _compare(b, _input(b), with_bn=False))
    with pytest.raises(ExerciseError, match="passed a BasicBlock that adds F twice"):
        check_adds_branch_once(lambda b: _compare(b, 0 * _input(b), reinit=False))
    with pytest.raises(ExerciseError, match="passed the snippet's"):
        check_adds_branch_once(lambda b: True)
    with pytest.raises(ExerciseError, match="your test failed"):
        check_adds_branch_once(lambda b: False)
    with pytest.raises(ExerciseError, match="return True or False"):
        check_adds_branch_once(lambda b: None)
    with pytest.raises(ExerciseError, match="raised RuntimeError"):   # 3 channels for every block
        check_adds_branch_once(lambda b: _compare(b, torch.randn(2, 3, 8, 8)))


def _halves(net, images):
    half = len(images) // 2
    with torch.no_grad():
        return torch.allclose(net(images), torch.cat([net(images[:half]), net(images[half:])]),
                              atol=1e-5)


def test_batch_independent():
    assert check_batch_independent(answer("batch_independent")).startswith("correct")
    assert check_batch_independent(lambda n, x: _halves(copy.deepcopy(n), x)).startswith("correct")
    with pytest.raises(ExerciseError, match="changed a network with BN.*running_mean"):
        check_batch_independent(_halves)                      # tests the network itself

    def same_batch(net, images):
        probe = copy.deepcopy(net)
        with torch.no_grad():
            return torch.allclose(probe(images), probe(images))
    with pytest.raises(ExerciseError, match="do not depend on the batch; they do"):
        check_batch_independent(same_batch)

    def in_eval(net, images):
        return _halves(net.eval(), images)
    with pytest.raises(ExerciseError, match="put a network with BN, in training mode into "
                                            "evaluation mode"):
        check_batch_independent(in_eval)
    with pytest.raises(ExerciseError, match="depend on the batch; they do not"):
        check_batch_independent(lambda n, x: False)
    with pytest.raises(ExerciseError, match="they do:"):
        check_batch_independent(lambda n, x: True)
    with pytest.raises(ExerciseError, match="return True or False"):
        check_batch_independent(lambda n, x: "yes")
    with pytest.raises(ExerciseError, match="raised ZeroDivisionError"):
        check_batch_independent(lambda n, x: 1 / 0)


def test_the_course_block_passes_and_the_snippet_block_fails_the_worked_test():
    from resnet_nb.snippet import SnippetBlock
    test = answer("adds_branch_once")
    assert test(BasicBlock(8, 16, stride=2)) and not test(SnippetBlock(8, 8))
