"""resnet_nb.blocks: the shortcut each option gives for each change of shape (He et al.
2015, sec. 3.3), the shortcuts and blocks against their computations written out by hand, the
switches, and the shapes they keep."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import BasicBlock, Bottleneck, PreActBlock, count_parameters, make_shortcut
from resnet_nb.blocks import IdentityShortcut, NoShortcut, ProjectionShortcut, ZeroPadShortcut


@pytest.mark.parametrize("option, same, more_channels, strided, both", [
    ("A", IdentityShortcut, ZeroPadShortcut, ZeroPadShortcut, ZeroPadShortcut),
    ("B", IdentityShortcut, ProjectionShortcut, ProjectionShortcut, ProjectionShortcut),
    ("C", ProjectionShortcut, ProjectionShortcut, ProjectionShortcut, ProjectionShortcut),
    ("none", NoShortcut, NoShortcut, NoShortcut, NoShortcut),
])
def test_make_shortcut_table(option, same, more_channels, strided, both):
    assert type(make_shortcut(option, 16, 16, 1)) is same
    assert type(make_shortcut(option, 16, 32, 1)) is more_channels
    assert type(make_shortcut(option, 16, 16, 2)) is strided
    assert type(make_shortcut(option, 16, 32, 2)) is both
    with pytest.raises(ValueError, match="shortcut must be one of"):
        make_shortcut("a", 16, 16, 1)


def test_zero_pad_shortcut_only_adds_channels():
    x = torch.randn(2, 16, 8, 8)
    same = ZeroPadShortcut(16, 16, 2)                 # subsampling alone is allowed
    assert torch.equal(same(x), x[:, :, ::2, ::2])
    assert torch.equal(ZeroPadShortcut(16, 24, 1)(x)[:, :16], x)
    with pytest.raises(ValueError, match="only add channels"):
        ZeroPadShortcut(32, 16, 1)
    assert repr(ZeroPadShortcut(16, 32, 2)) == "ZeroPadShortcut(16 -> 32, stride=2)"


def test_projection_and_no_shortcut_by_hand():
    torch.manual_seed(0)
    p = ProjectionShortcut(4, 8, 2).eval()
    x = torch.randn(2, 4, 6, 6)
    w = p.conv.weight.view(8, 4)
    want = torch.einsum("oc,nchw->nohw", w, x[:, :, ::2, ::2])       # 1x1, stride 2
    want = (want - p.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        p.bn.running_var.view(1, -1, 1, 1) + p.bn.eps)
    with torch.no_grad():
        torch.testing.assert_close(p(x), want, rtol=1e-4, atol=1e-5)
    assert p.conv.bias is None and count_parameters(p) == 4 * 8 + 2 * 8
    zero = NoShortcut()(x)
    assert zero.shape == () and float(zero) == 0.0


@pytest.mark.parametrize("block, args, default", [
    (BasicBlock, (16, 32, 2), ZeroPadShortcut), (BasicBlock, (16, 16, 1), IdentityShortcut),
    (PreActBlock, (16, 32, 2), ZeroPadShortcut), (Bottleneck, (64, 16, 2), ProjectionShortcut),
    (Bottleneck, (16, 16, 1), ProjectionShortcut),      # 16 -> 64 channels: a projection
])
def test_blocks_default_shortcuts_and_pass_through(block, args, default):
    b = block(*args)
    assert type(b.shortcut) is default
    # A lesioned block without a shortcut passes its input on through option A's map.
    assert type(b.pass_through) is (IdentityShortcut if args[0] == args[1] * (
        4 if block is Bottleneck else 1) and args[2] == 1 else ZeroPadShortcut)
    assert b.is_residual and b.enabled and b.use_shortcut


def test_basic_block_switches():
    torch.manual_seed(0)
    b = BasicBlock(8, 8).eval()
    x = torch.relu(torch.randn(2, 8, 6, 6))
    with torch.no_grad():
        f = b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x)))))
        torch.testing.assert_close(b(x), torch.relu(f + x))
        b.use_shortcut = False                       # plain: relu(F(x))
        assert not b.is_residual
        torch.testing.assert_close(b(x), torch.relu(f))
        assert float(b.identity(x)) == 0.0
        b.enabled = False                            # lesioned and plain: passes x on
        torch.testing.assert_close(b(x), x)
        b.use_shortcut = True                        # lesioned residual: relu(x)
        torch.testing.assert_close(b(x), x)
    assert b.conv1.kernel_size == (3, 3) and b.conv1.padding == (1, 1) and b.conv1.bias is None


def test_bottleneck_lesion_and_an_injected_shortcut():
    torch.manual_seed(0)
    b = Bottleneck(64, 16, stride=2).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        b.enabled = False                                # F(x) = 0: relu(shortcut(x))
        torch.testing.assert_close(b(x), torch.relu(b.shortcut(x)))
    injected = Bottleneck(64, 16, shortcut=NoShortcut())
    assert isinstance(injected.shortcut, NoShortcut) and not injected.is_residual
    assert isinstance(injected.pass_through, IdentityShortcut)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_blocks_keep_the_shape_by_default(block):
    x = torch.randn(2, 8, 6, 6)
    b = block(8, 8)
    assert b.conv1.stride == (1, 1) and b(x).shape == x.shape
    assert isinstance(b.shortcut, IdentityShortcut)


def test_zero_pad_shortcut_subsamples_and_pads():
    x = torch.randn(2, 16, 32, 32)
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_zero_initialised_block_is_relu_of_its_shortcut(shortcut):
    x = torch.randn(4, 16, 32, 32)
    sc = make_shortcut(shortcut, 16, 32, 2)
    block = BasicBlock(16, 32, stride=2, shortcut=sc)
    nn.init.zeros_(block.last_bn().weight)
    nn.init.normal_(block.last_bn().bias, std=0.0)  # BN shift is 0 at initialisation anyway
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(sc(x)), rtol=0, atol=0)


def _random_bn_statistics(block, seed=0):
    """Eval-mode BNs that do something: random running statistics, scales and shifts."""
    g = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return block.eval()


def _bn(x, bn):
    """BatchNorm in eval mode, written out: (x - mean) / sqrt(var + eps) * scale + shift."""
    v = lambda t: t.view(1, -1, 1, 1)
    return (x - v(bn.running_mean)) / torch.sqrt(v(bn.running_var) + bn.eps) * v(bn.weight) \
        + v(bn.bias)


def test_bottleneck_and_preact_blocks():
    b = Bottleneck(64, 16, stride=2)
    assert b(torch.randn(2, 64, 16, 16)).shape == (2, 64, 8, 8)
    assert isinstance(b.shortcut, ProjectionShortcut)
    same = Bottleneck(64, 16)
    assert isinstance(same.shortcut, IdentityShortcut)
    # 1x1 (64*16) + 3x3 (16*16*9) + 1x1 (16*64) + three BNs (2*(16+16+64)).
    assert count_parameters(same) == 64 * 16 + 16 * 16 * 9 + 16 * 64 + 2 * (16 + 16 + 64)
    p = PreActBlock(16, 32, stride=2)
    assert p(torch.randn(2, 16, 32, 32)).shape == (2, 32, 16, 16)


@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_computes_relu_of_its_three_convolutions_plus_the_shortcut(stride):
    """He et al. 2015, Fig. 5 right: relu(BN(W3 relu(BN(W2 relu(BN(W1 x))))) + shortcut(x))."""
    torch.manual_seed(0)
    b = _random_bn_statistics(Bottleneck(64, 16, stride=stride))
    x = torch.randn(2, 64, 8, 8)
    conv = lambda t, c: F.conv2d(t, c.weight, stride=c.stride, padding=c.padding)
    with torch.no_grad():
        h = torch.relu(_bn(conv(x, b.conv1), b.bn1))
        h = torch.relu(_bn(conv(h, b.conv2), b.bn2))
        h = _bn(conv(h, b.conv3), b.bn3)
        shortcut = x if stride == 1 else _bn(conv(x, b.shortcut.conv), b.shortcut.bn)
        want = torch.relu(h + shortcut)
        torch.testing.assert_close(b(x), want, rtol=1e-4, atol=1e-5)
        assert b.conv2.stride == (stride, stride) and b.conv1.stride == (1, 1)
        # Zero the last BN's scale and shift: the block becomes relu(shortcut(x)).
        nn.init.zeros_(b.last_bn().weight)
        nn.init.zeros_(b.last_bn().bias)
        torch.testing.assert_close(b(x), torch.relu(shortcut), rtol=1e-4, atol=1e-5)


def test_preact_block_adds_its_branch_to_the_shortcut_with_nothing_after_the_sum():
    """He et al. 2016, Fig. 1b: x + W2 relu(BN(W1 relu(BN(x)))), no ReLU after the addition."""
    torch.manual_seed(0)
    p = _random_bn_statistics(PreActBlock(16, 32, stride=2))
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        h = F.conv2d(torch.relu(_bn(x, p.bn1)), p.conv1.weight, stride=2, padding=1)
        h = F.conv2d(torch.relu(_bn(h, p.bn2)), p.conv2.weight, padding=1)
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 16))        # option A
        out = p(x)
        torch.testing.assert_close(out, h + shortcut, rtol=1e-4, atol=1e-5)
        assert (out < 0).any()                                         # no ReLU at the end
        assert p.last_bn() is None
        p.enabled = False                                              # lesioned: the shortcut
        torch.testing.assert_close(p(x), shortcut)
