"""The file formats of CIFAR-10, read into a CifarData and checked on the way.

* torchvision's folder `cifar-10-batches-py`: pickled batches, read by an unpickler that
  accepts arrays only (loading a pickle can run code);
* an image folder train/<class>/*, test/<class>/*: labels from the class names
  (airplane=0 ... truck=9), never from folder order;
* a .tar.gz (or .tar) of either, read member by member without unpacking it.

Every image must be 32x32, the class folders exactly CIFAR-10's ten, and a copy holds one
data set (two side by side are refused). macOS metadata (`._*` files, `__MACOSX/`) and other
hidden files are ignored. Errors are DataErrors naming the file and what to do.
"""
from __future__ import annotations

import io
import pickle
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import torch

from .data import CLASSES, HOW_TO_POINT, CifarData, DataError, ImageSet
from .files import reason, show_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The files of torchvision's cifar-10-batches-py folder.
TV_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
            "test_batch", "batches.meta")


def check_set(images, labels, what: str) -> None:
    """Raise ValueError unless (images, labels) are (N, 3, 32, 32) uint8 and (N,) labels 0..9."""
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.dim() == 4 and tuple(images.shape[1:]) == (3, 32, 32)):
        raise ValueError(f"{what} images are not (N, 3, 32, 32) uint8")
    if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
            and tuple(labels.shape) == (len(images),)):
        raise ValueError(f"{what} labels are not one int64 per image")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < len(CLASSES)):
        raise ValueError(f"{what} labels are not all in 0..{len(CLASSES) - 1}")


# --- torchvision's layout: pickled batches ---------------------------------------------

def find_tv_folder(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if all((candidate / f).is_file() for f in TV_FILES):
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
        raise DataError(f"{what} is damaged, truncated or not a CIFAR-10 batch ({reason(e)}). "
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
        check_set(images, labels, "its")
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{what} is not a CIFAR-10 batch ({reason(e)}). Get a fresh copy.") \
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


def read_tv_folder(folder: Path, label: str) -> CifarData:
    batches = {}
    for name in TV_FILES[:-1]:
        with open(folder / name, "rb") as f:
            batches[name] = _unpickle_batch(f, f"{name} in {label}")
    with open(folder / "batches.meta", "rb") as f:
        _tv_classes(f, f"batches.meta in {label}")
    return _tv_data(batches, label)


# --- image folders and archives ---------------------------------------------------------

def visible(name: str) -> bool:
    """False for macOS metadata (`._name.jpg`, `__MACOSX/`) and other hidden files."""
    return not (name.startswith(".") or name == "__MACOSX")


def _is_root(c: Path) -> bool:
    return (c / "train").is_dir() and (c / "test").is_dir()


def find_image_root(path: Path) -> Path | None:
    """The folder holding train/ and test/, here or one level down (an unpacked archive).

    Two such folders one level down are two copies of the data set: refused, not merged.
    """
    if _is_root(path):
        return path
    found = [c for c in sorted(path.iterdir()) if visible(c.name) and c.is_dir() and _is_root(c)]
    if len(found) > 1:
        raise DataError(f"{show_path(path)} holds {len(found)} copies of an image folder "
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
        why = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", reason(e))
        raise DataError(f"cannot decode image {name} ({why}); the copy is damaged: get a "
                        "fresh copy, or remove that file") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"image {name} is {arr.shape[1]}x{arr.shape[0]}, not 32x32: "
                        "is this CIFAR-10?")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, 32, 32)


def check_classes(found: dict[str, set[str]], label: str) -> None:
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


def read_image_folder(root: Path, label: str) -> CifarData:
    items, found = {}, {}
    for split in ("train", "test"):
        classes = sorted(p.name for p in (root / split).iterdir()
                         if p.is_dir() and visible(p.name))
        found[split] = set(classes)
        items[split] = [(c, f"{split}/{c}/{f.name}", f.read_bytes()) for c in classes
                        for f in sorted((root / split / c).iterdir())
                        if visible(f.name) and f.suffix.lower() in IMAGE_SUFFIXES]
    check_classes(found, label)
    return _assemble(items, label)


def read_archive(path: Path, label: str, names_only: bool = False) -> CifarData | None:
    """Read an image-folder or torchvision archive member by member, without unpacking it.

    `names_only`: read only the member names, run the checks that need no more, and
    return None (a truncated archive still fails: its names are read to the end).
    """
    archive = _Archive(path, label, names_only)
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                archive.add(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"the archive {show_path(path)} is damaged or truncated "
                        f"({type(e).__name__}: {e}). Get a fresh copy; nothing was cached "
                        "from it.") from None
    return archive.data()


class _Archive:
    """What read_archive has found in an archive so far, and the checks on all of it."""

    def __init__(self, path: Path, label: str, names_only: bool):
        self.path, self.label, self.names_only = path, label, names_only
        self.items: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
        self.found: dict[str, set[str]] = {"train": set(), "test": set()}
        self.roots: dict[tuple[str, ...], int] = {}   # folder holding train/ and test/ -> images
        self.names: set[str] = set()
        self.tv_batches: dict[str, tuple | None] = {}
        self.tv_meta = False

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """One member: a file of torchvision's batches, an image, or something to skip."""
        if not member.isfile():
            return
        parts = PurePosixPath(member.name).parts
        if not parts or not all(visible(p) for p in parts):
            return       # __MACOSX/..., ._name.jpg, .DS_Store
        if parts[-1] in TV_FILES:
            self._add_batch(tar, member, parts[-1])
        elif (len(parts) >= 3 and parts[-3] in self.items
              and parts[-1].lower().endswith(IMAGE_SUFFIXES)):
            self._add_image(tar, member, parts)

    def _add_batch(self, tar: tarfile.TarFile, member: tarfile.TarInfo, base: str) -> None:
        if base in self.tv_batches or (base == "batches.meta" and self.tv_meta):
            raise DataError(f"the archive {show_path(self.path)} holds {base} twice: two "
                            "copies of the data set? Keep one.")
        what = f"{member.name} in {self.label}"
        if self.names_only:
            self.tv_meta = self.tv_meta or base == "batches.meta"
            if base != "batches.meta":
                self.tv_batches[base] = None
        elif base == "batches.meta":
            _tv_classes(tar.extractfile(member), what)
            self.tv_meta = True
        else:
            self.tv_batches[base] = _unpickle_batch(tar.extractfile(member), what)

    def _add_image(self, tar: tarfile.TarFile, member: tarfile.TarInfo,
                   parts: tuple[str, ...]) -> None:
        split, cls = parts[-3], parts[-2]
        name = "/".join(parts)
        if name in self.names:
            raise DataError(f"the archive {show_path(self.path)} holds {name} twice. "
                            "Get a fresh copy.")
        self.names.add(name)
        self.roots[parts[:-3]] = self.roots.get(parts[:-3], 0) + 1
        self.found[split].add(cls)
        if not self.names_only:
            self.items[split].append((cls, name, tar.extractfile(member).read()))

    def data(self) -> CifarData | None:
        """The data set the archive holds, once it is checked whole (None with names_only)."""
        shown = show_path(self.path)
        if len(self.roots) > 1:
            where = ", ".join(("/".join(r) or "(top level)") + "/" for r in sorted(self.roots))
            raise DataError(f"the archive {shown} holds {len(self.roots)} copies of an image "
                            f"folder ({where}): keep one")
        if self.tv_batches or self.tv_meta:
            if self.roots:
                raise DataError(f"the archive {shown} holds both torchvision's batches and an "
                                "image folder: keep one")
            missing = [f for f in TV_FILES[:-1] if f not in self.tv_batches]
            missing += [] if self.tv_meta else ["batches.meta"]
            if missing:
                raise DataError(f"the archive {shown} lacks {missing}: it is incomplete. "
                                "Get a fresh copy.")
            return None if self.names_only else _tv_data(self.tv_batches, self.label)
        check_classes(self.found, self.label)
        if self.names_only:
            return None
        # Archive order is arbitrary; sort by class (stably) so every load gives the same arrays.
        for split in self.items:
            self.items[split].sort(key=lambda t: t[0])
        return _assemble(self.items, self.label)
