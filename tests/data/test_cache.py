"""The decoded uint8 cache (resnet_nb.sources): one entry per version of each source, read
instead of decoding again, written atomically and readable by others; a cache that cannot be
written or read, is damaged or tampered with never loses the decoded images or runs code."""
import errno
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb import readers, sources
from resnet_nb.data import CLASSES, DataError, load_cifar10, make_synthetic
from resnet_nb.files import show_path
from resnet_nb.sources import default_cache_dir


def test_two_copies_sharing_one_cache_folder_load_their_own_pixels(tmp_path, image_folder):
    a_first = image_folder(tmp_path / "a" / "cifar", n_train=2, n_test=2, seed=0)[
        "train/airplane/0000.png"]
    b_first = image_folder(tmp_path / "b" / "cifar", n_train=2, n_test=2, seed=1)[
        "train/airplane/0000.png"]
    # Same layout, same size on disk and the same modification time: only where they are
    # (and what they hold) tells them apart.
    stamp = os.stat(tmp_path / "a" / "cifar").st_mtime_ns
    for folder in (tmp_path / "a" / "cifar", tmp_path / "b" / "cifar"):
        os.utime(folder, ns=(stamp, stamp))
    assert os.stat(tmp_path / "a" / "cifar").st_size == os.stat(tmp_path / "b" / "cifar").st_size
    a = load_cifar10(tmp_path / "a" / "cifar", verbose=False)
    b = load_cifar10(tmp_path / "b" / "cifar", verbose=False)
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 2
    assert np.array_equal(a.train.images[0].permute(1, 2, 0).numpy(), a_first)
    assert np.array_equal(b.train.images[0].permute(1, 2, 0).numpy(), b_first)
    assert not torch.equal(a.train.images, b.train.images)
    # Loading again reads each one's own cache entry.
    assert torch.equal(load_cifar10(tmp_path / "a" / "cifar", verbose=False).train.images,
                       a.train.images)


def test_cache_second_load_reads_no_images(tmp_path, monkeypatch, capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "cifar", n_train=3, n_test=2)
    first = load_cifar10(tmp_path / "cifar")
    assert list((tmp_path / "cache").glob("cifar10-*.pt"))

    def no_decoding(*a, **k):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(readers, "_decode", no_decoding)
    capsys.readouterr()
    second = load_cifar10(tmp_path / "cifar")
    assert "decoded cache" in capsys.readouterr().out
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.labels, second.test.labels)
    same_images(second, truth)


def test_damaged_cache_is_rebuilt(tmp_path, image_folder):
    image_folder(tmp_path / "cifar", n_train=3, n_test=2)
    load_cifar10(tmp_path / "cifar", verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    cache_file.write_bytes(b"garbage")
    assert len(load_cifar10(tmp_path / "cifar", verbose=False).train) == 30


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_NB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RESNET_NB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "resnet_nb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnet_nb"


def test_cache_is_rebuilt_when_the_source_changes(tmp_path, image_folder):
    src = tmp_path / "cifar"
    image_folder(src, n_train=1, n_test=1)
    first = load_cifar10(src, verbose=False)
    # Replace the images (a new copy in the same place) and date the folder anew.
    for f in sorted(src.rglob("*.png")):
        f.unlink()
    image_folder(src, n_train=1, n_test=1, seed=5)
    os.utime(src, ns=(os.stat(src).st_atime_ns, os.stat(src).st_mtime_ns + 10**9))
    second = load_cifar10(src, verbose=False)
    assert not torch.equal(first.train.images, second.train.images)
    # One cache file per version of the source, and no temporary file left behind.
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and all(n.startswith("cifar10-") and n.endswith(".pt") for n in names)
    assert all(len(n) == len("cifar10-.pt") + 16 for n in names)


def test_archive_cache_follows_the_archive(tmp_path, image_folder):
    src = tmp_path / "a" / "cifar10"
    image_folder(src, n_train=1, n_test=1)
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar10")
    one = load_cifar10(archive, verbose=False)
    image_folder(tmp_path / "b" / "cifar10", n_train=1, n_test=1, seed=7)
    with tarfile.open(archive, "w:gz") as tar:             # same name, other images
        tar.add(tmp_path / "b" / "cifar10", arcname="cifar10")
    os.utime(archive, ns=(0, os.stat(archive).st_mtime_ns + 10**9))
    two = load_cifar10(archive, verbose=False)
    assert not torch.equal(one.train.images, two.train.images)
    assert one.source == "archive " + show_path(archive)


def test_a_tampered_cache_file_runs_no_code_and_is_rebuilt(tmp_path, image_folder, planted_object):
    src = tmp_path / "cifar"
    image_folder(src, n_train=1, n_test=1)
    first = load_cifar10(src, verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    planted = tmp_path / "planted"
    torch.save({"train_images": planted_object(str(planted))}, cache_file)
    again = load_cifar10(src, verbose=False)
    assert not planted.exists()                        # weights_only: no code ran
    assert torch.equal(again.train.images, first.train.images)


def test_the_cache_keeps_class_names_and_says_where_the_data_came_from(tmp_path, capsys, image_folder):
    src = tmp_path / "x"
    image_folder(src, n_train=1, n_test=1, seed=3)
    first = load_cifar10(src)
    assert "decoding image folder" in capsys.readouterr().out
    second = load_cifar10(src)
    assert "decoded cache" in capsys.readouterr().out
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    assert torch.load(cache_file, weights_only=True)["classes"] == list(CLASSES)
    assert second.classes == CLASSES and second.source == first.source
    assert second.source == "image folder " + show_path(src)
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_the_cache_is_written_through_a_hidden_temporary_file_beside_it(tmp_path, monkeypatch,
                                                                      capsys, image_folder):
    src = tmp_path / "cifar"
    image_folder(src, n_train=1, n_test=1)
    cache = tmp_path / "deep" / "er" / "cache"                   # made, parents and all
    written = []
    real_save = torch.save

    def spy(obj, f, *a, **k):
        # torch.save gets an open file: find which file in the cache folder it is.
        inode = os.fstat(f.fileno()).st_ino
        written.append([p for p in cache.iterdir() if p.stat().st_ino == inode])
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", spy)
    first = load_cifar10(src, cache_dir=cache, verbose=False)
    ((tmp,),) = written
    # Beside the cache entry (so the final rename is atomic), hidden, never a cifar10-*.pt.
    assert tmp.parent == cache and tmp.name.startswith(".") and not tmp.name.startswith("cifar10-")
    assert [p.name.startswith("cifar10-") for p in cache.iterdir()] == [True]

    def fails(obj, f, *a, **k):                                 # a full disk, say
        f.write(b"half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", fails)
    capsys.readouterr()
    # The decoded images are not thrown away: they are used from memory, and that is said.
    again = load_cifar10(src, cache_dir=tmp_path / "other")
    out = capsys.readouterr().out
    assert "could not write the cache" in out and "No space left on device" in out
    assert "in memory only" in out
    assert torch.equal(again.train.images, first.train.images)
    assert torch.equal(again.test.labels, first.test.labels)
    assert list((tmp_path / "other").iterdir()) == []           # nothing half-written is left


def test_a_cache_that_cannot_be_written_decodes_into_memory_and_says_so(tmp_path, monkeypatch,
                                                                         capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "c")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    decoded = []
    real_decode = readers._decode
    monkeypatch.setattr(readers, "_decode", lambda raw, name: decoded.append(name) or
                        real_decode(raw, name))
    same_images(load_cifar10(tmp_path / "c", cache_dir=blocked), truth)
    out = capsys.readouterr().out
    assert "not-a-folder is a file, not a folder" in out
    assert "into memory only" in out and "RESNET_NB_CACHE" in out
    assert len(decoded) == 30            # decoded once, and the images were kept


def test_a_full_disk_while_caching_keeps_the_data_and_says_so(tmp_path, full_disk, capsys, image_folder, same_images):
    """A real full disk: torch.save hides the ENOSPC in a RuntimeError ("unexpected pos")."""
    truth = image_folder(tmp_path / "c")
    full_disk.free = 4096                 # the cache file is about 100 kB
    data = load_cifar10(tmp_path / "c")
    same_images(data, truth)
    assert "could not write the cache" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []    # no half file, no temp


def test_a_class_deleted_after_caching_is_refused_not_read_from_the_cache(tmp_path, image_folder):
    image_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)              # cached
    for split in ("train", "test"):
        for f in (tmp_path / "c" / split / "cat").iterdir():
            f.unlink()
        (tmp_path / "c" / split / "cat").rmdir()
    with pytest.raises(DataError, match="train/ lacks cat; test/ lacks cat"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_an_image_replaced_after_caching_is_decoded_again(tmp_path, capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)              # cached
    new = np.full((32, 32, 3), 7, dtype=np.uint8)
    image = tmp_path / "c" / "train" / "dog" / "0001.png"
    stamp = image.stat().st_mtime_ns
    Image.fromarray(new).save(image)
    os.utime(image, ns=(stamp, stamp + 10**9))       # file systems with coarse times
    truth["train/dog/0001.png"] = new
    same_images(load_cifar10(tmp_path / "c"), truth)
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


def test_cache_files_are_readable_by_others(tmp_path, image_folder):
    image_folder(tmp_path / "c")
    old = os.umask(0o022)
    try:
        load_cifar10(tmp_path / "c", verbose=False)
    finally:
        os.umask(old)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    assert cache_file.stat().st_mode & 0o777 == 0o644


def test_an_unreadable_cache_is_decoded_again_and_said(tmp_path, monkeypatch, capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)
    real_load = torch.load

    def foreign(path, *a, **k):     # another user's cache file, mode 0600
        if "cifar10-" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_load(path, *a, **k)
    monkeypatch.setattr(torch, "load", foreign)
    same_images(load_cifar10(tmp_path / "c"), truth)
    assert "cannot be used (PermissionError: Permission denied); decoding again" in \
        capsys.readouterr().out


def test_a_cache_of_the_wrong_shape_is_never_used(tmp_path, capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "c")
    load_cifar10(tmp_path / "c", verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    d = torch.load(cache_file, weights_only=True)
    d["train_labels"] = d["train_labels"][:-3]          # loads fine, but is wrong
    torch.save(d, cache_file)
    same_images(load_cifar10(tmp_path / "c"), truth)
    assert "decoding again" in capsys.readouterr().out


def test_leftover_temporary_cache_files_are_removed(tmp_path, image_folder):
    image_folder(tmp_path / "c")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".tmp-cifar10-0123.pt.killed"       # a load killed while writing
    stale.write_bytes(b"half a cache")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = cache / ".tmp-cifar10-0123.pt.writing"       # another load, writing right now
    fresh.write_bytes(b"being written")
    load_cifar10(tmp_path / "c", verbose=False)
    assert not stale.exists() and fresh.exists()


@pytest.mark.slow
def test_two_processes_filling_one_cache_at_once(tmp_path, image_folder, same_images):
    truth = image_folder(tmp_path / "c", n_train=20, n_test=5)
    code = ("import sys, torch; from resnet_nb import load_cifar10; "
            "d = load_cifar10(sys.argv[1], verbose=False); "
            "print(int(d.train.images.long().sum()), int(d.test.labels.sum()))")
    env = {**os.environ, "RESNET_NB_CACHE": str(tmp_path / "shared-cache"),
           # the checkout first, then whatever the caller's path holds (mutmut's copy needs it)
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert results[0][0] == results[1][0]
    files = sorted(p.name for p in (tmp_path / "shared-cache").iterdir())
    assert len(files) == 1 and files[0].startswith("cifar10-")
    same_images(load_cifar10(tmp_path / "c", cache_dir=tmp_path / "shared-cache", verbose=False),
             truth)


def test_a_cache_of_another_version_is_not_read(tmp_path):
    # _read_cache 7: a dict of another version must be refused, not read
    data = make_synthetic(20, 10)
    cache = tmp_path / "c.pt"
    sources._write_cache(cache, data)
    assert torch.equal(sources._read_cache(cache, "x").train.images, data.train.images)
    d = torch.load(cache, weights_only=True)
    d["version"] = sources._CACHE_VERSION + 1
    torch.save(d, cache)
    with pytest.raises(ValueError, match="not a cache file of this version"):
        sources._read_cache(cache, "x")
