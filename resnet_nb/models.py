"""The CIFAR-10 ResNets of He et al. 2015 (section 4.2) and their plain twins.

    conv3x3(16) -> stage 1: n blocks, 16 filters, 32x32 maps
                -> stage 2: n blocks, 32 filters, 16x16 maps
                -> stage 3: n blocks, 64 filters,  8x8 maps
                -> global average pool -> 10-way linear

Each block holds two 3x3 convolutions, so the depth is 6n + 2 weighted layers.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SHORTCUT_OPTIONS, BasicBlock, PreActBlock, make_shortcut

#: Depths the paper trains on CIFAR-10 (Table 6), plus the small ones useful here.
PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
EXAMPLE_DEPTHS = (8, 14, 20, 26, 32, 44, 56, 110)


def check_depth(depth: int) -> int:
    """Return n, the number of blocks per stage, for a depth of 6n + 2."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        allowed = ", ".join(str(d) for d in EXAMPLE_DEPTHS)
        raise ValueError(f"depth must be 6n+2 ({allowed}, ...), got {depth!r}")
    return (depth - 2) // 6


@dataclass(frozen=True)
class ResNetConfig:
    """Everything that defines a CIFAR ResNet; building it twice gives the same architecture."""

    depth: int = 20
    shortcut: str = "A"          # "A", "B", "C" or "none" (the plain network)
    preact: bool = False         # the pre-activation blocks of He et al. 2016
    width: int = 16              # filters in stage 1; stages 2 and 3 double it
    num_classes: int = 10
    zero_init_residual: bool = False  # start every block as its shortcut path

    def __post_init__(self):
        check_depth(self.depth)
        if self.shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be one of "
                             f"{', '.join(map(repr, SHORTCUT_OPTIONS))}, got {self.shortcut!r}")
        for name in ("width", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer (e.g. 16), got {value!r}")
        for name in ("preact", "zero_init_residual"):
            # A string such as "False" is truthy: it would silently switch the option on.
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")

    @property
    def blocks_per_stage(self) -> int:
        return check_depth(self.depth)

    @property
    def widths(self) -> tuple[int, int, int]:
        return (self.width, 2 * self.width, 4 * self.width)

    @property
    def name(self) -> str:
        """A short label, e.g. 'ResNet-20 (A)', 'plain-56', 'PreAct-ResNet-110 (B)'."""
        if self.shortcut == "none":
            return f"{'preact-' if self.preact else ''}plain-{self.depth}"
        return f"{'PreAct-' if self.preact else ''}ResNet-{self.depth} ({self.shortcut})"


class CifarResNet(nn.Module):
    """A CIFAR ResNet (or its plain twin) built from a ResNetConfig."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        block = PreActBlock if config.preact else BasicBlock
        w1, w2, w3 = config.widths
        n = config.blocks_per_stage

        stem = [nn.Conv2d(3, w1, 3, padding=1, bias=False)]
        if not config.preact:  # a pre-activation network starts its first block with BN-ReLU
            stem += [nn.BatchNorm2d(w1), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        self.stage1 = self._stage(block, w1, w1, n, stride=1)
        self.stage2 = self._stage(block, w1, w2, n, stride=2)
        self.stage3 = self._stage(block, w2, w3, n, stride=2)
        # Pre-activation blocks end with an addition, so the network adds the last BN-ReLU.
        self.final_act = nn.Sequential(nn.BatchNorm2d(w3), nn.ReLU(inplace=True)) \
            if config.preact else nn.Identity()
        self.fc = nn.Linear(w3, config.num_classes)
        self._init_weights()

    def _stage(self, block, in_ch: int, out_ch: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(n):
            s = stride if i == 0 else 1
            c_in = in_ch if i == 0 else out_ch
            shortcut = make_shortcut(self.config.shortcut, c_in, out_ch, s)
            layers.append(block(c_in, out_ch, s, shortcut=shortcut))
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # He et al. 2015 initialise every convolution as in their ref. [13] (Kaiming).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_residual:
            for b in self.blocks:
                if b.last_bn() is not None:
                    nn.init.zeros_(b.last_bn().weight)   # F(x) = 0 at the start
                else:
                    nn.init.zeros_(b.conv2.weight)       # pre-activation: F ends in a conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)            # (N, 3, 32, 32) -> (N, 16, 32, 32)
        x = self.stage1(x)          # (N, 16, 32, 32)
        x = self.stage2(x)          # (N, 32, 16, 16)
        x = self.stage3(x)          # (N, 64, 8, 8)
        x = self.final_act(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)   # (N, 64)
        return self.fc(x)           # (N, 10) logits

    # --- switches for live demos and lesion studies (no rebuilding) ---------

    @property
    def blocks(self) -> list[nn.Module]:
        """All residual blocks, in the order the signal passes them."""
        return [*self.stage1, *self.stage2, *self.stage3]

    @property
    def name(self) -> str:
        return self.config.name

    def set_shortcuts(self, on: bool) -> "CifarResNet":
        """Switch every shortcut on or off. Off: the network computes its plain twin's function."""
        for b in self.blocks:
            b.use_shortcut = bool(on)
        return self

    @property
    def shortcuts_on(self) -> bool:
        return all(b.use_shortcut for b in self.blocks)

    def set_block(self, index: int, enabled: bool) -> "CifarResNet":
        """Lesion (enabled=False) or restore block `index` (0-based, in `blocks` order)."""
        blocks = self.blocks
        if not -len(blocks) <= index < len(blocks):
            raise IndexError(f"block index must be 0..{len(blocks) - 1}, got {index}")
        blocks[index].enabled = bool(enabled)
        return self

    def restore_blocks(self) -> "CifarResNet":
        """Switch every lesioned block back on."""
        for b in self.blocks:
            b.enabled = True
        return self


def cifar_resnet(depth: int = 20, shortcut: str = "A", preact: bool = False, width: int = 16,
                 num_classes: int = 10, zero_init_residual: bool = False) -> CifarResNet:
    """Build the CIFAR-10 ResNet of the given depth (6n+2).

    shortcut: "A" (identity, zero-padded where the shape changes; the paper's
    CIFAR choice), "B" (projection where the shape changes), "C" (projection
    everywhere) or "none" (the plain network with the same layers).
    """
    return CifarResNet(ResNetConfig(depth=depth, shortcut=shortcut, preact=preact, width=width,
                                    num_classes=num_classes,
                                    zero_init_residual=zero_init_residual))


def plain_net(depth: int = 20, **kwargs) -> CifarResNet:
    """The plain network of He et al. 2015 (Fig. 3, middle): the same layers, no shortcuts."""
    return cifar_resnet(depth, shortcut="none", **kwargs)


@contextlib.contextmanager
def shortcuts_off(model: CifarResNet) -> Iterator[CifarResNet]:
    """`with shortcuts_off(model):` runs the model as its plain twin, then restores it."""
    before = [b.use_shortcut for b in model.blocks]
    model.set_shortcuts(False)
    try:
        yield model
    finally:
        for b, on in zip(model.blocks, before):
            b.use_shortcut = on


@contextlib.contextmanager
def lesioned(model: CifarResNet, indices: Sequence[int]) -> Iterator[CifarResNet]:
    """`with lesioned(model, [3]):` removes the residual branch of those blocks, then restores."""
    before = [b.enabled for b in model.blocks]
    try:
        for i in indices:
            model.set_block(i, False)
        yield model
    finally:
        for b, on in zip(model.blocks, before):
            b.enabled = on


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BN scales and shifts included, BN running statistics not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class SummaryRow:
    name: str
    output_shape: tuple[int, ...]
    parameters: int


@dataclass(frozen=True)
class ModelSummary:
    """Per-stage output shapes and parameter counts of a CIFAR ResNet."""

    model_name: str
    rows: tuple[SummaryRow, ...]

    @property
    def total_parameters(self) -> int:
        return sum(r.parameters for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{self.model_name}",
                 f"{'part':<10}{'output shape':>18}{'parameters':>14}"]
        for r in self.rows:
            shape = "x".join(str(d) for d in r.output_shape)
            lines.append(f"{r.name:<10}{shape:>18}{r.parameters:>14,}")
        lines.append(f"{'total':<10}{'':>18}{self.total_parameters:>14,}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython shows the table, not the dataclass
        p.text(str(self))


def summarize(model: CifarResNet, image_size: int = 32) -> ModelSummary:
    """Run one image through `model` and record each part's output shape (C x H x W)."""
    parts = [("stem", model.stem), ("stage1", model.stage1), ("stage2", model.stage2),
             ("stage3", model.stage3), ("head", model.fc)]
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name:
                                     shapes.__setitem__(name, tuple(out.shape[1:])))
             for name, m in parts]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    head_params = count_parameters(model.fc) + count_parameters(model.final_act)
    rows = tuple(SummaryRow(name, shapes[name],
                            head_params if name == "head" else count_parameters(m))
                 for name, m in parts)
    return ModelSummary(model.name, rows)
