"""resnet_nb.snippet reproduces every fault that notebook 05 finds, and nothing else changes.

The reconstruction is an exhibit: each test pins one of its faults (a tidy-up that repaired it
would silently empty a section of the notebook), or checks that what the course adds around
it (the PIL data set, the settings in the course's terms, block_rms) is exact.
"""
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import BasicBlock
from resnet_nb.data import Batches, make_synthetic
from resnet_nb.snippet import (SNIPPET_STATS, SnippetBlock, SnippetCIFAR, SnippetResNet,
                               block_rms, snippet_loader, snippet_recipe, snippet_training,
                               source, transform)
from resnet_nb.train import lr_at


@pytest.fixture(scope="module")
def images():
    return make_synthetic(16, 8, seed=1).train


def test_fault_1_the_first_block_adds_3_channels_to_64():
    with pytest.raises(RuntimeError, match=r"size of tensor a \(64\) must match the size of "
                                           r"tensor b \(3\)"):
        SnippetResNet()(torch.zeros(2, 3, 32, 32))


def test_fault_2_no_head_the_network_returns_feature_maps():
    net = SnippetResNet(lambda c_in, c_out: BasicBlock(c_in, c_out))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 64, 8, 8)


def test_fault_3_the_loop_takes_one_step_then_fails_at_loss_data_0(images):
    torch.manual_seed(0)
    net = nn.Sequential(SnippetResNet(lambda c_in, c_out: BasicBlock(c_in, c_out)),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(IndexError, match="0-dim tensor"):
        snippet_training(net, snippet_loader(images), epochs=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))   # stepped


def test_fault_4_the_block_adds_its_branch_twice():
    torch.manual_seed(0)
    block = SnippetBlock(8, 8)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        f = block.conv2(F.relu(block.conv1(x)))
        assert torch.allclose(block(x), F.relu(2 * f + x), atol=1e-6)
        assert not torch.allclose(block(x), F.relu(f + x), atol=1e-3)


def test_faults_5_and_6_no_batch_norm_so_both_modes_agree():
    torch.manual_seed(0)
    block = SnippetBlock(8, 8)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in block.modules())
    x = torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(block.train()(x), block.eval()(x))


def test_faults_8_to_12_the_data_and_the_settings(images):
    loader = snippet_loader(images)
    assert loader.batch_size == 4 and loader.num_workers == 0
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    # Resize(32) leaves a 32x32 image as it is; Normalize uses 0.5 and 0.5; nothing random.
    pil = SnippetCIFAR(images)[0][0]
    assert isinstance(pil, PIL.Image.Image)
    assert transform.transforms[0](pil).tobytes() == pil.tobytes()
    assert torch.equal(transform(pil), transform(pil))
    cfg = snippet_recipe(3)
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs,
            cfg.label_smoothing, cfg.nesterov) == (0.001, 0.9, 5e-4, 4, 3, 0.0, False)
    assert {lr_at(s, 1000, cfg) for s in (0, 500, 999)} == {0.001}      # no schedule


def test_the_course_batches_give_the_snippets_numbers(images):
    """Batches(..., **SNIPPET_STATS), the batches fit gets for the snippet, give the numbers
    its transforms make."""
    n = len(images)
    ours = torch.stack([SnippetCIFAR(images, transform)[i][0] for i in range(n)])
    course = next(iter(Batches(images, n, **SNIPPET_STATS)))[0]
    assert torch.allclose(ours, course, atol=1e-6)
    assert not torch.allclose(ours, next(iter(Batches(images, n)))[0], atol=1e-2)


def test_the_listing_is_the_snippet_alone():
    text = source()
    assert text.startswith("class SnippetBlock(nn.Module):")
    assert text.endswith("print('Finished Training')")
    for line in ("out = out + self.shortcut(x) + self.shortcut2(out)", "transforms.Resize(32),",
                 "running_loss += loss.data[0]", "batch_size=4"):
        assert line in text
    assert "class SnippetCIFAR" not in text and "SNIPPET_STATS" not in text


def test_block_rms_measures_each_block_and_leaves_no_hook():
    torch.manual_seed(0)
    net = SnippetResNet(lambda c_in, c_out: BasicBlock(c_in, c_out)).eval()
    x = torch.randn(3, 3, 32, 32)
    rms = lambda t: t.pow(2).mean().sqrt().item()
    with torch.no_grad():
        a = net.layer1(x)
        b = net.layer2(net.pool(a))
        c = net.layer3(net.pool(b))
    assert block_rms(net, x) == pytest.approx([rms(x), rms(a), rms(b), rms(c)], rel=1e-6)
    assert not any(m._forward_hooks for m in net.modules())
