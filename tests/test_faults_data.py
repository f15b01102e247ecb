"""Faults and bad input in the data (issue 9): wrong copies are refused with a line naming
what differs, good copies with macOS metadata load, and a cache that cannot be written or
read never throws the decoded images away."""
import errno
import io
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb import data as D
from resnet_nb import readers, sources
from resnet_nb.data import CifarData, DataError, ImageSet, load_cifar10

CLASSES = D.CLASSES


def make_folder(root, n_train=2, n_test=1, classes=CLASSES, seed=0):
    """train/<class>/NNNN.png and test/<class>/NNNN.png, random pixels; returns the pixels."""
    rng = np.random.default_rng(seed)
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i:04d}.png")
                truth[f"{split}/{c}/{i:04d}.png"] = a
    return truth


def tar_of(src, arcname, out):
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return out


def check_is(data, truth):
    """Every image is where its file says, with the label of its class folder."""
    for split, s in (("train", data.train), ("test", data.test)):
        for c in CLASSES:
            want = [a for name, a in sorted(truth.items()) if name.startswith(f"{split}/{c}/")]
            got = s.images[s.labels == CLASSES.index(c)].permute(0, 2, 3, 1).numpy()
            assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


# --- 1. silently wrong data ----------------------------------------------------------------

def test_a_missing_class_folder_is_refused_naming_it(tmp_path):
    make_folder(tmp_path / "c", classes=[c for c in CLASSES if c != "cat"])
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "c", verbose=False)
    message = str(info.value)
    assert "train/ lacks cat" in message and "test/ lacks cat" in message
    assert not list((tmp_path / "cache").glob("*.pt"))     # nothing wrong was cached


def test_an_extra_class_folder_is_refused_naming_it(tmp_path):
    make_folder(tmp_path / "c")
    make_folder(tmp_path / "c", classes=["unicorn"], seed=1)
    with pytest.raises(DataError, match="has unicorn, which is not a CIFAR-10 class"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_an_archive_with_a_missing_class_is_refused(tmp_path):
    make_folder(tmp_path / "src", classes=CLASSES[:-1])
    archive = tar_of(tmp_path / "src", "cifar", tmp_path / "c.tar.gz")
    with pytest.raises(DataError, match="lacks truck"):
        load_cifar10(archive, verbose=False)


def test_an_archive_holding_two_copies_is_refused(tmp_path):
    make_folder(tmp_path / "src")
    with tarfile.open(tmp_path / "two.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="cifar10")
        tar.add(tmp_path / "src", arcname="backup/cifar10")
    with pytest.raises(DataError, match=r"holds 2 copies of an image folder \(backup/cifar10/, "
                                        r"cifar10/\)"):
        load_cifar10(tmp_path / "two.tar.gz", verbose=False)


def test_an_archive_holding_a_file_twice_is_refused(tmp_path):
    make_folder(tmp_path / "src")
    archive = tmp_path / "c.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src", arcname="cifar10")
        tar.add(tmp_path / "src" / "train" / "cat" / "0000.png",
                arcname="cifar10/train/cat/0000.png")
    with pytest.raises(DataError, match="holds cifar10/train/cat/0000.png twice"):
        load_cifar10(archive, verbose=False)


def test_a_folder_holding_two_copies_is_refused(tmp_path):
    make_folder(tmp_path / "c" / "copy1")
    make_folder(tmp_path / "c" / "copy2")
    with pytest.raises(DataError, match=r"holds 2 copies of an image folder \(copy1/, copy2/\)"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_images_of_another_size_are_refused_naming_the_file(tmp_path):
    make_folder(tmp_path / "c")
    Image.new("RGB", (64, 48)).save(tmp_path / "c" / "test" / "dog" / "0000.png")
    with pytest.raises(DataError, match=r"image test/dog/0000.png in image folder \S+ is 64x48, "
                                        r"not 32x32"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_a_torchvision_batch_with_other_class_names_is_refused(tmp_path):
    folder = make_tv(tmp_path / "tv")
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in
                                                                        range(100)]}))
    with pytest.raises(DataError, match="not CIFAR-10's"):
        load_cifar10(tmp_path / "tv", verbose=False)


# --- counts ----------------------------------------------------------------------------------

def fake(train_counts, test_counts):
    """A CifarData with the given images per class (views of one image: no memory used)."""
    def part(counts):
        labels = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(counts)])
        return ImageSet(torch.zeros(1, 3, 32, 32, dtype=torch.uint8).expand(len(labels), -1, -1,
                                                                             -1), labels)
    return CifarData(part(train_counts), part(test_counts), source="test copy")


def test_counts_of_the_full_set_pass_silently():
    assert sources._check_counts(fake([5000] * 10, [1000] * 10), "x") is None


def test_more_images_than_cifar10_has_are_refused():
    with pytest.raises(DataError, match=r"train has more images of a class than CIFAR-10's "
                                        r"5,000 \(cat 5,001\)"):
        sources._check_counts(fake([5000, 5000, 5000, 5001] + [5000] * 6, [1000] * 10), "x")


def test_a_full_copy_missing_some_images_is_refused():
    with pytest.raises(DataError, match=r"test is incomplete: dog 999 of 1,000 images"):
        sources._check_counts(fake([5000] * 10, [1000] * 5 + [999] + [1000] * 4), "x")


def test_a_small_copy_loads_and_says_how_small(tmp_path, capsys):
    make_folder(tmp_path / "c", n_train=3, n_test=2)
    data = load_cifar10(tmp_path / "c")
    assert len(data.train) == 30
    out = capsys.readouterr().out
    assert ("NOTE: a partial copy of CIFAR-10: train 30 of 50,000 images (3 per class), "
            "test 20 of 10,000 images (2 per class)") in out
    load_cifar10(tmp_path / "c")        # from the cache: said again
    assert "NOTE: a partial copy" in capsys.readouterr().out


# --- 2. good copies with macOS metadata ------------------------------------------------------

def add_macos_metadata(root):
    for split in ("train", "test"):
        for c in ("cat", "ship"):
            (root / split / c / "._0000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (root / split / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    mac = root / "__MACOSX" / "train" / "cat"
    mac.mkdir(parents=True)
    (mac / "._0000.png").write_bytes(b"\x00\x05\x16\x07")


def test_macos_metadata_beside_an_image_folder_is_ignored(tmp_path):
    truth = make_folder(tmp_path / "c")
    add_macos_metadata(tmp_path / "c")
    check_is(load_cifar10(tmp_path / "c", verbose=False), truth)


def test_macos_metadata_in_an_archive_is_ignored(tmp_path):
    truth = make_folder(tmp_path / "src" / "cifar10")
    add_macos_metadata(tmp_path / "src" / "cifar10")
    # The way macOS's "Compress" lays it out: the copy, and __MACOSX/ beside it.
    (tmp_path / "src" / "__MACOSX" / "cifar10" / "train" / "dog").mkdir(parents=True)
    (tmp_path / "src" / "__MACOSX" / "cifar10" / "train" / "dog" / "._0001.png").write_bytes(b"x")
    archive = tar_of(tmp_path / "src", ".", tmp_path / "mac.tar.gz")
    check_is(load_cifar10(archive, verbose=False), truth)


def test_a_decode_error_names_the_file(tmp_path):
    make_folder(tmp_path / "c")
    (tmp_path / "c" / "train" / "frog" / "0001.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match=r"cannot decode image train/frog/0001.png in image "
                                        r"folder .*c \(UnidentifiedImageError: cannot identify "
                                        r"image file\); the copy is damaged") as info:
        load_cifar10(tmp_path / "c", verbose=False)
    assert "BytesIO" not in str(info.value) and " at 0x" not in str(info.value)
    archive = tar_of(tmp_path / "c", "cifar", tmp_path / "c.tar.gz")
    with pytest.raises(DataError, match=r"cannot decode image cifar/train/frog/0001.png in "
                                        r"archive .*c.tar.gz \(") as info:
        load_cifar10(archive, verbose=False)
    assert "BytesIO" not in str(info.value)


# --- torchvision's format: damaged batches -------------------------------------------------

def make_tv(root, n=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in readers.TV_FILES[:-1]:
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return folder


def test_a_truncated_torchvision_batch_names_the_file(tmp_path):
    folder = make_tv(tmp_path / "tv")
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"data_batch_3 in torchvision folder .* is damaged, "
                                        r"truncated or not a CIFAR-10 batch"):
        load_cifar10(tmp_path / "tv", verbose=False)


class NotAnArray:
    def __reduce__(self):   # what a malicious pickle does: call something on load
        return (os.getpid, ())


def test_a_torchvision_batch_holding_objects_is_refused(tmp_path):
    folder = make_tv(tmp_path / "tv")
    (folder / "test_batch").write_bytes(pickle.dumps({"data": NotAnArray(), "labels": []}))
    with pytest.raises(DataError, match="it holds a (posix|nt).getpid object, not arrays"):
        load_cifar10(tmp_path / "tv", verbose=False)


# --- 4. the cache: checked before the decode, never the reason to lose it ------------------

def test_a_cache_that_cannot_be_written_decodes_into_memory_and_says_so(tmp_path, monkeypatch,
                                                                         capsys):
    truth = make_folder(tmp_path / "c")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    decoded = []
    real_decode = readers._decode
    monkeypatch.setattr(readers, "_decode", lambda raw, name: decoded.append(name) or
                        real_decode(raw, name))
    check_is(load_cifar10(tmp_path / "c", cache_dir=blocked), truth)
    out = capsys.readouterr().out
    assert "not-a-folder is a file, not a folder" in out
    assert "into memory only" in out and "RESNET_NB_CACHE" in out
    assert len(decoded) == 30            # decoded once, and the images were kept


def test_a_full_disk_while_caching_keeps_the_data_and_says_so(tmp_path, full_disk, capsys):
    """A real full disk: torch.save hides the ENOSPC in a RuntimeError ("unexpected pos")."""
    truth = make_folder(tmp_path / "c")
    full_disk.free = 4096                 # the cache file is about 100 kB
    data = load_cifar10(tmp_path / "c")
    check_is(data, truth)
    assert "could not write the cache" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []    # no half file, no temp


def test_a_class_deleted_after_caching_is_refused_not_read_from_the_cache(tmp_path):
    make_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)              # cached
    for split in ("train", "test"):
        for f in (tmp_path / "c" / split / "cat").iterdir():
            f.unlink()
        (tmp_path / "c" / split / "cat").rmdir()
    with pytest.raises(DataError, match="train/ lacks cat; test/ lacks cat"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_an_image_replaced_after_caching_is_decoded_again(tmp_path, capsys):
    truth = make_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)              # cached
    new = np.full((32, 32, 3), 7, dtype=np.uint8)
    image = tmp_path / "c" / "train" / "dog" / "0001.png"
    stamp = image.stat().st_mtime_ns
    Image.fromarray(new).save(image)
    os.utime(image, ns=(stamp, stamp + 10**9))       # file systems with coarse times
    truth["train/dog/0001.png"] = new
    check_is(load_cifar10(tmp_path / "c"), truth)
    assert "decoded cache" not in capsys.readouterr().out


def test_a_download_into_a_cache_that_cannot_be_written_is_one_clear_error(tmp_path,
                                                                          monkeypatch):
    import torchvision
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", lambda *a, **k: pytest.fail(
        "no download should start"))
    with pytest.raises(DataError, match=r"cannot write the data cache .*, so CIFAR-10 cannot "
                                        r"be downloaded into it. Set RESNET_NB_CACHE"):
        load_cifar10("torchvision", cache_dir=blocked, verbose=False)


def test_cache_files_are_readable_by_others(tmp_path):
    make_folder(tmp_path / "c")
    old = os.umask(0o022)
    try:
        load_cifar10(tmp_path / "c", verbose=False)
    finally:
        os.umask(old)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    assert cache_file.stat().st_mode & 0o777 == 0o644


def test_an_unreadable_cache_is_decoded_again_and_said(tmp_path, monkeypatch, capsys):
    truth = make_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)
    real_load = torch.load

    def foreign(path, *a, **k):     # another user's cache file, mode 0600
        if "cifar10-" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_load(path, *a, **k)
    monkeypatch.setattr(torch, "load", foreign)
    check_is(load_cifar10(tmp_path / "c"), truth)
    assert "cannot be used (PermissionError: Permission denied); decoding again" in \
        capsys.readouterr().out


def test_a_cache_of_the_wrong_shape_is_never_used(tmp_path, capsys):
    truth = make_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    d = torch.load(cache_file, weights_only=True)
    d["train_labels"] = d["train_labels"][:-3]          # loads fine, but is wrong
    torch.save(d, cache_file)
    check_is(load_cifar10(tmp_path / "c"), truth)
    assert "decoding again" in capsys.readouterr().out


# --- 8. leftovers of killed loads, two loads at once ---------------------------------------

def test_leftover_temporary_cache_files_are_removed(tmp_path):
    make_folder(tmp_path / "c")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".tmp-cifar10-0123.pt.killed"       # a load killed while writing
    stale.write_bytes(b"half a cache")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = cache / ".tmp-cifar10-0123.pt.writing"       # another load, writing right now
    fresh.write_bytes(b"being written")
    load_cifar10(tmp_path / "c", verbose=False)
    assert not stale.exists() and fresh.exists()


def test_two_processes_filling_one_cache_at_once(tmp_path):
    truth = make_folder(tmp_path / "c", n_train=20, n_test=5)
    code = ("import sys, torch; from resnet_nb import load_cifar10; "
            "d = load_cifar10(sys.argv[1], verbose=False); "
            "print(int(d.train.images.long().sum()), int(d.test.labels.sum()))")
    env = {**os.environ, "RESNET_NB_CACHE": str(tmp_path / "shared-cache"),
           # the checkout first, then whatever the caller's path holds (mutmut's copy needs it)
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert results[0][0] == results[1][0]
    files = sorted(p.name for p in (tmp_path / "shared-cache").iterdir())
    assert len(files) == 1 and files[0].startswith("cifar10-")
    check_is(load_cifar10(tmp_path / "c", cache_dir=tmp_path / "shared-cache", verbose=False),
             truth)
