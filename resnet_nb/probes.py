"""Measurements of a network: signal and gradient per block, lesions, and why ResNets train.

Probes never change the model they measure: they work on a copy, or restore
every switch they touch. They return plain data (frozen dataclasses of numbers);
`viz` draws it.

Notebook 07's probes, one per explanation of why residual networks train:

    layer_responses(...)                std of every 3x3 layer's response (He et al. 2015, Fig. 7)
    filter_normalized_direction(...)    a random direction in weight space (Li et al. 2018)
    loss_slice(...), loss_surface(...)  the loss along one or two such directions
    gradient_correlation(...)           input gradients along a line of inputs (Balduzzi et al. 2017)
    path_gradient_terms(...)            the gradient summed over the paths of each length, exact
    path_length_gradients(...)          ... as norms per image (Veit et al. 2016, Fig. 6)
    sampled_path_gradients(...)         single paths of each length, sampled (Veit et al.'s method)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Batches
from .models import CifarResNet
from .train import evaluate, progress_bar


@dataclass(frozen=True)
class SignalProfile:
    """Per block, in the order the signal passes: how big the forward signal and the gradient are.

    activation_rms[i]  root-mean-square of block i's output x_{i+1}
    grad_norm[i]       ||dL/dx_{i+1}||, the gradient of the loss w.r.t. block i's output,
                       per image (the batch mean of per-image norms)
    weight_grad_norm[i]  ||dL/dW|| over the block's weights (its convolutions and BNs)
    """

    model_name: str
    stages: tuple[int, ...]            # the stage (1, 2, 3) of each block
    activation_rms: tuple[float, ...]
    grad_norm: tuple[float, ...]
    weight_grad_norm: tuple[float, ...]
    loss: float

    @property
    def depth_index(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.stages) + 1))

    @property
    def grad_ratio(self) -> float:
        """Gradient norm at the first block over that at the last: >> 1 or << 1 is trouble."""
        return self.grad_norm[0] / self.grad_norm[-1]


def signal_profile(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor
                   ) -> SignalProfile:
    """Forward and backward one batch through a copy of `model` in training mode.

    images: (N, 3, 32, 32) float, normalised; labels: (N,) int64. Training mode
    means BN uses the batch's statistics, as it does in the first training step.
    The model itself (weights, BN running statistics) is left untouched.
    """
    probe = copy.deepcopy(model).train()
    device = next(probe.parameters()).device
    images, labels = images.to(device), labels.to(device)
    blocks = probe.blocks
    outputs: list[torch.Tensor] = []

    def keep(_module, _inputs, out):
        out.retain_grad()
        outputs.append(out)
    hooks = [b.register_forward_hook(keep) for b in blocks]
    try:
        loss = F.cross_entropy(probe(images), labels)
        probe.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    n = len(images)
    rms = tuple(float(o.detach().float().pow(2).mean().sqrt()) for o in outputs)
    # The loss is a batch mean, so scale back to a per-image gradient before taking norms.
    grads = tuple(float((o.grad.float() * n).flatten(1).norm(dim=1).mean()) for o in outputs)
    wgrads = tuple(float(torch.sqrt(sum(p.grad.float().pow(2).sum() for p in b.parameters()
                                        if p.grad is not None))) for b in blocks)
    stages = tuple(s for s, stage in enumerate((probe.stage1, probe.stage2, probe.stage3), 1)
                   for _ in stage)
    return SignalProfile(model.name, stages, rms, grads, wgrads, loss.item())


@dataclass(frozen=True)
class LesionResult:
    """Test accuracy with each single block removed (Veit et al. 2016, Fig. 3)."""

    model_name: str
    baseline_acc: float
    lesioned_acc: tuple[float, ...]     # lesioned_acc[i]: accuracy without block i
    downsampling: tuple[bool, ...]      # True where the block changes the shape

    @property
    def drop(self) -> tuple[float, ...]:
        return tuple(self.baseline_acc - a for a in self.lesioned_acc)


def lesion_study(model: CifarResNet, batches: Batches, progress: bool = False) -> LesionResult:
    """Evaluate `model` on `batches` with each block lesioned in turn (`_Switchable.lesioned`)."""
    blocks = model.blocks
    before = [b.enabled for b in blocks]
    baseline = evaluate(model, batches)["acc"]
    accs = []
    indices = range(len(blocks))
    if progress:
        indices = progress_bar(indices, desc="lesions", leave=False)
    try:
        for i in indices:
            for j, b in enumerate(blocks):
                b.enabled = before[j] and j != i
            accs.append(evaluate(model, batches)["acc"])
    finally:
        for b, on in zip(blocks, before):
            b.enabled = on
    down = tuple(b.conv1.stride[0] != 1 or b.conv1.in_channels != b.conv1.out_channels
                 for b in blocks)
    return LesionResult(model.name, baseline, tuple(accs), down)


@dataclass(frozen=True)
class BatchDependence:
    """How much a network's output for one image depends on the other images in its batch.

    In training mode BatchNorm normalises with the batch's own mean and
    variance, so an image's logits change with its batch-mates; the smaller
    the batch, the noisier those statistics.
    """

    batch_size: int
    trials: int
    images: int
    changed: float        # share of images whose predicted class is not the same in every trial
    vs_eval: float        # share of (image, trial) predictions that differ from eval mode's
    spread: float         # RMS of (z_trial - z_mean) over RMS of z_mean: logit noise from the batch

    def __str__(self) -> str:
        return (f"batch {self.batch_size:>4}: prediction changes with the batch-mates for "
                f"{self.changed:6.1%} of images (logit noise {self.spread:6.1%}); differs from eval "
                f"mode in {self.vs_eval:6.1%}")


def batch_dependence(model: nn.Module, images: torch.Tensor, batch_size: int,
                     trials: int = 4, seed: int = 0) -> BatchDependence:
    """Run `images` through a copy of `model` in training mode, in random batches of `batch_size`.

    images: (N, 3, 32, 32) float, normalised; N a multiple of batch_size is
    simplest (a last, smaller batch is dropped). Each trial shuffles the images
    into new batches; an image's prediction is compared across trials and with
    eval mode (BN's running statistics, no dependence on the batch).
    The model itself, BN running statistics included, is left untouched.
    """
    # `with`, not the @torch.no_grad() decorator: mutmut skips decorated functions.
    with torch.no_grad():
        return _batch_dependence(copy.deepcopy(model), images, batch_size, trials, seed)


def _batch_dependence(probe: nn.Module, images: torch.Tensor, batch_size: int, trials: int,
                      seed: int) -> BatchDependence:
    device = next(probe.parameters()).device
    images = images.to(device)
    n = (len(images) // batch_size) * batch_size
    if n == 0:
        raise ValueError(f"need at least one batch of {batch_size} images, got {len(images)}")
    images = images[:n]
    z_eval = probe.eval()(images).float()                     # (n, classes)
    probe.train()
    g = torch.Generator().manual_seed(seed)
    logits = []
    for _ in range(trials):
        order = torch.randperm(n, generator=g).to(device)
        z = torch.empty_like(z_eval)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            z[idx] = probe(images[idx]).float()
        logits.append(z)
    z = torch.stack(logits)                                    # (trials, n, classes)
    preds = z.argmax(2)                                        # (trials, n)
    changed = (preds != preds[0]).any(dim=0).float().mean()
    vs_eval = (preds != z_eval.argmax(1)).float().mean()
    z_mean = z.mean(0)
    spread = (z - z_mean).pow(2).mean().sqrt() / z_mean.pow(2).mean().sqrt()
    return BatchDependence(batch_size, trials, n, float(changed), float(vs_eval), float(spread))


class TrainingErrorProbe:
    """An `on_step` callback for `fit`: the training error, measured every `every` steps.

    He et al. (2015, Figs. 1 and 6) plot training error against iterations. Here it
    is the error on a fixed set of training images (no augmentation, eval mode, so
    BN uses its running statistics), measured after steps every, 2*every, ... and
    after the last one. Measuring does not change training: no gradients, no
    random numbers drawn, and the model goes back to training mode.

        probe = TrainingErrorProbe(model, data.train.take(torch.arange(1000)), every=20)
        fit(model, data, cfg, on_step=probe)
        probe.steps, probe.errors          # x and y of the curve (errors as fractions)
    """

    def __init__(self, model: nn.Module, images: "ImageSet", every: int, *,
                 total_steps: int | None = None, batch_size: int = 500):
        if every <= 0:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.model, self.images, self.every = model, images, every
        self.total_steps, self.batch_size = total_steps, batch_size
        self.steps: list[int] = []
        self.errors: list[float] = []
        self._batches: Batches | None = None

    def __call__(self, step: int, loss: float) -> None:
        if step % self.every and step != self.total_steps:
            return
        if self._batches is None:   # created on first use, on the device fit moved the model to
            device = next(self.model.parameters()).device
            self._batches = Batches(self.images, self.batch_size, device=device)
        was_training = self.model.training
        acc = evaluate(self.model, self._batches)["acc"]
        self.model.train(was_training)
        self.steps.append(step)
        self.errors.append(1.0 - acc)


# --- notebook 07, 1: layer responses (He et al. 2015, sec. 4.2 and Fig. 7) -------------------

@dataclass(frozen=True)
class LayerResponses:
    """The std of each 3x3 layer's response, in the order the signal passes (He et al., Fig. 7).

    A response is the output of a 3x3 convolution's batch normalisation: after BN, before the
    ReLU and, in a residual block, before the addition. layers[i] names layer i: "stem", then
    "1.1a" for stage 1, block 1, first convolution, "1.1b" for its second, and so on.
    std[i] is the standard deviation of all of its values (images x channels x positions).
    """

    model_name: str
    layers: tuple[str, ...]
    std: tuple[float, ...]
    images: int

    @property
    def sorted_std(self) -> tuple[float, ...]:
        """The same values from the largest to the smallest (Fig. 7, bottom)."""
        return tuple(sorted(self.std, reverse=True))


def response_layers(model: CifarResNet) -> list[tuple[str, nn.Module]]:
    """(name, BN module) of every 3x3 layer of an original (post-activation) CIFAR network."""
    from .blocks import BasicBlock
    if model.config.preact or not all(isinstance(b, BasicBlock) for b in model.blocks):
        raise ValueError("layer responses after BN are defined for the original blocks "
                         "(conv-BN-ReLU); build the network with preact=False")
    layers = [("stem", model.stem[1])]
    for s, stage in enumerate((model.stage1, model.stage2, model.stage3), 1):
        for i, block in enumerate(stage, 1):
            layers += [(f"{s}.{i}a", block.bn1), (f"{s}.{i}b", block.bn2)]
    return layers


@torch.no_grad()
def layer_responses(model: CifarResNet, batches: Batches) -> LayerResponses:
    """Run `batches` (e.g. the test set) through `model` in eval mode: the std of every response.

    Per batch, each layer's sums of x and x^2 are taken per channel, then accumulated in
    float64 over channels and batches, so the std is that of the whole set, not a mean of
    per-batch stds. The probe runs a copy of the model (in the faster channels-last memory
    layout); the model itself is not touched.
    """
    probe = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    layers = response_layers(probe)
    sums = torch.zeros(len(layers), dtype=torch.float64)
    squares = torch.zeros(len(layers), dtype=torch.float64)
    counts = [0] * len(layers)

    def keep(index: int):
        def hook(_module, _inputs, out):
            out = out.detach().float()
            sums[index] += out.sum(dim=(0, 2, 3)).double().sum().cpu()
            squares[index] += out.pow(2).sum(dim=(0, 2, 3)).double().sum().cpu()
            counts[index] += out.numel()
        return hook

    hooks = [bn.register_forward_hook(keep(i)) for i, (_, bn) in enumerate(layers)]
    images = 0
    try:
        for x, _ in batches:
            probe(x.contiguous(memory_format=torch.channels_last))
            images += len(x)
    finally:
        for h in hooks:
            h.remove()
    n = torch.tensor(counts, dtype=torch.float64)
    mean = sums / n
    std = (squares / n - mean.pow(2)).clamp_min(0).sqrt()
    return LayerResponses(model.name, tuple(name for name, _ in layers),
                          tuple(float(v) for v in std), images)


# --- notebook 07, 2: loss landscapes (Li et al. 2018) ----------------------------------------

def filter_normalized_direction(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random direction in weight space, scaled filter by filter to the model's weights.

    Li et al. (2018, sec. 4): draw d ~ N(0, I) with the shape of every parameter, then rescale
    each filter d_ij (one output channel of a convolution, one output neuron of a linear layer:
    a slice along dimension 0) to the norm of the same filter of the weights,
    d_ij <- d_ij / ||d_ij|| * ||theta_ij||. Parameters with one dimension (biases, BN scales
    and shifts) get a zero direction: they are not moved, as in the authors' code
    (`--xignore biasbn`). BN running statistics are buffers, not parameters: not moved either.

    Returns {parameter name: tensor} on the model's device. The same seed gives the same
    Gaussian draw for every network with the same parameter shapes (a plain network and its
    option-A twin), each scaled to its own filters.
    """
    g = torch.Generator().manual_seed(seed)
    direction = {}
    for name, p in model.named_parameters():
        d = torch.randn(p.shape, generator=g, dtype=torch.float32)
        w = p.detach().float().cpu()
        if p.dim() <= 1:
            d = torch.zeros_like(d)
        else:
            scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)   # per filter
            d = d * scale.view(-1, *([1] * (p.dim() - 1)))
        direction[name] = d.to(device=p.device, dtype=p.dtype)
    return direction


@dataclass(frozen=True)
class LossSlice:
    """The loss along one direction: loss[i] = L(theta + alphas[i] d), on a fixed set of images."""

    model_name: str
    alphas: tuple[float, ...]
    loss: tuple[float, ...]
    accuracy: tuple[float, ...]     # fraction correct at each point (nan when labels aren't classes)
    images: int


    @property
    def local_minima(self) -> int:
        """Points lower than each of their neighbours on the line (the ends included): 1 for a
        single basin, more for a bumpy ("chaotic") slice."""
        return _local_minima(np.asarray(self.loss, dtype=float)[:, None])


@dataclass(frozen=True)
class LossSurface:
    """The loss on a plane: loss[i][j] = L(theta + alphas[i] d1 + betas[j] d2)."""

    model_name: str
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    loss: tuple[tuple[float, ...], ...]
    accuracy: tuple[tuple[float, ...], ...]
    images: int

    @property
    def local_minima(self) -> int:
        """Grid points lower than each of their (up to 8) neighbours, the border included."""
        return _local_minima(np.asarray(self.loss, dtype=float))


def _local_minima(z: np.ndarray) -> int:
    """How many entries of the 2-D array z are strictly lower than all their neighbours."""
    padded = np.pad(z, 1, constant_values=np.inf)
    rows, cols = z.shape
    lower = np.ones_like(z, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                lower &= z < padded[1 + di:1 + di + rows, 1 + dj:1 + dj + cols]
    return int(lower.sum())


def _loss_and_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       loss_fn, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy over `images`, a chunk at a time (model already in eval mode)."""
    total, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        total += float(loss_fn(out, y, reduction="sum"))
        if out.dim() == 2 and not y.dtype.is_floating_point:
            correct += int((out.argmax(1) == y).sum())
    accuracy = correct / len(images) if not labels.dtype.is_floating_point else float("nan")
    return total / len(images), accuracy


class _WeightSpace:
    """A copy of a model in eval mode that can be moved to theta + sum_k c_k d_k and back.

    The copy keeps theta; every move starts again from it, so no rounding accumulates.
    """

    def __init__(self, model: nn.Module):
        # channels_last: about 1.5x faster convolutions on CPUs (measured), same values
        self.model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.params = dict(self.model.named_parameters())
        self.theta = {n: p.detach().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def move(self, directions, coords) -> nn.Module:
        for name, p in self.params.items():
            value = self.theta[name].clone()
            for d, c in zip(directions, coords):
                if c:
                    value.add_(d[name], alpha=float(c))
            p.copy_(value)
        return self.model


@torch.no_grad()
def loss_slice(model: nn.Module, direction: dict, alphas, images: torch.Tensor,
               labels: torch.Tensor, *, loss_fn=F.cross_entropy, batch_size: int = 512,
               progress: bool = False) -> LossSlice:
    """L(theta + alpha d) for each alpha, on `images` (normalised, on the model's device).

    The network is evaluated in eval mode, as Li et al.'s code does: batch normalisation uses
    the running statistics of the trained network, which stay fixed while the weights move.
    `loss_fn(output, labels, reduction="sum")` defaults to the cross-entropy. The model itself
    is not changed (the probe moves a copy).
    """
    space = _WeightSpace(model)
    alphas = tuple(float(a) for a in alphas)
    points = progress_bar(alphas, desc="1-D slice", leave=False) if progress else alphas
    losses, accs = [], []
    for a in points:
        loss, acc = _loss_and_accuracy(space.move([direction], [a]), images, labels, loss_fn,
                                       batch_size)
        losses.append(loss)
        accs.append(acc)
    return LossSlice(getattr(model, "name", type(model).__name__), alphas, tuple(losses),
                     tuple(accs), len(images))


@torch.no_grad()
def loss_surface(model: nn.Module, d1: dict, d2: dict, alphas, betas, images: torch.Tensor,
                 labels: torch.Tensor, *, loss_fn=F.cross_entropy, batch_size: int = 512,
                 progress: bool = False) -> LossSurface:
    """L(theta + alpha d1 + beta d2) on the grid alphas x betas (see `loss_slice`)."""
    space = _WeightSpace(model)
    alphas, betas = tuple(float(a) for a in alphas), tuple(float(b) for b in betas)
    grid = [(a, b) for a in alphas for b in betas]
    points = progress_bar(grid, desc="2-D surface", leave=False) if progress else grid
    values = [_loss_and_accuracy(space.move([d1, d2], [a, b]), images, labels, loss_fn,
                                 batch_size) for a, b in points]
    rows = lambda k: tuple(tuple(values[i * len(betas) + j][k] for j in range(len(betas)))
                           for i in range(len(alphas)))
    return LossSurface(getattr(model, "name", type(model).__name__), alphas, betas, rows(0),
                       rows(1), len(images))


# --- notebook 07, 3: shattered gradients (Balduzzi et al. 2017) ------------------------------

@dataclass(frozen=True)
class GradientCorrelation:
    """Input gradients of a network at inputs along a line x(t) = (1 - t) x0 + t x1.

    t[i]              positions along the line (0: the first image, 1: the second)
    derivative[i]     d f(x(t)) / dt at t[i]: the gradient seen through a one-dimensional
                      input, as in Balduzzi et al.'s Fig. 1
    lags[l]           distances between two inputs, in steps of the line (1, 2, 4, ...)
    correlation[l]    the mean correlation of the gradient vectors df/dx at two inputs that far
                      apart (over all such pairs): 1 for a linear model, about 0 for white noise
    """

    model_name: str
    t: tuple[float, ...]
    derivative: tuple[float, ...]
    lags: tuple[int, ...]
    correlation: tuple[float, ...]

    @property
    def neighbour_correlation(self) -> float:
        """The correlation between the gradients at neighbouring inputs (lag 1)."""
        return self.correlation[0]


def with_batch_statistics(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """A copy of `model` in eval mode whose BN running statistics are those of `images`.

    At initialisation the running statistics are mean 0 and variance 1, so eval mode would
    skip the normalisation the first training step does with its batch statistics. This
    recomputes them once from `images` (a cumulative average, not a moving one), so that each
    input's output and gradient depend on that input alone, as in the first step.
    """
    probe = copy.deepcopy(model)
    norms = [m for m in probe.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                   # cumulative average over the batches seen
    probe.train()
    with torch.no_grad():
        probe(images)
    for m in norms:
        m.momentum = 0.1
    return probe.eval()


def gradient_correlation(model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, points: int,
                         *, readout: torch.Tensor | None = None, lags=None,
                         batch_size: int = 64) -> GradientCorrelation:
    """Gradients of a scalar output f(x) = readout . z(x) at `points` inputs from x0 to x1.

    x0, x1: single inputs (e.g. two normalised images, (3, 32, 32)); the inputs are
    x(t) = (1 - t) x0 + t x1 for t = 0, 1/(points-1), ..., 1. readout: a fixed vector over the
    model's outputs (default: a seeded random unit vector), so that f is one number.
    The correlation of two gradients is Pearson's, over their entries. The model is used as
    it is (put it in eval mode, e.g. with `with_batch_statistics`); it is not changed.
    """
    device = x0.device
    ts = torch.linspace(0, 1, points, device=device)
    shape = (-1,) + (1,) * x0.dim()
    xs = (1 - ts).view(shape) * x0 + ts.view(shape) * x1          # (points, *x0.shape)
    grads = []
    for start in range(0, points, batch_size):
        x = xs[start:start + batch_size].detach().requires_grad_(True)
        out = model(x)
        if readout is None:
            g = torch.Generator().manual_seed(0)
            readout = torch.randn(out.shape[1:], generator=g)
            readout = (readout / readout.norm()).to(device)
        f = (out * readout).flatten(1).sum(1)                          # (batch,) scalars
        grads.append(torch.autograd.grad(f.sum(), x)[0].detach().flatten(1))
    grad = torch.cat(grads).double()                                   # (points, D)
    derivative = grad @ (x1 - x0).flatten().double()                   # df/dt, chain rule
    centred = grad - grad.mean(1, keepdim=True)
    unit = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-300)
    if lags is None:
        lags = [1]
        while lags[-1] * 2 <= (points - 1) // 2:     # at least half the inputs form pairs
            lags.append(lags[-1] * 2)
    corr = tuple(float((unit[:-lag] * unit[lag:]).sum(1).mean()) for lag in lags)
    return GradientCorrelation(getattr(model, "name", type(model).__name__),
                               tuple(float(t) for t in ts), tuple(float(v) for v in derivative),
                               tuple(int(l) for l in lags), corr)


# --- notebook 07, 4: effective paths (Veit et al. 2016, sec. 5 and Fig. 6) --------------------

class _only_one_branch:
    """Inside the `with`, the block's output keeps its value but the gradient flows through one
    branch only: "residual" (the shortcut's output is detached) or "shortcut" (F(x) detached).

    The value is unchanged, so a forward pass through it equals the ordinary one; the
    non-linearity after the addition (the ReLU of an original block) stays on both branches.
    """

    def __init__(self, block: nn.Module, branch: str):
        end = block.last_bn() if block.last_bn() is not None else block.conv2
        self.cut = block.shortcut if branch == "residual" else end
        self.handle = None

    def __enter__(self):
        self.handle = self.cut.register_forward_hook(lambda _m, _i, out: out.detach())

    def __exit__(self, *exc):
        self.handle.remove()


def _block_graphs(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor):
    """Forward `images` block by block. Per block: its input (a leaf that requires grad) and its
    output twice, once with the gradient flowing only through the residual branch and once only
    through the shortcut. Also dL/dx_n, the gradient at the last block's output, per image."""
    with torch.no_grad():
        x = model.stem(images)
    graphs = []
    for block in model.blocks:
        x_in = x.detach().requires_grad_(True)
        with _only_one_branch(block, "residual"):
            through_residual = block(x_in)
        with _only_one_branch(block, "shortcut"):
            through_shortcut = block(x_in)
        graphs.append((x_in, through_residual, through_shortcut))
        x = through_residual.detach()
    top = x.requires_grad_(True)
    out = model.fc(F.adaptive_avg_pool2d(model.final_act(top), 1).flatten(1))
    loss = F.cross_entropy(out, labels)
    # The loss is a batch mean: scale back to a per-image gradient.
    v = torch.autograd.grad(loss, top)[0] * len(images)
    return graphs, v


def _vjp(output: torch.Tensor, leaf: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
    """cotangent^T d output / d leaf; zero where output does not depend on leaf (a plain
    block's "shortcut", which passes nothing)."""
    if not output.requires_grad:
        return torch.zeros_like(leaf)
    g = torch.autograd.grad(output, leaf, cotangent, retain_graph=True, allow_unused=True)[0]
    return torch.zeros_like(leaf) if g is None else g


def _eval_copy(model: CifarResNet) -> CifarResNet:
    probe = copy.deepcopy(model).eval()
    for p in probe.parameters():
        p.requires_grad_(False)         # gradients w.r.t. the signal only, not the weights
    return probe


def path_gradient_terms(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor
                        ) -> list[torch.Tensor]:
    """dL/dx_1, the gradient at the input of the first block, split by path length (exact).

    Unrolled, n blocks are 2^n paths (Veit et al. 2016): at each block a path passes either
    the residual branch F or the shortcut. The chain rule gives the block's Jacobian as
    D (J_F + J_s) (D: the derivative of the ReLU after the addition), so the gradient is a
    sum of 2^n products, one per path. terms[k] sums the C(n, k) paths through exactly k
    residual branches, built from the top block down: terms[k] <- J_s^T D terms[k] +
    J_F^T D terms[k-1]. sum(terms) equals dL/dx_1. Per image: the loss's batch mean is scaled
    back by the batch size. Eval mode (BN running statistics); the model is not changed.
    Returns n + 1 tensors shaped like the stem's output, (N, C, H, W).
    """
    probe = _eval_copy(model)
    graphs, v = _block_graphs(probe, images, labels)
    terms = [v]
    for x_in, through_residual, through_shortcut in reversed(graphs):
        shortcut = [_vjp(through_shortcut, x_in, t) for t in terms]
        residual = [_vjp(through_residual, x_in, t) for t in terms]
        terms = ([shortcut[0]] + [shortcut[k] + residual[k - 1] for k in range(1, len(terms))]
                 + [residual[-1]])
    return terms


@dataclass(frozen=True)
class PathGradients:
    """The gradient at the input of the first block, by path length (exact, summed paths).

    norm[k]: ||sum of the gradients of all paths through exactly k residual branches||, per
    image (the mean over images of each image's norm); total: the same for the full gradient.
    """

    model_name: str
    blocks: int
    norm: tuple[float, ...]
    total: float
    images: int

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(range(self.blocks + 1))


def _per_image_norm(t: torch.Tensor) -> float:
    return float(t.flatten(1).norm(dim=1).mean())


def path_length_gradients(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor
                          ) -> PathGradients:
    """`path_gradient_terms` as norms per image, with the norm of their sum."""
    terms = path_gradient_terms(model, images, labels)
    return PathGradients(model.name, len(terms) - 1, tuple(_per_image_norm(t) for t in terms),
                         _per_image_norm(sum(terms)), len(images))


@dataclass(frozen=True)
class SampledPaths:
    """Veit et al.'s measurement: the gradient of single paths of each length, sampled.

    per_path[k]: the mean, over sampled paths of length k and over images, of the norm of
    the gradient that one path carries to the input of the first block. Multiplied by the
    number of paths of that length, C(n, k), it is Veit et al.'s "total gradient magnitude"
    of the paths of length k (their Fig. 6c).
    """

    model_name: str
    blocks: int
    lengths: tuple[int, ...]
    per_path: tuple[float, ...]
    samples: int
    images: int

    @property
    def total(self) -> tuple[float, ...]:
        import math
        return tuple(p * math.comb(self.blocks, k) for k, p in zip(self.lengths, self.per_path))

    @property
    def decay(self) -> float:
        """r: the factor by which one more residual branch scales a path's gradient, fitted.

        A least-squares line through log per_path[k] against k has slope log r. If every
        branch scaled the gradient by r, the paths of length k would carry C(n, k) r^k in all,
        which peaks near k = n r / (1 + r): n/2 for r = 1, shorter paths for r < 1.
        """
        import math
        pts = [(k, math.log(p)) for k, p in zip(self.lengths, self.per_path) if p > 0]
        mk = sum(k for k, _ in pts) / len(pts)
        ml = sum(v for _, v in pts) / len(pts)
        slope = (sum((k - mk) * (v - ml) for k, v in pts) /
                 sum((k - mk) ** 2 for k, _ in pts))
        return math.exp(slope)

    @property
    def peak_length(self) -> int:
        """The path length whose paths carry the largest total gradient (the maximum of total)."""
        return self.lengths[max(range(len(self.total)), key=self.total.__getitem__)]


def sampled_path_gradients(model: CifarResNet, images: torch.Tensor, labels: torch.Tensor, *,
                           samples: int, lengths=None, seed: int = 0,
                           progress: bool = False) -> SampledPaths:
    """For each length k, sample `samples` paths (which k of the n residual branches they pass)
    and measure the gradient each carries to the input of the first block (Veit et al., sec. 5).

    As Veit et al. describe it: one forward pass; then, in the backward pass, k blocks chosen at
    random pass the gradient through their residual branch only and the other n - k through
    their shortcut only. Here one forward pass serves every sample.
    """
    probe = _eval_copy(model)
    graphs, v = _block_graphs(probe, images, labels)
    n = len(graphs)
    lengths = tuple(range(n + 1)) if lengths is None else tuple(lengths)
    g = torch.Generator().manual_seed(seed)
    per_path = []
    steps = progress_bar(lengths, desc="path lengths", leave=False) if progress else lengths
    for k in steps:
        norms = []
        for _ in range(samples):
            through = set(torch.randperm(n, generator=g)[:k].tolist())
            t = v
            for i in reversed(range(n)):
                x_in, through_residual, through_shortcut = graphs[i]
                t = _vjp(through_residual if i in through else through_shortcut, x_in, t)
            norms.append(_per_image_norm(t))
        per_path.append(sum(norms) / len(norms))
    return SampledPaths(model.name, n, lengths, tuple(per_path), samples, len(images))
