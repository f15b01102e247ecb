"""Measurements of a network: signal and gradient per block, lesions.

Probes never change the model they measure: they work on a copy, or restore
every switch they touch.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

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


@torch.no_grad()
def batch_dependence(model: nn.Module, images: torch.Tensor, batch_size: int,
                     trials: int = 4, seed: int = 0) -> BatchDependence:
    """Run `images` through a copy of `model` in training mode, in random batches of `batch_size`.

    images: (N, 3, 32, 32) float, normalised; N a multiple of batch_size is
    simplest (a last, smaller batch is dropped). Each trial shuffles the images
    into new batches; an image's prediction is compared across trials and with
    eval mode (BN's running statistics, no dependence on the batch).
    The model itself, BN running statistics included, is left untouched.
    """
    probe = copy.deepcopy(model)
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
