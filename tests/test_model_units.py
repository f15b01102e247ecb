"""Blocks and models, piece by piece: the shortcut table, initialisation, switches, summaries.

Known values: the shortcut each option gives for each change of shape (He et al. 2015,
sec. 3.3), Kaiming's standard deviation sqrt(2 / fan_out), parameter counts by hand, the
summary table as printed in notebook 03.
"""
import math

import pytest
import torch
from torch import nn

from resnet_nb import (BasicBlock, Bottleneck, PreActBlock, cifar_resnet, count_parameters,
                       make_shortcut, plain_net, summarize)
from resnet_nb.blocks import IdentityShortcut, NoShortcut, ProjectionShortcut, ZeroPadShortcut
from resnet_nb.models import ModelSummary, ResNetConfig, SummaryRow, check_depth


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


def test_check_depth_and_config_validation():
    assert [check_depth(d) for d in (8, 14, 20, 56, 110)] == [1, 2, 3, 9, 18]
    for bad in (7, 9, 2, 0, -4, 20.0, "20", True):
        with pytest.raises(ValueError, match="depth must be 6n"):
            check_depth(bad)
    for field in ("width", "num_classes"):
        for bad in (0, -1, True, 2.0):
            with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
                ResNetConfig(**{field: bad})
    c = ResNetConfig(depth=32, width=8, num_classes=100)
    assert c.blocks_per_stage == 5 and c.widths == (8, 16, 32)
    assert cifar_resnet(8, num_classes=3).fc.out_features == 3


def test_kaiming_initialisation_uses_fan_out():
    """He et al. 2015 (their ref. [13]): std = sqrt(2 / fan_out), fan_out = C_out x 3 x 3."""
    torch.manual_seed(0)
    model = cifar_resnet(20)
    conv = model.stage2[0].conv1                   # 16 -> 32: fan_in 144, fan_out 288
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.05)
    assert float(model.stage3[1].conv2.weight.detach().std()) == pytest.approx(math.sqrt(2 / (64 * 9)),
                                                                      rel=0.05)
    bn = model.stage1[0].bn2
    assert torch.equal(bn.weight, torch.ones(16)) and torch.equal(bn.bias, torch.zeros(16))
    # Zero-initialised residual blocks: the last BN's scale (or, pre-activation, conv2) is 0.
    z = cifar_resnet(14, zero_init_residual=True)
    assert all(not b.bn2.weight.any() and b.bn1.weight.all() for b in z.blocks)
    zp = cifar_resnet(14, preact=True, zero_init_residual=True)
    assert all(not b.conv2.weight.any() and b.conv1.weight.any() for b in zp.blocks)


def test_preact_network_layout():
    m = cifar_resnet(14, preact=True)
    assert [type(x) for x in m.stem] == [nn.Conv2d]                  # no BN-ReLU in the stem
    assert isinstance(m.final_act[0], nn.BatchNorm2d) and isinstance(m.final_act[1], nn.ReLU)
    plain = cifar_resnet(14)
    assert [type(x) for x in plain.stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert isinstance(plain.final_act, nn.Identity)
    # The pre-activation network moves the stem's BN to the end: same parameter count.
    assert count_parameters(m) == count_parameters(plain)


def test_set_block_accepts_negative_indices_and_restore_blocks():
    model = cifar_resnet(8)
    model.set_block(-3, False)                      # -3 is block 0 of 3
    assert [b.enabled for b in model.blocks] == [False, True, True]
    model.set_block(-1, False)
    assert [b.enabled for b in model.blocks] == [False, True, False]
    for bad in (3, -4):
        with pytest.raises(IndexError, match="0..2"):
            model.set_block(bad, False)
    assert model.restore_blocks() is model
    assert all(b.enabled for b in model.blocks)
    assert model.set_shortcuts(False) is model and not model.shortcuts_on
    assert not any(b.use_shortcut for b in model.blocks)
    model.set_shortcuts(1)
    assert all(b.use_shortcut is True for b in model.blocks)


def test_count_parameters_counts_only_trainable_ones():
    model = plain_net(8)
    total = count_parameters(model)
    assert total == sum(p.numel() for p in model.parameters())
    model.fc.weight.requires_grad_(False)
    assert count_parameters(model) == total - 64 * 10


def test_summary_table_as_printed():
    s = summarize(cifar_resnet(8))
    assert s.total_parameters == count_parameters(cifar_resnet(8)) == 75_290
    assert str(s) == "\n".join([
        "ResNet-8 (A)",
        "part            output shape    parameters",
        "stem                16x32x32           464",
        "stage1              16x32x32         4,672",
        "stage2              32x16x16        13,952",
        "stage3                64x8x8        55,552",
        "head                      10           650",
        "total                               75,290",
    ])
    printed = []
    s._repr_pretty_(type("P", (), {"text": lambda self, t: printed.append(t)})(), False)
    assert printed == [str(s)]
    assert ModelSummary("x", (SummaryRow("a", (1,), 2), SummaryRow("b", (1,), 3))).total_parameters == 5


def test_summarize_leaves_the_mode_and_counts_the_preact_head():
    model = cifar_resnet(8, preact=True).train()
    s = summarize(model, image_size=16)
    assert model.training
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["stage3"] == (64, 4, 4) and shapes["stem"] == (16, 16, 16)
    head = {r.name: r.parameters for r in s.rows}["head"]
    assert head == 64 * 10 + 10 + 2 * 64                             # fc and the final BN
    assert s.total_parameters == count_parameters(model)
    model.eval()
    summarize(model)
    assert not model.training


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


def test_summarize_feeds_an_input_of_the_models_device_and_dtype():
    # A model on the meta device (shapes without memory) and one in float64: a float32
    # CPU input would fail on either.
    shapes = {r.name: r.output_shape for r in summarize(cifar_resnet(8).to("meta")).rows}
    assert shapes["stage3"] == (64, 8, 8)
    assert summarize(cifar_resnet(8).double()).total_parameters == 75_290


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_blocks_keep_the_shape_by_default(block):
    x = torch.randn(2, 8, 6, 6)
    b = block(8, 8)
    assert b.conv1.stride == (1, 1) and b(x).shape == x.shape
    assert isinstance(b.shortcut, IdentityShortcut)


def test_plain_net_defaults_and_passes_settings_on():
    assert plain_net().name == "plain-20" and plain_net().config.shortcut == "none"
    m = plain_net(14, width=8, preact=True)
    assert m.config.width == 8 and m.config.preact and m.name == "preact-plain-14"
