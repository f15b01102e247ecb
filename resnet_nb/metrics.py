"""What a trained network gets right and wrong, and how fast it trains.

    confusion_matrix(labels, predictions)   counts[true class, predicted class]
    per_class_accuracy(counts)              the diagonal over the row sums
    misclassified(labels, predictions)      indices of the wrong predictions
    training_throughput(model, images, ...) images/s of forward + backward + step

Everything takes and returns plain tensors on the CPU, so the figures in
`viz` and the notebooks can use the results directly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet, normalize


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor,
                     num_classes: int = 10) -> torch.Tensor:
    """counts[i, j] = how many images of true class i were predicted as class j.

    labels, predictions: (N,) integer tensors with values in 0..num_classes-1.
    Returns a (num_classes, num_classes) int64 tensor; its sum is N and its
    trace is the number of correct predictions.
    """
    labels, predictions = labels.flatten().cpu().long(), predictions.flatten().cpu().long()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in length: {len(labels)} vs "
                         f"{len(predictions)}")
    for name, t in (("labels", labels), ("predictions", predictions)):
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found "
                             f"{int(t.min())}..{int(t.max())}")
    # Each (true, predicted) pair becomes one index of the flattened C x C matrix.
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes ** 2).view(num_classes, num_classes)


def per_class_accuracy(counts: torch.Tensor) -> torch.Tensor:
    """Accuracy within each true class (recall): counts[i, i] / sum_j counts[i, j].

    A class with no images gets NaN rather than a made-up 0 or 1.
    """
    counts = counts.double()
    return counts.diagonal() / counts.sum(dim=1)


def misclassified(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Indices (ascending, int64) of the images whose prediction differs from the label."""
    return (labels.flatten().cpu() != predictions.flatten().cpu()).nonzero().flatten()


@dataclass(frozen=True)
class Throughput:
    """Training speed measured on one batch size."""

    batch_size: int
    images: int          # images trained on while the clock ran
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    def __str__(self) -> str:
        return (f"batch {self.batch_size:>4}: {self.images_per_second:8.1f} images/s "
                f"({self.images} images in {self.seconds:.2f} s)")


def training_throughput(model: nn.Module, data: ImageSet, batch_size: int, images: int, *,
                        lr: float = 0.001, warmup_steps: int = 2,
                        device: str | torch.device = "cpu") -> Throughput:
    """Time SGD training steps (forward, loss, zero_grad, backward, step) on `images` images.

    The model's weights ARE updated, so pass a fresh or throw-away model.
    `data` supplies the images in order (no augmentation,
    so only the network's cost is timed); `warmup_steps` untimed steps come
    first, because the first steps of a process pay for memory allocation.
    At least one full batch is timed.
    """
    device = torch.device(device)
    steps = max(1, images // batch_size)
    need = (steps + warmup_steps) * batch_size
    if len(data) < need:
        raise ValueError(f"need {need} images for {steps} timed + {warmup_steps} warm-up steps "
                         f"of batch {batch_size}, got {len(data)}")
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    # Normalise once, outside the clock: (need, 3, 32, 32) float32.
    x_all = normalize(data.images[:need].to(device))
    y_all = data.labels[:need].to(device)

    def step(i: int) -> None:
        x = x_all[i * batch_size:(i + 1) * batch_size]
        y = y_all[i * batch_size:(i + 1) * batch_size]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for i in range(warmup_steps):
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(warmup_steps, warmup_steps + steps):
        step(i)
    _sync(device)
    return Throughput(batch_size, steps * batch_size, time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
