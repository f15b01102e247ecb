"""Where CIFAR-10 comes from: choosing a source, checking it, and the decoded cache.

Sources (argument `source`, else the RESNET_NB_DATA environment variable):

    "torchvision"      download with torchvision (needs the internet), the default
    a folder           torchvision's `cifar-10-batches-py`, or an image folder
                       train/<class>/*, test/<class>/*
    a .tar.gz file     an archive of either of those
    "synthetic"        random class patterns, for unit tests only; never chosen silently

Images are decoded once (readers.py reads the formats) and cached as uint8 tensors
(N, 3, 32, 32); a second load reads the cache. The source used is printed at load time.

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
import os
from pathlib import Path

import torch

from .data import CLASSES, FULL_PER_CLASS, HOW_TO_POINT, CifarData, DataError, ImageSet
from .files import (NotWritable, atomic_write, check_writable, locked_temp_dir, reason,
                    remove_leftovers, show_path)
from .readers import (TV_FILES, check_classes, check_set, find_image_root, find_tv_folder,
                      read_archive, read_image_folder, read_tv_folder, visible)

# 2: labels from class names (not folder order), macOS metadata ignored, copies checked.
_CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """RESNET_NB_CACHE, else ~/.cache/resnet_nb (outside the repository, never committed)."""
    env = os.environ.get("RESNET_NB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "resnet_nb"


def describe_source(source: str | os.PathLike | None = None) -> str:
    """Which source `load_cifar10(source)` would use, without loading anything."""
    spec = source_spec(source)
    if spec in ("torchvision", "synthetic"):
        return spec if spec == "synthetic" else "torchvision (downloads CIFAR-10 when online)"
    path = Path(spec).expanduser()
    if not path.exists():
        return f"{show_path(path)} (MISSING: {HOW_TO_POINT})"
    return f"{_kind_of(path)} {show_path(path)}"


def check_source(source: str | os.PathLike | None = None) -> str:
    """describe_source, after the checks that need no decoding; DataError if one fails.

    An image folder: its class folders are listed and must be CIFAR-10's ten. An archive:
    its member names are read (so a truncated archive fails here) and must hold one copy
    of the image folder or of torchvision's batches. Images are not decoded (the load
    checks them). For `python -m resnet_nb info`.
    """
    text = describe_source(source)
    if "(MISSING" in text:
        raise DataError(f"no CIFAR-10 copy at {source_spec(source)!r}. {HOW_TO_POINT}")
    spec = source_spec(source)
    if spec in ("torchvision", "synthetic"):
        return text
    path = Path(spec).expanduser()
    kind = _kind_of(path)
    label = f"{kind} {show_path(path)}"
    if kind == "image folder":
        root = find_image_root(path)
        check_classes({split: {p.name for p in (root / split).iterdir()
                               if p.is_dir() and visible(p.name)}
                       for split in ("train", "test")}, label)
    elif kind == "archive":
        read_archive(path, label, names_only=True)
    return text


def source_spec(source) -> str:
    """The source asked for: `source`, else RESNET_NB_DATA, else "torchvision"."""
    if source is None:
        source = os.environ.get("RESNET_NB_DATA") or "torchvision"
    return os.fspath(source)


def _kind_of(path: Path) -> str:
    if path.is_dir():
        if find_tv_folder(path) is not None:
            return "torchvision folder"
        if find_image_root(path) is not None:
            return "image folder"
        raise DataError(f"{show_path(path)} holds neither torchvision's 'cifar-10-batches-py' nor "
                        f"train/<class>/ and test/<class>/ folders. {HOW_TO_POINT}")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return "archive"
    raise DataError(f"{show_path(path)} is not a folder or a .tar.gz archive. {HOW_TO_POINT}")


def load(spec: str, cache_dir: str | os.PathLike | None = None, verbose: bool = True
         ) -> CifarData:
    """data.load_cifar10 for a source other than "synthetic": from the cache, else decoded
    (and cached for the next load)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
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
    label = f"{kind} {show_path(path)}"
    remove_leftovers(cache)        # temporary files of loads that were killed
    if cache_file.exists():
        data = _from_cache(cache_file, label, verbose)
        if data is not None:
            return data
    return _decode_once(path, kind, label, cache_file, verbose)


def _from_cache(cache_file: Path, label: str, verbose: bool) -> CifarData | None:
    """The cached data, or None (and the file removed) if the cache cannot be used."""
    try:
        data = _read_cache(cache_file, label)
    except Exception as e:  # a damaged or unreadable cache is decoded again, never trusted
        try:
            cache_file.unlink()
        except FileNotFoundError:
            pass
        except OSError as kept:   # a class's shared, read-only cache: refuse it in one line
            raise DataError(      # rather than have every student's kernel decode again
                f"the shared data cache {show_path(cache_file)} is damaged ({reason(e)}) and "
                f"cannot be replaced here ({kept.strerror}): ask whoever set up "
                "RESNET_NB_CACHE to decode CIFAR-10 into it again, or set RESNET_NB_CACHE "
                "to a folder of your own") from None
        _say(verbose, f"data: the cache file {cache_file.name} cannot be used ({reason(e)}); "
                      "decoding again")
        return None
    _say(verbose, f"data: {data} (decoded cache)")
    _say_note(verbose, _check_counts(data, label))
    return data


def _decode_once(path: Path, kind: str, label: str, cache_file: Path, verbose: bool
                 ) -> CifarData:
    """Decode and check the copy at `path`, and cache it in `cache_file` if that can be written."""
    # Try the cache folder before the decode, so that a cache that cannot be written does
    # not throw the decoded images away afterwards.
    try:
        check_writable(cache_file.parent, "the data cache")
        writable = True
        _say(verbose, f"data: decoding {label} once; later loads use the cache ...")
    except NotWritable as e:
        writable = False
        _say(verbose, f"data: {e}: decoding {label} into memory only, so the next load decodes "
                      "again (set RESNET_NB_CACHE to a folder you can write to keep a cache)")
    if kind == "torchvision folder":
        data = read_tv_folder(find_tv_folder(path), label)
    elif kind == "image folder":
        data = read_image_folder(find_image_root(path), label)
    else:
        data = read_archive(path, label)
    note = _check_counts(data, label)
    if writable:
        try:
            _write_cache(cache_file, data)
        except OSError as e:   # a full disk, a folder that became read-only ...
            _say(verbose, f"data: could not write the cache {show_path(cache_file)} "
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
        folder = find_tv_folder(path)
        for name in TV_FILES:
            add(name, (folder / name).stat())
    elif kind == "image folder":
        root = find_image_root(path)
        for split in ("train", "test"):
            for cls in sorted(os.scandir(root / split), key=lambda e: e.name):
                if not (visible(cls.name) and cls.is_dir()):
                    continue
                h.update(f"{split}/{cls.name}/\n".encode())
                for f in sorted(os.scandir(cls.path), key=lambda e: e.name):
                    if visible(f.name):
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


def _read_cache(cache_file: Path, label: str) -> CifarData:
    """The cached arrays, checked: a cache is read back only if it is what we wrote."""
    d = torch.load(cache_file, weights_only=True)
    if not isinstance(d, dict) or d.get("version") != _CACHE_VERSION:
        raise ValueError("not a cache file of this version")
    for split in ("train", "test"):
        check_set(d.get(f"{split}_images"), d.get(f"{split}_labels"), split)
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


def _download_torchvision(root: Path) -> Path:
    """Download with torchvision into a temporary folder; move it in place only when complete."""
    final = root / "cifar-10-batches-py"
    if find_tv_folder(final) is not None:
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
        if find_tv_folder(tmp / "cifar-10-batches-py") is None:
            raise DataError(f"the CIFAR-10 download was incomplete. {HOW_TO_POINT}")
        try:
            os.replace(tmp / "cifar-10-batches-py", final)
        except OSError:
            if find_tv_folder(final) is None:   # not another process's finished download
                raise
    return final
