"""CIFAR-10 as uint8 tensors, and fast mini-batches with augmentation done on tensors.

Sources (argument `source`, else the RESNET_NB_DATA environment variable):

    "torchvision"      download with torchvision (needs the internet), the default
    a folder           torchvision's `cifar-10-batches-py`, or an image folder
                       train/<class>/*, test/<class>/*
    a .tar.gz file     an archive of either of those
    "synthetic"        random class patterns, for unit tests only; never chosen silently

Images are decoded once and cached as uint8 tensors (N, 3, 32, 32); a second
load reads the cache. The source used is printed at load time.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of CIFAR-10's training images (on the 0..1 scale).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_TV_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
             "test_batch", "batches.meta")
_CACHE_VERSION = 1

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

    def split_validation(self, size: int = 5000, seed: int = 0) -> "CifarData":
        """Hold out `size` training images for validation (the paper: 45k/5k).

        Choose hyperparameters on `val`; keep `test` for the final report.
        """
        if not 0 < size < len(self.train):
            raise ValueError(f"validation size must be between 1 and {len(self.train) - 1}, "
                             f"got {size}")
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        return replace(self, train=self.train.take(order[size:]),
                       val=self.train.take(order[:size]))

    def subset(self, train: int | None = None, test: int | None = None,
               seed: int = 0) -> "CifarData":
        """A random subset (without replacement) of the training and/or test set.

        The chosen images keep the source's order, and an image-folder copy is
        stored class by class: draw a random sample (or use Batches, which
        shuffles) rather than slicing the first n images.
        """
        g = torch.Generator().manual_seed(seed)

        def pick(s: ImageSet | None, n: int | None) -> ImageSet | None:
            if s is None or n is None or n >= len(s):
                return s
            if n <= 0:
                raise ValueError(f"subset sizes must be positive, got {n}")
            return s.take(torch.randperm(len(s), generator=g)[:n].sort().values)

        return replace(self, train=pick(self.train, train), test=pick(self.test, test),
                       val=pick(self.val, None))

    def __str__(self) -> str:
        parts = [f"train {len(self.train):,}"]
        if self.val is not None:
            parts.append(f"val {len(self.val):,}")
        parts.append(f"test {len(self.test):,}")
        return f"CIFAR-10 ({', '.join(parts)}) from {self.source}"


# --- choosing and reading a source -------------------------------------------

def default_cache_dir() -> Path:
    """RESNET_NB_CACHE, else ~/.cache/resnet_nb (outside the repository, never committed)."""
    env = os.environ.get("RESNET_NB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "resnet_nb"


def describe_source(source: str | os.PathLike | None = None) -> str:
    """Which source `load_cifar10(source)` would use, without loading anything."""
    spec = _source_spec(source)
    if spec in ("torchvision", "synthetic"):
        return spec if spec == "synthetic" else "torchvision (downloads CIFAR-10 when online)"
    path = Path(spec).expanduser()
    if not path.exists():
        return f"{_show(path)} (MISSING: {HOW_TO_POINT})"
    return f"{_kind_of(path)} {_show(path)}"


def _source_spec(source) -> str:
    if source is None:
        source = os.environ.get("RESNET_NB_DATA") or "torchvision"
    return os.fspath(source)


def _show(path: Path) -> str:
    """A path as it may be printed in a notebook: no absolute path of this machine."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return f".../{path.parent.name}/{path.name}" if path.parent.name else path.name


def _kind_of(path: Path) -> str:
    if path.is_dir():
        if _find_tv_folder(path) is not None:
            return "torchvision folder"
        if _find_image_root(path) is not None:
            return "image folder"
        raise DataError(f"{_show(path)} holds neither torchvision's 'cifar-10-batches-py' nor "
                        f"train/<class>/ and test/<class>/ folders. {HOW_TO_POINT}")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return "archive"
    raise DataError(f"{_show(path)} is not a folder or a .tar.gz archive. {HOW_TO_POINT}")


def load_cifar10(source: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None
                 = None, verbose: bool = True, synthetic_size: tuple[int, int] = (2000, 500)
                 ) -> CifarData:
    """Load CIFAR-10 as uint8 tensors; see the module docstring for the sources.

    The first load decodes the images and caches them under `cache_dir`
    (default: `default_cache_dir()`); later loads read the cache.
    """
    spec = _source_spec(source)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if spec == "synthetic":
        data = make_synthetic(*synthetic_size)
        _say(verbose, f"data: {data} -- random patterns, NOT CIFAR-10 (for tests only)")
        return data
    if spec == "torchvision":
        path = _download_torchvision(cache / "torchvision")
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise DataError(f"no CIFAR-10 copy at {spec!r}. {HOW_TO_POINT}")
    kind = _kind_of(path)
    stat = path.stat()
    key = hashlib.sha1(f"{_CACHE_VERSION}|{kind}|{path.resolve()}|{stat.st_size}|"
                       f"{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache_file = cache / f"cifar10-{key}.pt"
    label = f"{kind} {_show(path)}"
    if cache_file.exists():
        try:
            data = _read_cache(cache_file, label)
            _say(verbose, f"data: {data} (decoded cache)")
            return data
        except Exception:  # a damaged cache is rebuilt, never trusted
            cache_file.unlink(missing_ok=True)
    _say(verbose, f"data: decoding {label} once; later loads use the cache ...")
    if kind == "torchvision folder":
        data = _read_tv_folder(_find_tv_folder(path), label)
    elif kind == "image folder":
        data = _read_image_folder(_find_image_root(path), label)
    else:
        data = _read_archive(path, label)
    _write_cache(cache_file, data)
    _say(verbose, f"data: {data}")
    return data


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message)


def _read_cache(cache_file: Path, label: str) -> CifarData:
    d = torch.load(cache_file, weights_only=True)
    return CifarData(ImageSet(d["train_images"], d["train_labels"]),
                     ImageSet(d["test_images"], d["test_labels"]),
                     classes=tuple(d["classes"]), source=label)


def _write_cache(cache_file: Path, data: CifarData) -> None:
    """Write atomically: a crash leaves no cache file that looks complete."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save({"train_images": data.train.images, "train_labels": data.train.labels,
                    "test_images": data.test.images, "test_labels": data.test.labels,
                    "classes": list(data.classes)}, tmp)
        os.replace(tmp, cache_file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- torchvision's layout: pickled batches ---------------------------------

def _find_tv_folder(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if all((candidate / f).is_file() for f in _TV_FILES):
            return candidate
    return None


def _unpickle_batch(f) -> tuple[torch.Tensor, torch.Tensor]:
    d = pickle.load(f, encoding="latin1")
    images = torch.as_tensor(d["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
    return images, torch.as_tensor(d["labels"], dtype=torch.int64)


def _tv_data(batches: dict[str, tuple], classes, label: str) -> CifarData:
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return CifarData(ImageSet(torch.cat([b[0] for b in train]), torch.cat([b[1] for b in train])),
                     ImageSet(*batches["test_batch"]), classes=tuple(classes), source=label)


def _read_tv_folder(folder: Path, label: str) -> CifarData:
    batches = {}
    for name in _TV_FILES[:-1]:
        with open(folder / name, "rb") as f:
            batches[name] = _unpickle_batch(f)
    with open(folder / "batches.meta", "rb") as f:
        classes = pickle.load(f, encoding="latin1")["label_names"]
    return _tv_data(batches, classes, label)


def _download_torchvision(root: Path) -> Path:
    """Download with torchvision into a temporary folder; move it in place only when complete."""
    final = root / "cifar-10-batches-py"
    if _find_tv_folder(final) is not None:
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".download-"))
    try:
        import torchvision
        try:
            torchvision.datasets.CIFAR10(str(tmp), train=True, download=True)
        except Exception as e:  # URLError, timeouts, a bad checksum ...
            raise DataError(f"could not download CIFAR-10 with torchvision ({type(e).__name__}: "
                            f"{e}). Offline? {HOW_TO_POINT}") from None
        if _find_tv_folder(tmp / "cifar-10-batches-py") is None:
            raise DataError(f"the CIFAR-10 download was incomplete. {HOW_TO_POINT}")
        os.replace(tmp / "cifar-10-batches-py", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- image folders and archives ----------------------------------------------

def _find_image_root(path: Path) -> Path | None:
    """The folder holding train/ and test/, here or one level down (an unpacked archive)."""
    candidates = [path] + sorted(p for p in path.iterdir() if p.is_dir())
    for c in candidates:
        if (c / "train").is_dir() and (c / "test").is_dir():
            return c
    return None


def _decode(raw: bytes, name: str) -> torch.Tensor:
    from PIL import Image
    import numpy as np
    try:
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as e:
        raise DataError(f"cannot decode image {name} ({e}); the copy is damaged") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"image {name} is {arr.shape[1]}x{arr.shape[0]}, not 32x32: "
                        "is this CIFAR-10?")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, 32, 32)


def _assemble(items: dict[str, list[tuple[str, bytes]]], label: str,
              classes: tuple[str, ...]) -> CifarData:
    """items[split] = [(class_name, raw_bytes), ...] -> a CifarData with labels by class order."""
    index = {c: i for i, c in enumerate(classes)}
    sets = {}
    for split in ("train", "test"):
        pairs = items.get(split, [])
        if not pairs:
            raise DataError(f"{label} has no {split} images. {HOW_TO_POINT}")
        images = torch.stack([_decode(raw, f"{split}/{c}/#{i}") for i, (c, raw) in
                              enumerate(pairs)])
        labels = torch.tensor([index[c] for c, _ in pairs], dtype=torch.int64)
        sets[split] = ImageSet(images, labels)
    return CifarData(sets["train"], sets["test"], classes=classes, source=label)


def _check_classes(train: set[str], test: set[str], label: str) -> tuple[str, ...]:
    if train != test:
        raise DataError(f"{label}: the train and test class folders differ "
                        f"({sorted(train ^ test)})")
    # Sorted names are CIFAR-10's own label order (airplane=0 ... truck=9).
    return tuple(sorted(train))


def _read_image_folder(root: Path, label: str) -> CifarData:
    items, names = {}, {}
    for split in ("train", "test"):
        classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        names[split] = set(classes)
        items[split] = [(c, f.read_bytes()) for c in classes
                        for f in sorted((root / split / c).iterdir())
                        if f.suffix.lower() in IMAGE_SUFFIXES]
    return _assemble(items, label, _check_classes(names["train"], names["test"], label))


def _read_archive(path: Path, label: str) -> CifarData:
    """Read an image-folder or torchvision archive member by member, without unpacking it."""
    items: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    names: dict[str, set[str]] = {"train": set(), "test": set()}
    tv_batches, tv_classes = {}, None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = Path(member.name).parts
                base = parts[-1]
                if base in _TV_FILES:
                    f = tar.extractfile(member)
                    if base == "batches.meta":
                        tv_classes = pickle.load(f, encoding="latin1")["label_names"]
                    else:
                        tv_batches[base] = _unpickle_batch(f)
                elif (len(parts) >= 3 and parts[-3] in items
                      and base.lower().endswith(IMAGE_SUFFIXES)):
                    split, cls = parts[-3], parts[-2]
                    names[split].add(cls)
                    items[split].append((cls, tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError) as e:
        raise DataError(f"the archive {_show(path)} is damaged or truncated "
                        f"({type(e).__name__}: {e}). Get a fresh copy; nothing was cached "
                        "from it.") from None
    if tv_batches or tv_classes:
        missing = [f for f in _TV_FILES[:-1] if f not in tv_batches]
        if missing or tv_classes is None:
            raise DataError(f"the archive {_show(path)} lacks {missing or ['batches.meta']}: "
                            "it is incomplete. Get a fresh copy.")
        return _tv_data(tv_batches, tv_classes, label)
    classes = _check_classes(names["train"], names["test"], label)
    # Archive order is arbitrary; sort so that every load gives the same arrays.
    for split in items:
        items[split].sort(key=lambda cb: cb[0])
    return _assemble(items, label, classes)


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
    the per-channel statistics images are standardised with (default: CIFAR-10's).
    """

    def __init__(self, data: ImageSet, batch_size: int = 128, *, train: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0,
                 memory_format: torch.memory_format = torch.channels_last,
                 augment: bool | None = None, mean=MEAN, std=STD):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.augment = train if augment is None else augment
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
