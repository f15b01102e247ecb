"""CIFAR-10 as uint8 tensors, and fast mini-batches with augmentation done on tensors.

Sources (argument `source`, else the RESNET_NB_DATA environment variable):

    "torchvision"      download with torchvision (needs the internet), the default
    a folder           torchvision's `cifar-10-batches-py`, or an image folder
                       train/<class>/*, test/<class>/*
    a .tar.gz file     an archive of either of those
    "synthetic"        random class patterns, for unit tests only; never chosen silently

Images are decoded once and cached as uint8 tensors (N, 3, 32, 32); a second
load reads the cache. The source used is printed at load time.

What is checked, so that the data a run uses is the data it says it uses:

* an image folder or archive has exactly CIFAR-10's ten class folders in train/ and
  test/ (labels come from the names, airplane=0 ... truck=9), every image is 32x32,
  and it holds one copy of the data set (two copies side by side are refused);
  macOS metadata (`._*` files, `__MACOSX/`) and other hidden files are ignored;
* counts: no class may have more images than CIFAR-10 has (5,000 train, 1,000 test);
  a copy with some class complete and another short is refused as incomplete; a smaller
  copy (for tests or demos) loads, and the load message says how much of CIFAR-10 it is;
* torchvision's batches hold only arrays, with CIFAR-10's class names and labels 0..9.

If the cache folder cannot be written (read-only, full, another user's), the data
are decoded into memory and the load message says so.
"""
from __future__ import annotations

import hashlib
import io
import numbers
import os
import pickle
import re
import tarfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Iterator

import torch
import torch.nn.functional as F

from .files import (NotWritable, atomic_write, check_writable, locked_temp_dir, remove_leftovers,
                    show_path)
from .files import reason as _why

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of CIFAR-10's training images (on the 0..1 scale).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_TV_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
             "test_batch", "batches.meta")
# 2: labels from class names (not folder order), macOS metadata ignored, copies checked.
_CACHE_VERSION = 2
#: Images per class in CIFAR-10's training and test sets.
FULL_PER_CLASS = {"train": 5000, "test": 1000}

HOW_TO_POINT = ("Point RESNET_NB_DATA (or the `source` argument, or --data) at a local copy "
                "of CIFAR-10: torchvision's 'cifar-10-batches-py' folder or its "
                "cifar-10-python.tar.gz, or an image folder train/<class>/*, test/<class>/* "
                "or a .tar.gz of one.")


def _is_int(value) -> bool:
    """An integer (numpy's too), not a bool and not 2.5: sizes are counted, not measured."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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
        if not (_is_int(size) and 0 < size < len(self.train)):
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
            if n is not None and not (_is_int(n) and n > 0):
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


def check_source(source: str | os.PathLike | None = None) -> str:
    """describe_source, after the checks that need no decoding; DataError if one fails.

    An image folder: its class folders are listed and must be CIFAR-10's ten. An archive:
    its member names are read (so a truncated archive fails here) and must hold one copy
    of the image folder or of torchvision's batches. Images are not decoded (the load
    checks them). For `python -m resnet_nb info`.
    """
    text = describe_source(source)
    if "(MISSING" in text:
        raise DataError(f"no CIFAR-10 copy at {_source_spec(source)!r}. {HOW_TO_POINT}")
    spec = _source_spec(source)
    if spec in ("torchvision", "synthetic"):
        return text
    path = Path(spec).expanduser()
    kind = _kind_of(path)
    label = f"{kind} {_show(path)}"
    if kind == "image folder":
        root = _find_image_root(path)
        _check_classes({split: {p.name for p in (root / split).iterdir()
                                if p.is_dir() and _visible(p.name)}
                        for split in ("train", "test")}, label)
    elif kind == "archive":
        _read_archive(path, label, names_only=True)
    return text


def _source_spec(source) -> str:
    if source is None:
        source = os.environ.get("RESNET_NB_DATA") or "torchvision"
    return os.fspath(source)


_show = show_path   # a path as it may be printed in a notebook


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
    """Load CIFAR-10 as uint8 tensors; see the module docstring for the sources and checks.

    The first load decodes the images and caches them under `cache_dir`
    (default: `default_cache_dir()`); later loads read the cache. If the cache
    cannot be written, the images are decoded into memory only, and the load
    message says so. Raises DataError, whose message says what to do, for a
    missing, damaged or wrong copy.
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
    key = hashlib.sha1(f"{_CACHE_VERSION}|{kind}|{path.resolve()}|{_listing(path, kind)}"
                       .encode()).hexdigest()[:16]
    cache_file = cache / f"cifar10-{key}.pt"
    label = f"{kind} {_show(path)}"
    remove_leftovers(cache)        # temporary files of loads that were killed
    if cache_file.exists():
        try:
            data = _read_cache(cache_file, label)
        except Exception as e:  # a damaged or unreadable cache is decoded again, never trusted
            try:
                cache_file.unlink()
            except FileNotFoundError:
                pass
            except OSError as kept:   # a class's shared, read-only cache: refuse it in one line
                raise DataError(      # rather than have every student's kernel decode again
                    f"the shared data cache {_show(cache_file)} is damaged ({_why(e)}) and "
                    f"cannot be replaced here ({kept.strerror}): ask whoever set up "
                    "RESNET_NB_CACHE to decode CIFAR-10 into it again, or set RESNET_NB_CACHE "
                    "to a folder of your own") from None
            _say(verbose, f"data: the cache file {cache_file.name} cannot be used ({_why(e)}); "
                          "decoding again")
        else:
            _say(verbose, f"data: {data} (decoded cache)")
            _say_note(verbose, _check_counts(data, label))
            return data
    # Try the cache folder before the decode, so that a cache that cannot be written does
    # not throw the decoded images away afterwards.
    try:
        check_writable(cache, "the data cache")
        writable = True
        _say(verbose, f"data: decoding {label} once; later loads use the cache ...")
    except NotWritable as e:
        writable = False
        _say(verbose, f"data: {e}: decoding {label} into memory only, so the next load decodes "
                      "again (set RESNET_NB_CACHE to a folder you can write to keep a cache)")
    if kind == "torchvision folder":
        data = _read_tv_folder(_find_tv_folder(path), label)
    elif kind == "image folder":
        data = _read_image_folder(_find_image_root(path), label)
    else:
        data = _read_archive(path, label)
    note = _check_counts(data, label)
    if writable:
        try:
            _write_cache(cache_file, data)
        except OSError as e:   # a full disk, a folder that became read-only ...
            _say(verbose, f"data: could not write the cache {_show(cache_file)} "
                          f"({e.strerror or e}): the data are in memory only, and the next "
                          "load decodes again (free some space, or set RESNET_NB_CACHE)")
    _say(verbose, f"data: {data}")
    _say_note(verbose, note)
    return data


def _listing(path: Path, kind: str) -> str:
    """A digest of what the decode reads from `path`, for the cache key, without reading it.

    An archive: its size and modification time. A folder: the relative path, size and
    modification time of each file (of the image folder's train/<class>/, test/<class>/,
    or of torchvision's batches), so that a class folder deleted or an image replaced
    gives another key and the copy is decoded (and checked) again. Listing 60,000 images
    took 0.5 s (a shared 2-core machine, warm file cache).
    """
    h = hashlib.sha1()

    def add(name: str, st: os.stat_result) -> None:
        h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())

    if kind == "torchvision folder":
        folder = _find_tv_folder(path)
        for name in _TV_FILES:
            add(name, (folder / name).stat())
    elif kind == "image folder":
        root = _find_image_root(path)
        for split in ("train", "test"):
            for cls in sorted(os.scandir(root / split), key=lambda e: e.name):
                if not (_visible(cls.name) and cls.is_dir()):
                    continue
                h.update(f"{split}/{cls.name}/\n".encode())
                for f in sorted(os.scandir(cls.path), key=lambda e: e.name):
                    if _visible(f.name):
                        add(f.name, f.stat())        # DirEntry.stat: no second system call
    else:
        add(path.name, path.stat())
    return h.hexdigest()


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message)


def _say_note(verbose: bool, note: str | None) -> None:
    if note:
        _say(verbose, f"data: NOTE: {note}")


def _check_set(images, labels, what: str) -> None:
    """Raise ValueError unless (images, labels) are (N, 3, 32, 32) uint8 and (N,) labels 0..9."""
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.dim() == 4 and tuple(images.shape[1:]) == (3, 32, 32)):
        raise ValueError(f"{what} images are not (N, 3, 32, 32) uint8")
    if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
            and tuple(labels.shape) == (len(images),)):
        raise ValueError(f"{what} labels are not one int64 per image")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < len(CLASSES)):
        raise ValueError(f"{what} labels are not all in 0..{len(CLASSES) - 1}")


def _read_cache(cache_file: Path, label: str) -> CifarData:
    """The cached arrays, checked: a cache is read back only if it is what we wrote."""
    d = torch.load(cache_file, weights_only=True)
    if not isinstance(d, dict) or d.get("version") != _CACHE_VERSION:
        raise ValueError("not a cache file of this version")
    for split in ("train", "test"):
        _check_set(d.get(f"{split}_images"), d.get(f"{split}_labels"), split)
    if tuple(d.get("classes", ())) != CLASSES:
        raise ValueError("its class names are not CIFAR-10's")
    return CifarData(ImageSet(d["train_images"], d["train_labels"]),
                     ImageSet(d["test_images"], d["test_labels"]), source=label)


def _write_cache(cache_file: Path, data: CifarData) -> None:
    """Write atomically: a crash leaves no cache file that looks complete."""
    atomic_write(cache_file, lambda f: torch.save(
        {"version": _CACHE_VERSION, "train_images": data.train.images,
         "train_labels": data.train.labels, "test_images": data.test.images,
         "test_labels": data.test.labels, "classes": list(data.classes)}, f))


def _check_counts(data: CifarData, label: str) -> str | None:
    """Refuse counts CIFAR-10 cannot have; describe a partial copy (None for the full set).

    No class may have more images than CIFAR-10 has. If some class has them all and
    another has fewer, the copy is damaged. A copy with fewer images in every class is
    a deliberate small copy (tests, demos) and loads, described as such.
    """
    partial = []
    for split, s in (("train", data.train), ("test", data.test)):
        limit = FULL_PER_CLASS[split]
        counts = torch.bincount(s.labels, minlength=len(CLASSES)).tolist()
        over = [f"{CLASSES[i]} {n:,}" for i, n in enumerate(counts) if n > limit]
        if over:
            raise DataError(f"{label}: {split} has more images of a class than CIFAR-10's "
                            f"{limit:,} ({', '.join(over)}): the copy holds duplicates or "
                            "other images. Get a fresh copy.")
        if min(counts) < limit:
            if limit in counts:
                short = [f"{CLASSES[i]} {n:,}" for i, n in enumerate(counts) if n < limit]
                raise DataError(f"{label}: {split} is incomplete: {', '.join(short)} of "
                                f"{limit:,} images, while other classes are complete. "
                                "Get a fresh copy.")
            spread = (f"{counts[0]:,} per class" if min(counts) == max(counts)
                      else f"{min(counts):,} to {max(counts):,} per class")
            partial.append(f"{split} {len(s):,} of {limit * len(CLASSES):,} images ({spread})")
    if not partial:
        return None
    return (f"a partial copy of CIFAR-10: {', '.join(partial)}. Fine for tests and demos; "
            "its results are not comparable with the paper's")


# --- torchvision's layout: pickled batches ---------------------------------

def _find_tv_folder(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if all((candidate / f).is_file() for f in _TV_FILES):
            return candidate
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Reads torchvision's CIFAR-10 batches: dicts, lists, strings and numpy arrays only.

    Any other object is refused: loading a pickle can run code, and a CIFAR-10 batch
    never needs more than arrays.
    """

    ALLOWED = {(m, name) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it holds a {module}.{name} object, not arrays")


def _unpickle(f, what: str) -> dict:
    try:
        d = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as e:   # truncated, not a pickle, a foreign object ...
        raise DataError(f"{what} is damaged, truncated or not a CIFAR-10 batch ({_why(e)}). "
                        "Get a fresh copy.") from None
    if not isinstance(d, dict):
        raise DataError(f"{what} is not a CIFAR-10 batch (a {type(d).__name__}, not a dict). "
                        "Get a fresh copy.")
    return d


def _unpickle_batch(f, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np
    d = _unpickle(f, what)
    try:
        data = np.asarray(d["data"])
        labels = torch.as_tensor(np.asarray(d["labels"]), dtype=torch.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"its images are a {data.dtype} array of shape {data.shape}, "
                             "not N x 3072 bytes")
        images = torch.from_numpy(data.copy()).reshape(-1, 3, 32, 32)
        _check_set(images, labels, "its")
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{what} is not a CIFAR-10 batch ({_why(e)}). Get a fresh copy.") \
            from None
    return images, labels


def _tv_classes(f, what: str) -> tuple[str, ...]:
    names = _unpickle(f, what).get("label_names")
    if names is None or tuple(names) != CLASSES:
        raise DataError(f"{what} names the classes {names}, not CIFAR-10's "
                        f"({', '.join(CLASSES)}): is this CIFAR-10? (CIFAR-100 is not supported)")
    return CLASSES


def _tv_data(batches: dict[str, tuple], label: str) -> CifarData:
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return CifarData(ImageSet(torch.cat([b[0] for b in train]), torch.cat([b[1] for b in train])),
                     ImageSet(*batches["test_batch"]), source=label)


def _read_tv_folder(folder: Path, label: str) -> CifarData:
    batches = {}
    for name in _TV_FILES[:-1]:
        with open(folder / name, "rb") as f:
            batches[name] = _unpickle_batch(f, f"{name} in {label}")
    with open(folder / "batches.meta", "rb") as f:
        _tv_classes(f, f"batches.meta in {label}")
    return _tv_data(batches, label)


def _download_torchvision(root: Path) -> Path:
    """Download with torchvision into a temporary folder; move it in place only when complete."""
    final = root / "cifar-10-batches-py"
    if _find_tv_folder(final) is not None:
        return final
    try:
        check_writable(root, "the data cache")
    except NotWritable as e:
        raise DataError(f"{e}, so CIFAR-10 cannot be downloaded into it. Set RESNET_NB_CACHE "
                        f"to a folder you can write, or: {HOW_TO_POINT}") from None
    remove_leftovers(root)         # downloads that were killed
    with locked_temp_dir(root, "download") as tmp:
        import torchvision
        try:
            torchvision.datasets.CIFAR10(str(tmp), train=True, download=True)
        except Exception as e:  # URLError, timeouts, a bad checksum ...
            raise DataError(f"could not download CIFAR-10 with torchvision ({type(e).__name__}: "
                            f"{e}). Offline? {HOW_TO_POINT}") from None
        if _find_tv_folder(tmp / "cifar-10-batches-py") is None:
            raise DataError(f"the CIFAR-10 download was incomplete. {HOW_TO_POINT}")
        try:
            os.replace(tmp / "cifar-10-batches-py", final)
        except OSError:
            if _find_tv_folder(final) is None:   # not another process's finished download
                raise
    return final


# --- image folders and archives ----------------------------------------------

def _visible(name: str) -> bool:
    """False for macOS metadata (`._name.jpg`, `__MACOSX/`) and other hidden files."""
    return not (name.startswith(".") or name == "__MACOSX")


def _is_root(c: Path) -> bool:
    return (c / "train").is_dir() and (c / "test").is_dir()


def _find_image_root(path: Path) -> Path | None:
    """The folder holding train/ and test/, here or one level down (an unpacked archive).

    Two such folders one level down are two copies of the data set: refused, not merged.
    """
    if _is_root(path):
        return path
    found = [c for c in sorted(path.iterdir()) if _visible(c.name) and c.is_dir() and _is_root(c)]
    if len(found) > 1:
        raise DataError(f"{_show(path)} holds {len(found)} copies of an image folder "
                        f"({', '.join(c.name + '/' for c in found)}): point at one of them")
    return found[0] if found else None


def _decode(raw: bytes, name: str) -> torch.Tensor:
    """One image file's bytes -> (3, 32, 32) uint8; `name` says which file of which copy."""
    from PIL import Image
    import numpy as np
    try:
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as e:
        # PIL names the in-memory file, "<_io.BytesIO object at 0x7f...>": noise here.
        why = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", _why(e))
        raise DataError(f"cannot decode image {name} ({why}); the copy is damaged: get a "
                        "fresh copy, or remove that file") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"image {name} is {arr.shape[1]}x{arr.shape[0]}, not 32x32: "
                        "is this CIFAR-10?")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, 32, 32)


def _check_classes(found: dict[str, set[str]], label: str) -> None:
    """Exactly CIFAR-10's ten class folders in train/ and in test/, or a DataError."""
    problems = []
    for split in ("train", "test"):
        missing = [c for c in CLASSES if c not in found[split]]
        extra = sorted(found[split] - set(CLASSES))
        if missing:
            problems.append(f"{split}/ lacks {', '.join(missing)}")
        if extra:
            problems.append(f"{split}/ has {', '.join(extra)}, which "
                            + ("is not a CIFAR-10 class" if len(extra) == 1
                               else "are not CIFAR-10 classes"))
    if problems:
        raise DataError(f"{label}: {'; '.join(problems)}. CIFAR-10 has exactly ten class "
                        f"folders in train/ and test/: {', '.join(CLASSES)}")


def _assemble(items: dict[str, list[tuple[str, str, bytes]]], label: str) -> CifarData:
    """items[split] = [(class_name, file_name, raw_bytes), ...] -> a CifarData.

    Labels come from the class names (airplane=0 ... truck=9), never from folder order.
    """
    index = {c: i for i, c in enumerate(CLASSES)}
    sets = {}
    for split in ("train", "test"):
        triples = items[split]
        empty = [c for c in CLASSES if not any(t[0] == c for t in triples)]
        if empty:
            raise DataError(f"{label}: {', '.join(f'{split}/{c}/' for c in empty)} "
                            f"hold(s) no images. {HOW_TO_POINT}")
        images = torch.stack([_decode(raw, f"{name} in {label}") for _, name, raw in triples])
        labels = torch.tensor([index[c] for c, _, _ in triples], dtype=torch.int64)
        sets[split] = ImageSet(images, labels)
    return CifarData(sets["train"], sets["test"], source=label)


def _read_image_folder(root: Path, label: str) -> CifarData:
    items, found = {}, {}
    for split in ("train", "test"):
        classes = sorted(p.name for p in (root / split).iterdir()
                         if p.is_dir() and _visible(p.name))
        found[split] = set(classes)
        items[split] = [(c, f"{split}/{c}/{f.name}", f.read_bytes()) for c in classes
                        for f in sorted((root / split / c).iterdir())
                        if _visible(f.name) and f.suffix.lower() in IMAGE_SUFFIXES]
    _check_classes(found, label)
    return _assemble(items, label)


def _read_archive(path: Path, label: str, names_only: bool = False) -> CifarData | None:
    """Read an image-folder or torchvision archive member by member, without unpacking it.

    `names_only`: read only the member names, run the checks that need no more, and
    return None (a truncated archive still fails: its names are read to the end).
    """
    items: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    found: dict[str, set[str]] = {"train": set(), "test": set()}
    roots: dict[tuple[str, ...], int] = {}     # folder holding train/ and test/ -> images
    names: set[str] = set()
    tv_batches = {}
    tv_meta = False
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = PurePosixPath(member.name).parts
                if not parts or not all(_visible(p) for p in parts):
                    continue       # __MACOSX/..., ._name.jpg, .DS_Store
                base = parts[-1]
                if base in _TV_FILES:
                    if base in tv_batches or (base == "batches.meta" and tv_meta):
                        raise DataError(f"the archive {_show(path)} holds {base} twice: two "
                                        "copies of the data set? Keep one.")
                    what = f"{member.name} in {label}"
                    if names_only:
                        tv_meta = tv_meta or base == "batches.meta"
                        if base != "batches.meta":
                            tv_batches[base] = None
                    elif base == "batches.meta":
                        _tv_classes(tar.extractfile(member), what)
                        tv_meta = True
                    else:
                        tv_batches[base] = _unpickle_batch(tar.extractfile(member), what)
                elif (len(parts) >= 3 and parts[-3] in items
                      and base.lower().endswith(IMAGE_SUFFIXES)):
                    split, cls = parts[-3], parts[-2]
                    name = "/".join(parts)
                    if name in names:
                        raise DataError(f"the archive {_show(path)} holds {name} twice. "
                                        "Get a fresh copy.")
                    names.add(name)
                    roots[parts[:-3]] = roots.get(parts[:-3], 0) + 1
                    found[split].add(cls)
                    if not names_only:
                        items[split].append((cls, name, tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"the archive {_show(path)} is damaged or truncated "
                        f"({type(e).__name__}: {e}). Get a fresh copy; nothing was cached "
                        "from it.") from None
    if len(roots) > 1:
        where = ", ".join(("/".join(r) or "(top level)") + "/" for r in sorted(roots))
        raise DataError(f"the archive {_show(path)} holds {len(roots)} copies of an image "
                        f"folder ({where}): keep one")
    if tv_batches or tv_meta:
        if roots:
            raise DataError(f"the archive {_show(path)} holds both torchvision's batches and an "
                            "image folder: keep one")
        missing = [f for f in _TV_FILES[:-1] if f not in tv_batches]
        missing += [] if tv_meta else ["batches.meta"]
        if missing:
            raise DataError(f"the archive {_show(path)} lacks {missing}: it is incomplete. "
                            "Get a fresh copy.")
        return None if names_only else _tv_data(tv_batches, label)
    _check_classes(found, label)
    if names_only:
        return None
    # Archive order is arbitrary; sort by class (stably) so every load gives the same arrays.
    for split in items:
        items[split].sort(key=lambda t: t[0])
    return _assemble(items, label)


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
        if not (_is_int(batch_size) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
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
