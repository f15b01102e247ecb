"""CIFAR-10 as uint8 tensors, and fast mini-batches with augmentation done on tensors.

    data = load_cifar10()                       # CifarData: train and test ImageSets
    data = data.split_validation(5000)          # the paper's 45k/5k
    for x, y in Batches(data.train, 128, train=True):    # shuffled, cropped and flipped
        ...                                     # x: (128, 3, 32, 32) float32, normalised

An ImageSet holds images (N, 3, 32, 32) uint8 and labels (N,) int64, on any device, so that
a batch is an index into a tensor, and augmentation (a random crop from zero padding and a
horizontal flip, as in He et al. 2015, sec. 4.2) is one gather on the batch. Where the
images come from, how they are checked and cached: sources.py and readers.py.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from typing import Iterator

import torch
import torch.nn.functional as F

from .checks import is_int

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of CIFAR-10's training images (on the 0..1 scale).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
#: Images per class in CIFAR-10's training and test sets.
FULL_PER_CLASS = {"train": 5000, "test": 1000}

HOW_TO_POINT = ("Point RESNET_NB_DATA (or the `source` argument, or --data) at a local copy "
                "of CIFAR-10: torchvision's 'cifar-10-batches-py' folder or its "
                "cifar-10-python.tar.gz, or an image folder train/<class>/*, test/<class>/* "
                "or a .tar.gz of one.")


class DataError(RuntimeError):
    """A data source is missing, unreachable or damaged. The message says what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class CifarData:
    """The training, (optional) validation and test sets, and where they came from."""

    train: ImageSet
    test: ImageSet
    val: ImageSet | None = None
    classes: tuple[str, ...] = CLASSES
    source: str = ""
    val_seed: int | None = None        # the seed of split_validation(), if it was called
    subset_seed: int | None = None     # the seed of subset(), if it was called

    def split_validation(self, size: int = 5000, seed: int = 0) -> "CifarData":
        """Hold out `size` training images for validation (the paper: 45k/5k).

        Choose hyperparameters on `val`; keep `test` for the final report.
        """
        if not (is_int(size) and 0 < size < len(self.train)):
            raise ValueError(f"validation size must be an integer between 1 and "
                             f"{len(self.train) - 1}, got {size!r}")
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        return replace(self, train=self.train.take(order[size:]),
                       val=self.train.take(order[:size]), val_seed=seed)

    def subset(self, train: int | None = None, test: int | None = None,
               seed: int = 0) -> "CifarData":
        """A random subset (without replacement) of the training and/or test set.

        The chosen images keep the source's order, and an image-folder copy is
        stored class by class: draw a random sample (or use Batches, which
        shuffles) rather than slicing the first n images.
        """
        for name, n in (("train", train), ("test", test)):
            if n is not None and not (is_int(n) and n > 0):
                raise ValueError(f"subset {name} size must be a positive integer (or None: "
                                 f"all), got {n!r}")
        g = torch.Generator().manual_seed(seed)

        def pick(s: ImageSet | None, n: int | None) -> ImageSet | None:
            if s is None or n is None or n >= len(s):
                return s
            return s.take(torch.randperm(len(s), generator=g)[:n].sort().values)

        return replace(self, train=pick(self.train, train), test=pick(self.test, test),
                       val=pick(self.val, None), subset_seed=seed)

    def record(self) -> dict:
        """What a run records about its data: source, sizes, seeds, and a fingerprint.

        The fingerprint is a hash of every image and label of the three sets, so that a
        resumed run can check that it continues on exactly the same data.
        """
        h = hashlib.blake2b(digest_size=12)
        for s in (self.train, self.val, self.test):
            if s is None:
                h.update(b"none")
                continue
            for t in (s.images, s.labels):
                h.update(str((t.dtype, tuple(t.shape))).encode())
                h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy())
        return {"source": self.source, "train_size": len(self.train),
                "val_size": len(self.val) if self.val is not None else 0,
                "test_size": len(self.test), "val_seed": self.val_seed,
                "subset_seed": self.subset_seed, "fingerprint": h.hexdigest()}

    def __str__(self) -> str:
        parts = [f"train {len(self.train):,}"]
        if self.val is not None:
            parts.append(f"val {len(self.val):,}")
        parts.append(f"test {len(self.test):,}")
        return f"CIFAR-10 ({', '.join(parts)}) from {self.source}"


def load_cifar10(source: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None
                 = None, verbose: bool = True, synthetic_size: tuple[int, int] = (2000, 500)
                 ) -> CifarData:
    """Load CIFAR-10 as uint8 tensors from `source` (else RESNET_NB_DATA, else torchvision).

    A source is "torchvision" (downloaded), torchvision's folder, an image folder
    train/<class>/*, test/<class>/*, a .tar.gz of either, or "synthetic" (random patterns,
    for tests only); sources.py says what is checked. The first load decodes the images and
    caches them under `cache_dir` (default: sources.default_cache_dir()); later loads read
    the cache. Raises DataError, whose message says what to do, for a missing, damaged or
    wrong copy.
    """
    from . import sources     # imported here: the readers build on this module's classes
    spec = sources.source_spec(source)
    if spec == "synthetic":
        data = make_synthetic(*synthetic_size)
        if verbose:
            print(f"data: {data} -- random patterns, NOT CIFAR-10 (for tests only)")
        return data
    return sources.load(spec, cache_dir, verbose)


# --- synthetic data (tests only) -----------------------------------------------

def make_synthetic(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> CifarData:
    """Learnable fake CIFAR: each class is a smooth random colour pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = F.interpolate(torch.rand(10, 3, 4, 4, generator=g), size=32, mode="bilinear",
                             align_corners=False)  # (10, 3, 32, 32) in 0..1

    def make(n: int) -> ImageSet:
        labels = torch.arange(n) % 10
        labels = labels[torch.randperm(n, generator=g)]
        noise = 0.25 * torch.randn(n, 3, 32, 32, generator=g)
        images = ((patterns[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return ImageSet(images, labels)

    return CifarData(make(n_train), make(n_test), source="synthetic")


# --- mini-batches --------------------------------------------------------------

def _normalisation(device, mean=MEAN, std=STD) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (1, 3, 1, 1): x_uint8 * scale + shift = (x / 255 - mean) / std."""
    if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
        raise ValueError(f"mean and std need one value per colour channel (3 each), std > 0; "
                         f"got mean={tuple(mean)}, std={tuple(std)}")
    mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return 1 / (255 * std), -mean / std


def normalize(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32, scaled to 0..1 and standardised per channel.

    mean, std: per-channel statistics on the 0..1 scale (default: CIFAR-10's training set).
    """
    scale, shift = _normalisation(images.device, mean, std)
    return images.float() * scale + shift


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop from `pad`-pixel zero padding, and random horizontal flip, for a whole batch.

    One gather does both: row i of output image b reads row dy[b] + i of the
    padded image, and column j reads dx[b] + j (or dx[b] + W-1-j when flipped).
    Shapes and dtype are kept: (N, C, H, W) -> (N, C, H, W). The random numbers
    come from `generator`, on the generator's device (keep it on the images'
    device: on a GPU that avoids a host-to-device copy, and a wait, per batch).
    """
    n, c, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (pad, pad, pad, pad))                      # (N, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=generator.device)
    flip = torch.rand(n, 1, generator=generator, device=generator.device) < 0.5
    dy, dx, flip = dy.to(dev), dx.to(dev), flip.to(dev)
    cols = torch.where(flip, torch.arange(w - 1, -1, -1, device=dev),
                       torch.arange(w, device=dev)) + dx                # (N, W)
    rows = torch.arange(h, device=dev) + dy                              # (N, H)
    b = torch.arange(n, device=dev).view(n, 1, 1, 1)
    ch = torch.arange(c, device=dev).view(1, c, 1, 1)
    return padded[b, ch, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


class Batches:
    """Mini-batches drawn from uint8 images held on the training device.

    Training order and augmentation come from a generator seeded with
    (seed, epoch), so epoch k is the same whether or not the run was resumed.
    Yields (images float32 (B, 3, 32, 32) normalised, labels int64 (B,)).

    train=True shuffles, drops a last smaller batch and (unless augment=False) crops and
    flips; augment=False keeps the shuffled order and the images as they are. mean, std:
    the per-channel statistics images are standardised with (default: CIFAR-10's); `fit`
    records them, and `augment`, in its history.
    """

    def __init__(self, data: ImageSet, batch_size: int = 128, *, train: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0,
                 memory_format: torch.memory_format = torch.channels_last,
                 augment: bool | None = None, mean=MEAN, std=STD):
        if not (is_int(batch_size) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.augment = train if augment is None else augment
        self.mean, self.std = tuple(mean), tuple(std)
        self.memory_format = memory_format
        self.epoch = 0
        # Kept on the device, so that normalising a batch copies nothing from the host.
        self._scale, self._shift = _normalisation(self.images.device, mean, std)

    def __len__(self) -> int:
        n = len(self.labels)
        # Training drops a last, smaller batch (its BN statistics would be noisy).
        return n // self.batch_size if self.train and n >= self.batch_size else \
            -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.labels), self.images.device
        # The generator lives on the images' device; CPU runs are bit-for-bit reproducible.
        g = torch.Generator(device=device).manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g, device=device) if self.train else \
            torch.arange(n, device=device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = augment(x, g)
            x = (x.float() * self._scale + self._shift).contiguous(memory_format=self.memory_format)
            yield x, self.labels[idx]
