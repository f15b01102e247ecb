import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import (BasicBlock, Bottleneck, PreActBlock, cifar_resnet, count_parameters,
                       lesioned, make_shortcut, plain_net, shortcuts_off, summarize)
from resnet_nb.blocks import IdentityShortcut, NoShortcut, ProjectionShortcut, ZeroPadShortcut

# He et al. 2015, Table 6 (option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M.
PAPER_COUNTS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962,
                1202: 19_421_274}


@pytest.mark.parametrize("depth,count", PAPER_COUNTS.items())
def test_parameter_counts_match_the_paper(depth, count):
    assert count_parameters(cifar_resnet(depth, "A")) == count
    assert count_parameters(plain_net(depth)) == count
    # Option B adds two projections: 16->32 (512 + 64 BN) and 32->64 (2048 + 128 BN).
    assert count_parameters(cifar_resnet(depth, "B")) == count + 2_752


def test_option_c_projects_every_block():
    model = cifar_resnet(20, "C")
    assert all(isinstance(b.shortcut, ProjectionShortcut) for b in model.blocks)
    # 9 blocks: 1x1 convs 16->16 (x3), 16->32, 32->32 (x2), 32->64, 64->64 (x2), each with BN.
    extra = 3 * (256 + 32) + (512 + 64) + 2 * (1024 + 64) + (2048 + 128) + 2 * (4096 + 128)
    assert count_parameters(model) == PAPER_COUNTS[20] + extra


@pytest.mark.parametrize("shortcut", ["A", "B", "C", "none"])
@pytest.mark.parametrize("preact", [False, True])
def test_stage_shapes(shortcut, preact):
    model = cifar_resnet(14, shortcut, preact=preact)
    s = summarize(model)
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes == {"stem": (16, 32, 32), "stage1": (16, 32, 32), "stage2": (32, 16, 16),
                      "stage3": (64, 8, 8), "head": (10,)}
    assert s.total_parameters == count_parameters(model)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert "stage2" in str(s) and f"{s.total_parameters:,}" in str(s)


def test_shortcut_kinds_per_option():
    a = cifar_resnet(20, "A").blocks
    assert isinstance(a[0].shortcut, IdentityShortcut)
    assert isinstance(a[3].shortcut, ZeroPadShortcut) and isinstance(a[6].shortcut, ZeroPadShortcut)
    b = cifar_resnet(20, "B").blocks
    assert [isinstance(x.shortcut, ProjectionShortcut) for x in b] == \
        [False, False, False, True, False, False, True, False, False]
    assert all(isinstance(x.shortcut, NoShortcut) for x in plain_net(20).blocks)


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


def test_zero_init_residual_option_makes_each_block_its_shortcut():
    model = cifar_resnet(20, zero_init_residual=True).eval()
    x = torch.relu(torch.randn(2, 16, 32, 32))
    with torch.no_grad():
        for block in model.stage1:
            torch.testing.assert_close(block(x), x)
    pre = cifar_resnet(20, preact=True, zero_init_residual=True).eval()
    y = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pre.stage1[0](y), y)


def _same_weights(src: nn.Module, dst: nn.Module):
    dst.load_state_dict(src.state_dict())


@pytest.mark.parametrize("preact", [False, True])
def test_shortcuts_off_computes_the_plain_network(preact):
    resnet = cifar_resnet(20, "A", preact=preact)
    plain = cifar_resnet(20, "none", preact=preact)
    # Option A and "none" have the same parameters and state-dict keys.
    _same_weights(resnet, plain)
    resnet.eval(), plain.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = resnet(x)
        resnet.set_shortcuts(False)
        assert not resnet.shortcuts_on
        torch.testing.assert_close(resnet(x), plain(x), rtol=0, atol=0)
        resnet.set_shortcuts(True)
        torch.testing.assert_close(resnet(x), before, rtol=0, atol=0)
        assert not torch.allclose(before, plain(x))
        with shortcuts_off(resnet):
            torch.testing.assert_close(resnet(x), plain(x), rtol=0, atol=0)
        assert resnet.shortcuts_on


def test_option_b_switched_off_is_also_plain():
    resnet, plain = cifar_resnet(14, "B").eval(), plain_net(14).eval()
    plain.load_state_dict({k: v for k, v in resnet.state_dict().items()
                           if "shortcut" not in k})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), shortcuts_off(resnet):
        torch.testing.assert_close(resnet(x), plain(x), rtol=0, atol=0)


def test_lesion_removes_the_residual_branch_only():
    model = cifar_resnet(20).eval()
    block = model.blocks[4]
    x = torch.relu(torch.randn(2, 32, 16, 16))
    with torch.no_grad():
        full = model(torch.randn(1, 3, 32, 32))
        model.set_block(4, False)
        torch.testing.assert_close(block(x), x)          # identity block: output = x
        model.set_block(4, True)
        assert not torch.allclose(block(x), x)
        # A lesioned downsampling block keeps its shortcut path (option A: subsample + pad).
        with lesioned(model, [3]):
            y = model.blocks[3](torch.relu(torch.randn(2, 16, 32, 32)))
            assert y.shape == (2, 32, 16, 16)
        assert all(b.enabled for b in model.blocks)
    with pytest.raises(IndexError, match="0..8"):
        model.set_block(9, False)


def test_lesioned_plain_block_passes_its_input_on():
    model = plain_net(20).eval()
    x = torch.relu(torch.randn(2, 16, 32, 32))
    with torch.no_grad(), lesioned(model, [1]):
        torch.testing.assert_close(model.blocks[1](x), x)


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


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=21), r"depth must be 6n\+2 \(8, 14, 20, 26, 32, 44, 56, 110, \.\.\.\), got 21"),
    (dict(depth=2), "depth must be 6n"),
    (dict(depth=20.0), "depth must be 6n"),
    (dict(shortcut="D"), r"shortcut must be one of 'A', 'B', 'C', 'none', got 'D'"),
    (dict(width=0), "width must be a positive integer"),
    (dict(width=-16), "width must be a positive integer"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cifar_resnet(**kwargs)


def test_names():
    assert cifar_resnet(56).name == "ResNet-56 (A)"
    assert plain_net(20).name == "plain-20"
    assert cifar_resnet(110, "B", preact=True).name == "PreAct-ResNet-110 (B)"
