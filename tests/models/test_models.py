"""resnet_nb.models: the paper's parameter counts (Table 6), stage shapes, plain twins and
switched-off shortcuts, lesions, Kaiming's initialisation, the summary table as printed in
notebook 03."""
import math

import pytest
import torch
from torch import nn

from resnet_nb import cifar_resnet, count_parameters, lesioned, plain_net, shortcuts_off, summarize
from resnet_nb.blocks import IdentityShortcut, NoShortcut, ProjectionShortcut, ZeroPadShortcut
from resnet_nb.models import ModelSummary, ResNetConfig, SummaryRow, check_depth

# He et al. 2015, Table 6 (option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M.
PAPER_COUNTS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962,
                1202: 19_421_274}


@pytest.mark.parametrize("depth,count", [
    pytest.param(depth, count, marks=pytest.mark.slow) if depth == 1202 else (depth, count)
    for depth, count in PAPER_COUNTS.items()])
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


def test_summarize_feeds_an_input_of_the_models_device_and_dtype():
    # A model on the meta device (shapes without memory) and one in float64: a float32
    # CPU input would fail on either.
    shapes = {r.name: r.output_shape for r in summarize(cifar_resnet(8).to("meta")).rows}
    assert shapes["stage3"] == (64, 8, 8)
    assert summarize(cifar_resnet(8).double()).total_parameters == 75_290


def test_plain_net_defaults_and_passes_settings_on():
    assert plain_net().name == "plain-20" and plain_net().config.shortcut == "none"
    m = plain_net(14, width=8, preact=True)
    assert m.config.width == 8 and m.config.preact and m.name == "preact-plain-14"
