"""Residual blocks and their shortcuts (He et al. 2015, 2016).

A block computes H(x) = F(x) + shortcut(x). The shortcut is an injected,
named module, so "plain versus residual" is the same block with one argument
changed:

    identity    x                                  (shapes equal)
    "A"         x subsampled, zero-padded channels (shape changes; no parameters)
    "B" / "C"   1x1 convolution + BN (projection)  (B: where the shape changes; C: everywhere)
    "none"      0                                  (the plain network)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C", "none")


class IdentityShortcut(nn.Module):
    """The identity: shortcut(x) = x. Used where input and output shapes agree."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample, then pad the new channels with zeros.

    (N, C_in, H, W) -> (N, C_out, H/stride, W/stride). It has no parameters,
    so a ResNet with option A has exactly as many parameters as its plain twin.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("option A can only add channels, "
                             f"got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        # F.pad pads the last dimensions first: (W, W, H, H, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, 0, extra))

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


class ProjectionShortcut(nn.Module):
    """Options B and C: shortcut(x) = BN(W_s x) with a strided 1x1 convolution W_s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class NoShortcut(nn.Module):
    """The plain network's "shortcut": it contributes nothing, so H(x) = F(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 0-dim zero broadcasts in out + identity without allocating a map.
        return x.new_zeros(())


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut module for one block, for option "A", "B", "C" or "none"."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut must be one of {', '.join(map(repr, SHORTCUT_OPTIONS))}, "
                         f"got {option!r}")
    shape_changes = stride != 1 or in_channels != out_channels
    if option == "none":
        return NoShortcut()
    if option == "C" or (option == "B" and shape_changes):
        return ProjectionShortcut(in_channels, out_channels, stride)
    if shape_changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return IdentityShortcut()


class _Switchable(nn.Module):
    """Two switches shared by every block, for live demos and lesion studies.

    use_shortcut = False: the shortcut contributes 0, so the block is plain.
    enabled = False: the residual branch is removed; only the shortcut path
    is left (Veit et al. 2016's lesion).
    Neither switch changes the parameters or the state dict.
    """

    use_shortcut: bool = True
    enabled: bool = True

    def _set_paths(self, shortcut: nn.Module | None, default: str,
                   in_channels: int, out_channels: int, stride: int) -> None:
        self.shortcut = shortcut if shortcut is not None else \
            make_shortcut(default, in_channels, out_channels, stride)
        # What a lesioned block without a shortcut passes on: the parameter-free
        # option-A map (the identity where the shape does not change).
        self.pass_through = make_shortcut("A", in_channels, out_channels, stride)

    @property
    def is_residual(self) -> bool:
        """True when the block adds a shortcut (switched on and not "none")."""
        return self.use_shortcut and not isinstance(self.shortcut, NoShortcut)

    def identity(self, x: torch.Tensor) -> torch.Tensor:
        """The shortcut term of H(x) = F(x) + shortcut(x); 0 when switched off."""
        return self.shortcut(x) if self.use_shortcut else x.new_zeros(())

    def lesioned(self, x: torch.Tensor) -> torch.Tensor:
        """The block with its residual branch F removed: only the shortcut path is left.

        A plain block has no shortcut path; removing it passes its input on through the
        parameter-free option-A map instead (Veit et al. 2016's deletion of a layer).
        """
        return self.shortcut(x) if self.is_residual else self.pass_through(x)


class BasicBlock(_Switchable):
    """Two 3x3 convolutions (He et al. 2015, Fig. 2): relu(F(x) + shortcut(x)).

    F(x) = BN(conv(relu(BN(conv(x))))), with BN right after each convolution (sec. 3.4).
    (N, C_in, H, W) -> (N, C_out, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 shortcut: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self._set_paths(shortcut, "A", in_channels, out_channels, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing F(x); zeroing its scale makes the block start as relu(shortcut(x))."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:  # lesioned: F skipped, the input passed on
            return F.relu(self.lesioned(x))
        identity = self.identity(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class Bottleneck(_Switchable):
    """The ImageNet ResNets' block (He et al. 2015, Fig. 5, right).

    1x1 conv reduces to `width` channels, a 3x3 conv works there, a 1x1 conv
    expands to `expansion * width` channels; it makes deep networks affordable.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 shortcut: nn.Module | None = None):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self._set_paths(shortcut, "B", in_channels, out_channels, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:  # lesioned: F skipped, the input passed on
            return F.relu(self.lesioned(x))
        identity = self.identity(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class PreActBlock(_Switchable):
    """The pre-activation block (He et al. 2016, Fig. 1b): x + F(x), nothing after the sum.

    F(x) = conv(relu(BN(conv(relu(BN(x)))))). With no ReLU after the addition,
    the shortcut carries x_l unchanged to every later block (their eq. 4).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 shortcut: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self._set_paths(shortcut, "A", in_channels, out_channels, stride)

    def last_bn(self) -> None:
        """A pre-activation block ends in a convolution, not a BN."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:  # lesioned: F skipped, the input passed on
            return self.lesioned(x)
        identity = self.identity(x)
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity
