"""The data module piece by piece: naming sources, the cache's key and files, the readers'
edge cases, the synthetic classes and Batches' sizes."""
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb.data import (CLASSES, Batches, CifarData, DataError, ImageSet, load_cifar10,
                            make_synthetic)
from resnet_nb.files import show_path
from resnet_nb.readers import TV_FILES
from resnet_nb.sources import default_cache_dir, describe_source


def image_folder(root, n=1, seed=0, suffix=".png", classes=CLASSES):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    root / split / c / f"{i}{suffix}")
    return root


def tv_folder(root, n=2):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in TV_FILES[:-1]:
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [1] * n}
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return folder


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_NB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RESNET_NB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "resnet_nb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnet_nb"


def test_describe_source_names_each_kind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RESNET_NB_DATA", raising=False)
    assert describe_source() == "torchvision (downloads CIFAR-10 when online)"
    assert describe_source("synthetic") == "synthetic"
    monkeypatch.setenv("RESNET_NB_DATA", "synthetic")
    assert describe_source() == "synthetic"
    assert describe_source("nowhere").startswith("nowhere (MISSING: Point RESNET_NB_DATA")
    image_folder(tmp_path / "imgs")
    assert describe_source("imgs") == "image folder imgs"
    tv_folder(tmp_path / "tv")
    assert describe_source(tmp_path / "tv") == "torchvision folder tv"
    for name in ("c.tar.gz", "c.tgz", "c.tar"):
        (tmp_path / name).write_bytes(b"")
        assert describe_source(name) == f"archive {name}"
    (tmp_path / "c.zip").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder or a .tar.gz"):
        describe_source("c.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither"):
        describe_source("empty")


def test_paths_are_shown_without_this_machines_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert show_path(tmp_path / "a" / "b") == os.path.join("a", "b")
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert show_path(tmp_path / "x" / "y.tar.gz") == ".../x/y.tar.gz"


def test_cache_is_rebuilt_when_the_source_changes(tmp_path):
    src = image_folder(tmp_path / "cifar")
    first = load_cifar10(src, verbose=False)
    # Replace the images (a new copy in the same place) and date the folder anew.
    for f in sorted(src.rglob("*.png")):
        f.unlink()
    image_folder(src, seed=5)
    os.utime(src, ns=(os.stat(src).st_atime_ns, os.stat(src).st_mtime_ns + 10**9))
    second = load_cifar10(src, verbose=False)
    assert not torch.equal(first.train.images, second.train.images)
    # One cache file per version of the source, and no temporary file left behind.
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and all(n.startswith("cifar10-") and n.endswith(".pt") for n in names)
    assert all(len(n) == len("cifar10-.pt") + 16 for n in names)


def test_archive_cache_follows_the_archive(tmp_path):
    src = image_folder(tmp_path / "a" / "cifar10")
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar10")
    one = load_cifar10(archive, verbose=False)
    image_folder(tmp_path / "b" / "cifar10", seed=7)
    with tarfile.open(archive, "w:gz") as tar:             # same name, other images
        tar.add(tmp_path / "b" / "cifar10", arcname="cifar10")
    os.utime(archive, ns=(0, os.stat(archive).st_mtime_ns + 10**9))
    two = load_cifar10(archive, verbose=False)
    assert not torch.equal(one.train.images, two.train.images)
    assert one.source == "archive " + show_path(archive)


def test_image_folder_reader_edge_cases(tmp_path):
    src = image_folder(tmp_path / "cifar", suffix=".PNG")  # upper-case suffixes count
    (src / "train" / "cat" / "notes.txt").write_text("not an image")
    Image.fromarray(np.full((32, 32), 77, dtype=np.uint8)).save(src / "train" / "dog" / "grey.bmp")
    data = load_cifar10(src, verbose=False)
    assert len(data.train) == 11 and len(data.test) == 10
    grey = data.train.images[data.train.labels == CLASSES.index("dog")]
    assert any(bool((img == 77).all()) for img in grey)          # grey -> 3 equal channels
    assert data.classes == CLASSES and data.source == "image folder " + show_path(src)


def test_image_folder_errors(tmp_path):
    src = image_folder(tmp_path / "a")
    (src / "train" / "extra").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "train" / "extra" / "0.png")
    # The one difference from CIFAR-10's ten classes is named, and nothing else.
    with pytest.raises(DataError, match=r"^image folder \S+: train/ has extra, which is not a "
                                        r"CIFAR-10 class\. CIFAR-10 has exactly ten class "
                                        r"folders in train/ and test/: airplane, automobile,"):
        load_cifar10(src, verbose=False)
    big = image_folder(tmp_path / "b")
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(big / "test" / "airplane" / "0.png")
    with pytest.raises(DataError, match=r"image test/airplane/0\.png in \S+ \S+ \S+ is 30x40, not "
                                        r"32x32"):
        load_cifar10(big, verbose=False)
    empty = tmp_path / "c"
    for split in ("train", "test"):
        for c in CLASSES:
            (empty / split / c).mkdir(parents=True)
    for c in CLASSES:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(empty / "train" / c / "0.png")
    with pytest.raises(DataError) as info:
        load_cifar10(empty, verbose=False)
    want = ", ".join(f"test/{c}/" for c in CLASSES)            # every test class, no train one
    assert re.match(rf"image folder \S+: {re.escape(want)} hold\(s\) no images\. ",
                    str(info.value)), str(info.value)


def test_labels_come_from_the_class_names_not_the_folder_order(tmp_path):
    """airplane=0 ... truck=9, whatever order the folders are listed or archived in, and
    whatever else (macOS metadata) lies beside them."""
    src = tmp_path / "x"
    fill = {c: 20 * k + 7 for k, c in enumerate(CLASSES)}     # each class its own pixel value
    for split in ("train", "test"):
        for c in reversed(CLASSES):                             # created in reverse order
            (src / split / c).mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), fill[c], np.uint8)).save(src / split / c / "0.png")
        # Sorted among the class folders, this would come first and shift folder-order labels.
        (src / split / "__MACOSX").mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / split / "__MACOSX" / "0.png")
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:                  # members in reverse order too
        for f in sorted(src.rglob("*.png"), reverse=True):
            tar.add(f, arcname=f"x/{f.relative_to(src).as_posix()}")
    for source in (src, archive):
        data = load_cifar10(source, cache_dir=tmp_path / "cache", verbose=False)
        assert data.classes == CLASSES
        for s in (data.train, data.test):
            assert s.labels.tolist() == list(range(10))
            assert [int(img[0, 0, 0]) for img in s.images] == [fill[c] for c in CLASSES]
            assert all(bool((img == img[0, 0, 0]).all()) for img in s.images)


def test_incomplete_torchvision_archive(tmp_path):
    folder = tv_folder(tmp_path / "tv")
    (folder / "data_batch_3").unlink()
    archive = tmp_path / "tv.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"^the archive \S*tv\.tar\.gz lacks \['data_batch_3'\]: "
                                        r"it is incomplete\."):
        load_cifar10(archive, verbose=False)
    (folder / "batches.meta").unlink()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"^the archive \S*tv\.tar\.gz lacks \['data_batch_3', "
                                        r"'batches\.meta'\]: it is incomplete\."):
        load_cifar10(archive, verbose=False)


def test_torchvision_download_is_moved_in_place_once(tmp_path, monkeypatch):
    import torchvision
    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            assert download is True
            calls.append(root)
            tv_folder(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = load_cifar10("torchvision", cache_dir=tmp_path / "cache", verbose=False)
    assert len(data.train) == 10 and data.source.startswith("torchvision folder")
    assert (tmp_path / "cache" / "torchvision" / "cifar-10-batches-py" / "test_batch").is_file()
    assert [p.name for p in (tmp_path / "cache" / "torchvision").iterdir()] == \
        ["cifar-10-batches-py"]                                      # no temporary folder left
    load_cifar10("torchvision", cache_dir=tmp_path / "cache", verbose=False)
    assert len(calls) == 1                                           # not downloaded again
    # It downloads into a hidden folder beside the final one, so the move is one rename.
    assert Path(calls[0]).parent == tmp_path / "cache" / "torchvision"
    assert Path(calls[0]).name.startswith(".")

    class EmptyCIFAR10:
        def __init__(self, root, train=True, download=False):
            pass
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", EmptyCIFAR10)
    with pytest.raises(DataError, match="incomplete"):
        load_cifar10("torchvision", cache_dir=tmp_path / "other", verbose=False)
    assert list((tmp_path / "other" / "torchvision").iterdir()) == []
    # A later try, in the folder the failed one left, succeeds.
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    assert len(load_cifar10("torchvision", cache_dir=tmp_path / "other", verbose=False).test) == 2


def test_split_validation_bounds_and_seed():
    data = make_synthetic(50, 10)
    assert len(data.split_validation(49).train) == 1
    for bad in (0, 50, -1):
        with pytest.raises(ValueError, match="between 1 and 49"):
            data.split_validation(bad)
    a, b = data.split_validation(10, seed=0), data.split_validation(10, seed=1)
    assert torch.equal(a.val.images, data.split_validation(10, seed=0).val.images)
    assert not torch.equal(a.val.images, b.val.images)
    assert str(a) == "CIFAR-10 (train 40, val 10, test 10) from synthetic"
    assert str(make_synthetic(1200, 10)) == "CIFAR-10 (train 1,200, test 10) from synthetic"


def test_synthetic_classes_are_balanced_patterns_plus_noise():
    data = make_synthetic(1000, 200, seed=0)
    assert data.train.labels.bincount().tolist() == [100] * 10
    assert data.test.labels.bincount().tolist() == [20] * 10
    assert data.classes == CLASSES and data.source == "synthetic"
    assert not torch.equal(data.train.labels[:10], torch.arange(10))    # shuffled
    x = data.train.images.float() / 255
    means = torch.stack([x[data.train.labels == k].mean(0) for k in range(10)])
    # The noise: deviation about 0.25 (less where clamped at 0 or 1) around the class pattern.
    noise = (x - means[data.train.labels]).std()
    assert 0.17 < float(noise) < 0.26
    # The patterns differ between classes by more than the noise averaged over 100 images.
    assert float((means[0] - means[1]).abs().mean()) > 0.05
    assert torch.equal(make_synthetic(20, 5, seed=3).train.images,
                       make_synthetic(20, 5, seed=3).train.images)
    assert not torch.equal(make_synthetic(20, 5, seed=3).train.images,
                           make_synthetic(20, 5, seed=4).train.images)
    assert len(load_cifar10("synthetic", synthetic_size=(30, 20), verbose=False).test) == 20


def test_batches_sizes():
    data = ImageSet(torch.zeros(50, 3, 32, 32, dtype=torch.uint8), torch.arange(50))
    assert len(Batches(data, 64, train=True)) == 1                     # fewer than one batch
    assert torch.cat([y for _, y in Batches(data, 64, train=True)]).sort().values.tolist() == \
        list(range(50))
    assert len(Batches(data, 16, train=True)) == 3                     # 48 of 50, last dropped
    assert len(Batches(data, 16)) == 4 and len(Batches(data, 50)) == 1
    assert [len(y) for _, y in Batches(data, 16)] == [16, 16, 16, 2]
    x, _ = next(iter(Batches(data, 16, memory_format=torch.contiguous_format)))
    assert x.is_contiguous()
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Batches(data, 0)
    b = Batches(data, 16, train=True, seed=2)
    b.set_epoch(5)
    assert b.epoch == 5


class Py2Pickler(pickle._Pickler):
    """Writes text and bytes as Python 2 `str` (BINSTRING), as in torchvision's CIFAR-10
    pickles, which were made with Python 2: reading them needs encoding="latin1"."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _binstring(self, data: bytes):
        self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(data)

    dispatch[bytes] = lambda self, obj: Py2Pickler._binstring(self, obj)
    dispatch[str] = lambda self, obj: Py2Pickler._binstring(self, obj.encode("latin1"))


def py2_pickle(obj) -> bytes:
    import io
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def py2_tv_folder(root, n=3, names=CLASSES):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    truth = {}
    for name in TV_FILES[:-1]:
        # Pixels above 127 cannot be read as ASCII, which is what pickle assumes otherwise.
        data = rng.integers(128, 256, (n, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, n)]
        truth[name] = (data, labels)
        (folder / name).write_bytes(py2_pickle({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(py2_pickle({"label_names": list(names)}))
    return folder, truth


def _packed(folder, as_archive):
    if not as_archive:
        return folder
    archive = folder.parent / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


@pytest.mark.parametrize("as_archive", [False, True])
def test_torchvision_pickles_made_by_python_2(tmp_path, as_archive):
    folder, truth = py2_tv_folder(tmp_path / "tv")              # CIFAR-10's real, lower-case names
    with pytest.raises(UnicodeDecodeError):
        pickle.loads((folder / "data_batch_1").read_bytes())        # why latin1 is needed
    source = _packed(folder, as_archive)
    data = load_cifar10(source, verbose=False)
    want = torch.cat([torch.as_tensor(truth[f"data_batch_{i}"][0]) for i in range(1, 6)])
    assert torch.equal(data.train.images, want.view(-1, 3, 32, 32))
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert data.test.labels.tolist() == truth["test_batch"][1]
    assert data.classes == CLASSES
    kind = "archive" if as_archive else "torchvision folder"
    assert data.source == f"{kind} {show_path(source)}"
    # batches.meta's Python 2 strings are read as text (not bytes) and checked: other names
    # are refused, quoted as they are in the file.
    other, _ = py2_tv_folder(tmp_path / "upper", names=tuple(c.upper() for c in CLASSES))
    with pytest.raises(DataError, match=r"batches\.meta in .* names the classes \['AIRPLANE', "
                                        r"'AUTOMOBILE', .*'TRUCK'\], not CIFAR-10's"):
        load_cifar10(_packed(other, as_archive), verbose=False)


def test_torchvision_archive_without_its_test_batch(tmp_path):
    folder = tv_folder(tmp_path / "tv")
    (folder / "test_batch").unlink()
    archive = tmp_path / "tv.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"lacks \['test_batch'\]"):
        load_cifar10(archive, verbose=False)
    (folder / "batches.meta").unlink()
    with tarfile.open(archive, "w:gz") as tar:                       # batches, but no meta
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="lacks"):
        load_cifar10(archive, verbose=False)


@pytest.mark.parametrize("top", ["cifar10", None])
def test_an_archive_loads_the_same_arrays_as_its_folder(tmp_path, top):
    src = image_folder(tmp_path / "src", n=3, seed=2)
    # Other images in the archive are not CIFAR images and are skipped.
    for extra in ("samples/cat", "."):
        (src / extra).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / extra / "preview.png")
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if top:
            tar.add(src, arcname=top)
        else:                                                      # train/ and test/ at the top
            for split in ("train", "test"):
                tar.add(src / split, arcname=split)
            tar.add(src / "preview.png", arcname="preview.png")
    folder = load_cifar10(src, verbose=False)
    packed = load_cifar10(archive, verbose=False)
    assert torch.equal(packed.train.images, folder.train.images)
    assert torch.equal(packed.train.labels, folder.train.labels)
    assert torch.equal(packed.test.images, folder.test.images)
    assert packed.classes == folder.classes == CLASSES


def test_subset_edges():
    data = make_synthetic(40, 10)
    assert data.subset(train=40).train is data.train                 # all of it: the same set
    assert len(data.subset(train=1).train) == 1                       # one image is a subset
    assert torch.equal(data.subset(train=20).train.images,           # the default seed is 0
                       data.subset(train=20, seed=0).train.images)
    assert data.subset().train is data.train and data.subset().test is data.test


class _Planted:
    """Unpickling this calls os.makedirs(path): what a tampered cache file could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path,)


def test_a_tampered_cache_file_runs_no_code_and_is_rebuilt(tmp_path):
    src = image_folder(tmp_path / "cifar")
    first = load_cifar10(src, verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    planted = tmp_path / "planted"
    torch.save({"train_images": _Planted(str(planted))}, cache_file)
    again = load_cifar10(src, verbose=False)
    assert not planted.exists()                        # weights_only: no code ran
    assert torch.equal(again.train.images, first.train.images)


def test_the_cache_keeps_class_names_and_says_where_the_data_came_from(tmp_path, capsys):
    src = image_folder(tmp_path / "x", seed=3)
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


def test_messages_name_the_copy_and_the_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    only_train = tmp_path / "half"
    (only_train / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="neither"):
        load_cifar10(only_train, verbose=False)
    src = image_folder(tmp_path / "bad")
    (src / "train" / "airplane" / "0.png").write_bytes(b"not a png")
    # The file is named (its path in the copy), not an index.
    with pytest.raises(DataError, match=r"cannot decode image train/airplane/0\.png in image "
                                        r"folder \S+ \("):
        load_cifar10(src, verbose=False)
    (src / "train" / "extra").mkdir()
    with pytest.raises(DataError, match=r"^image folder bad: train/ has extra, which is not a "
                                        r"CIFAR-10 class\. "):
        load_cifar10(src, verbose=False)
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="bad")
        tar.add(src / "train" / "airplane" / "0.png", arcname="bad/train/extra/0.png")
    with pytest.raises(DataError, match=r"^archive bad\.tar\.gz: train/ has extra, which is "
                                        r"not a CIFAR-10 class\. "):
        load_cifar10(archive, verbose=False)
    (src / "train" / "extra").rmdir()
    with tarfile.open(archive, "w:gz") as tar:                   # in an archive: its member
        tar.add(src, arcname="bad")
    with pytest.raises(DataError, match=r"cannot decode image bad/train/airplane/0\.png in "
                                        r"archive \S+ \("):
        load_cifar10(archive, verbose=False)


def test_the_cache_is_written_through_a_hidden_temporary_file_beside_it(tmp_path, monkeypatch,
                                                                      capsys):
    src = image_folder(tmp_path / "cifar")
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
