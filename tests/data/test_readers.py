"""resnet_nb.readers: CIFAR-10 from an image folder, a torchvision folder or an archive of
either. Good copies load pixel for pixel (also with macOS metadata, upper-case suffixes, Python 2
pickles); wrong or damaged ones are refused with one line naming the file and what differs."""
import io
import os
import pickle
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb import data as D, readers
from resnet_nb.data import CLASSES, DataError, load_cifar10
from resnet_nb.files import show_path
from resnet_nb.readers import TV_FILES

def _batch(n=2, labels=None, data=None):
    rng = np.random.default_rng(0)
    return pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)
                         if data is None else data,
                         "labels": [1] * n if labels is None else labels})


def _tv_tar(path, extra=(), replace=None):
    """A torchvision archive: cifar-10-batches-py/ with its six batches and batches.meta."""
    files = {f"cifar-10-batches-py/{name}": _batch() for name in readers.TV_FILES[:-1]}
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": list(CLASSES)})
    files.update(replace or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in list(files.items()) + list(extra):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _packed(folder, as_archive):
    if not as_archive:
        return folder
    archive = folder.parent / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


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


CLASSES = D.CLASSES


# --- 1. silently wrong data ----------------------------------------------------------------

def test_a_missing_class_folder_is_refused_naming_it(tmp_path, image_folder):
    image_folder(tmp_path / "c", classes=[c for c in CLASSES if c != "cat"])
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "c", verbose=False)
    message = str(info.value)
    assert "train/ lacks cat" in message and "test/ lacks cat" in message
    assert not list((tmp_path / "cache").glob("*.pt"))     # nothing wrong was cached


def test_an_extra_class_folder_is_refused_naming_it(tmp_path, image_folder):
    image_folder(tmp_path / "c")
    image_folder(tmp_path / "c", classes=["unicorn"], seed=1)
    with pytest.raises(DataError, match="has unicorn, which is not a CIFAR-10 class"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_an_archive_with_a_missing_class_is_refused(tmp_path, image_folder, tar_of):
    image_folder(tmp_path / "src", classes=CLASSES[:-1])
    archive = tar_of(tmp_path / "src", "cifar", tmp_path / "c.tar.gz")
    with pytest.raises(DataError, match="lacks truck"):
        load_cifar10(archive, verbose=False)


def test_an_archive_holding_two_copies_is_refused(tmp_path, image_folder):
    image_folder(tmp_path / "src")
    with tarfile.open(tmp_path / "two.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="cifar10")
        tar.add(tmp_path / "src", arcname="backup/cifar10")
    with pytest.raises(DataError, match=r"holds 2 copies of an image folder \(backup/cifar10/, "
                                        r"cifar10/\)"):
        load_cifar10(tmp_path / "two.tar.gz", verbose=False)


def test_an_archive_holding_a_file_twice_is_refused(tmp_path, image_folder):
    image_folder(tmp_path / "src")
    archive = tmp_path / "c.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src", arcname="cifar10")
        tar.add(tmp_path / "src" / "train" / "cat" / "0000.png",
                arcname="cifar10/train/cat/0000.png")
    with pytest.raises(DataError, match="holds cifar10/train/cat/0000.png twice"):
        load_cifar10(archive, verbose=False)


def test_a_folder_holding_two_copies_is_refused(tmp_path, image_folder):
    image_folder(tmp_path / "c" / "copy1")
    image_folder(tmp_path / "c" / "copy2")
    with pytest.raises(DataError, match=r"holds 2 copies of an image folder \(copy1/, copy2/\)"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_images_of_another_size_are_refused_naming_the_file(tmp_path, image_folder):
    image_folder(tmp_path / "c")
    Image.new("RGB", (64, 48)).save(tmp_path / "c" / "test" / "dog" / "0000.png")
    with pytest.raises(DataError, match=r"image test/dog/0000.png in image folder \S+ is 64x48, "
                                        r"not 32x32"):
        load_cifar10(tmp_path / "c", verbose=False)


def test_a_torchvision_batch_with_other_class_names_is_refused(tmp_path, tv_folder):
    folder = tv_folder(tmp_path / "tv", n=10)[0]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in
                                                                        range(100)]}))
    with pytest.raises(DataError, match="not CIFAR-10's"):
        load_cifar10(tmp_path / "tv", verbose=False)


# --- counts ----------------------------------------------------------------------------------


# --- 2. good copies with macOS metadata ------------------------------------------------------

def add_macos_metadata(root):
    for split in ("train", "test"):
        for c in ("cat", "ship"):
            (root / split / c / "._0000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (root / split / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    mac = root / "__MACOSX" / "train" / "cat"
    mac.mkdir(parents=True)
    (mac / "._0000.png").write_bytes(b"\x00\x05\x16\x07")


def test_macos_metadata_beside_an_image_folder_is_ignored(tmp_path, image_folder, same_images):
    truth = image_folder(tmp_path / "c")
    add_macos_metadata(tmp_path / "c")
    same_images(load_cifar10(tmp_path / "c", verbose=False), truth)


def test_macos_metadata_in_an_archive_is_ignored(tmp_path, image_folder, same_images, tar_of):
    truth = image_folder(tmp_path / "src" / "cifar10")
    add_macos_metadata(tmp_path / "src" / "cifar10")
    # The way macOS's "Compress" lays it out: the copy, and __MACOSX/ beside it.
    (tmp_path / "src" / "__MACOSX" / "cifar10" / "train" / "dog").mkdir(parents=True)
    (tmp_path / "src" / "__MACOSX" / "cifar10" / "train" / "dog" / "._0001.png").write_bytes(b"x")
    archive = tar_of(tmp_path / "src", ".", tmp_path / "mac.tar.gz")
    same_images(load_cifar10(archive, verbose=False), truth)


def test_a_decode_error_names_the_file(tmp_path, image_folder, tar_of):
    image_folder(tmp_path / "c")
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


def test_a_truncated_torchvision_batch_names_the_file(tmp_path, tv_folder):
    folder = tv_folder(tmp_path / "tv", n=10)[0]
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"data_batch_3 in torchvision folder .* is damaged, "
                                        r"truncated or not a CIFAR-10 batch"):
        load_cifar10(tmp_path / "tv", verbose=False)


class NotAnArray:
    def __reduce__(self):   # what a malicious pickle does: call something on load
        return (os.getpid, ())


def test_a_torchvision_batch_holding_objects_is_refused(tmp_path, tv_folder):
    folder = tv_folder(tmp_path / "tv", n=10)[0]
    (folder / "test_batch").write_bytes(pickle.dumps({"data": NotAnArray(), "labels": []}))
    with pytest.raises(DataError, match="it holds a (posix|nt).getpid object, not arrays"):
        load_cifar10(tmp_path / "tv", verbose=False)


# --- 4. the cache: checked before the decode, never the reason to lose it ------------------


# --- 8. leftovers of killed loads, two loads at once ---------------------------------------


def test_image_folder(tmp_path, capsys, image_folder, same_images):
    truth = image_folder(tmp_path / "cifar", n_train=3, n_test=2)
    data = load_cifar10(tmp_path / "cifar")
    same_images(data, truth)
    assert "image folder" in capsys.readouterr().out


def test_image_folder_one_level_down(tmp_path, image_folder, same_images):
    truth = image_folder(tmp_path / "unpacked" / "cifar10-jpeg", n_train=3, n_test=2)
    same_images(load_cifar10(tmp_path / "unpacked", verbose=False), truth)


def test_image_folder_archive(tmp_path, capsys, image_folder, same_images, tar_of):
    truth = image_folder(tmp_path / "src" / "cifar10", n_train=3, n_test=2)
    archive = tar_of(tmp_path / "src" / "cifar10", "cifar10", tmp_path / "cifar10.tar.gz")
    data = load_cifar10(archive)
    same_images(data, truth)
    out = capsys.readouterr().out
    assert "archive" in out and str(tmp_path) not in out  # no absolute path is printed


def test_torchvision_folder_and_archive(tmp_path, tar_of, tv_folder):
    batches = tv_folder(tmp_path / "tv")[1]
    for source in (tmp_path / "tv", tmp_path / "tv" / "cifar-10-batches-py",
                   tar_of(tmp_path / "tv" / "cifar-10-batches-py", "cifar-10-batches-py",
                          tmp_path / "cifar-10-python.tar.gz")):
        data = load_cifar10(source, verbose=False)
        assert data.train.images.shape == (20, 3, 32, 32) and len(data.test) == 4
        expected = torch.as_tensor(batches["data_batch_2"]["data"][1]).reshape(3, 32, 32)
        assert torch.equal(data.train.images[5], expected)
        assert data.test.labels.tolist() == batches["test_batch"]["labels"]


def test_truncated_archive_gives_clear_error_and_no_cache(tmp_path, image_folder, tar_of):
    image_folder(tmp_path / "src" / "cifar10", n_train=3, n_test=2)
    archive = tar_of(tmp_path / "src" / "cifar10", "cifar10", tmp_path / "c.tar.gz")
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        load_cifar10(archive, verbose=False)
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_corrupt_image_gives_clear_error(tmp_path, image_folder):
    image_folder(tmp_path / "cifar", n_train=3, n_test=2)
    (tmp_path / "cifar" / "train" / "cat" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode"):
        load_cifar10(tmp_path / "cifar", verbose=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.pt"))


def test_image_folder_reader_edge_cases(tmp_path, image_folder):
    src = tmp_path / "cifar"
    image_folder(src, n_train=1, n_test=1, suffix=".PNG")   # upper-case suffixes count
    (src / "train" / "cat" / "notes.txt").write_text("not an image")
    Image.fromarray(np.full((32, 32), 77, dtype=np.uint8)).save(src / "train" / "dog" / "grey.bmp")
    data = load_cifar10(src, verbose=False)
    assert len(data.train) == 11 and len(data.test) == 10
    grey = data.train.images[data.train.labels == CLASSES.index("dog")]
    assert any(bool((img == 77).all()) for img in grey)          # grey -> 3 equal channels
    assert data.classes == CLASSES and data.source == "image folder " + show_path(src)


def test_image_folder_errors(tmp_path, image_folder):
    src = tmp_path / "a"
    image_folder(src, n_train=1, n_test=1)
    (src / "train" / "extra").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "train" / "extra" / "0.png")
    # The one difference from CIFAR-10's ten classes is named, and nothing else.
    with pytest.raises(DataError, match=r"^image folder \S+: train/ has extra, which is not a "
                                        r"CIFAR-10 class\. CIFAR-10 has exactly ten class "
                                        r"folders in train/ and test/: airplane, automobile,"):
        load_cifar10(src, verbose=False)
    big = tmp_path / "b"
    image_folder(big, n_train=1, n_test=1)
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


def test_incomplete_torchvision_archive(tmp_path, tv_folder):
    folder, _ = tv_folder(tmp_path / "tv", n=2)
    (folder / "data_batch_3").unlink()
    archive = _packed(folder, as_archive=True)
    with pytest.raises(DataError, match=r"^the archive \S*cifar-10-python\.tar\.gz lacks "
                                        r"\['data_batch_3'\]: it is incomplete\."):
        load_cifar10(archive, verbose=False)
    (folder / "batches.meta").unlink()
    archive = _packed(folder, as_archive=True)
    with pytest.raises(DataError, match=r"^the archive \S*cifar-10-python\.tar\.gz lacks "
                                        r"\['data_batch_3', "
                                        r"'batches\.meta'\]: it is incomplete\."):
        load_cifar10(archive, verbose=False)


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


def test_torchvision_archive_without_its_test_batch(tmp_path, tv_folder):
    folder, _ = tv_folder(tmp_path / "tv", n=2)
    (folder / "test_batch").unlink()
    archive = _packed(folder, as_archive=True)
    with pytest.raises(DataError, match=r"lacks \['test_batch'\]"):
        load_cifar10(archive, verbose=False)
    (folder / "batches.meta").unlink()
    with tarfile.open(archive, "w:gz") as tar:                       # batches, but no meta
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="lacks"):
        load_cifar10(archive, verbose=False)


@pytest.mark.parametrize("top", ["cifar10", None])
def test_an_archive_loads_the_same_arrays_as_its_folder(tmp_path, top, image_folder):
    src = tmp_path / "src"
    image_folder(src, n_train=3, n_test=3, seed=2)
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


@pytest.mark.parametrize("twice", ["data_batch_1", "batches.meta"])
def test_an_archive_holding_a_batch_twice_is_refused(tmp_path, twice):
    # _read_archive 36, 40, 41
    blob = (pickle.dumps({"label_names": list(CLASSES)}) if twice == "batches.meta"
            else _batch())
    archive = _tv_tar(tmp_path / "c.tar.gz", extra=[(f"copy/{twice}", blob)])
    with pytest.raises(DataError, match=f"holds {twice} twice"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


def test_a_bad_batch_in_an_archive_is_named(tmp_path):
    # _read_archive 55; _unpickle_batch 47, 51, 52 (the labels' check names "its labels")
    archive = _tv_tar(tmp_path / "c.tar.gz",
                      replace={"cifar-10-batches-py/data_batch_3": _batch(labels=[1, 10])})
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_3 in .*its labels "
                                        r"are not all in 0\.\.9"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


@pytest.mark.parametrize("data, why", [
    (np.zeros((2, 3000), np.uint8), "uint8 array of shape \\(2, 3000\\)"),     # 18
    (np.zeros((2, 3072), np.float64), "float64 array of shape \\(2, 3072\\)"),  # 19
])
def test_batches_of_the_wrong_shape_or_type_are_refused(data, why):
    with pytest.raises(DataError, match=why):
        readers._unpickle_batch(io.BytesIO(_batch(data=data)), "data_batch_1")


def test_batch_labels_stored_as_a_small_integer_array_load_as_int64():
    # _unpickle_batch 12, 14: labels saved as an int32 / uint8 array (numpy's choice on Windows)
    for dt in (np.int32, np.uint8):
        batch = io.BytesIO(_batch(labels=np.array([3, 9], dt)))
        images, labels = readers._unpickle_batch(batch, "b")
        assert labels.dtype == torch.int64 and labels.tolist() == [3, 9]


def test_image_folders_keep_the_archive_order_within_a_class(tmp_path):
    # _read_archive 125, 127: sorted by class only, stably (names in reverse order stay so)
    from PIL import Image
    archive = tmp_path / "c.tar.gz"
    shades = {}
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for ci, c in enumerate(reversed(CLASSES)):
                for i, name in enumerate(("b.png", "a.png")):
                    buf = io.BytesIO()
                    shade = 20 * ci + 10 * i + (1 if split == "test" else 0)
                    Image.fromarray(np.full((32, 32, 3), shade, np.uint8)).save(buf, "PNG")
                    info = tarfile.TarInfo(f"{split}/{c}/{name}")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
                    shades.setdefault(split, {}).setdefault(c, []).append(shade)
    data = load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)
    want = [s for c in CLASSES for s in shades["train"][c]]
    assert data.train.images[:, 0, 0, 0].tolist() == want
    assert data.train.labels.tolist() == [i for i in range(10) for _ in range(2)]


def test_two_copies_of_an_image_folder_name_the_top_level(tmp_path):
    # _read_archive 102, 103
    from PIL import Image
    archive = tmp_path / "c.tar.gz"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, "PNG")
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train/cat/1.png", "copy/train/cat/1.png"):
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    with pytest.raises(DataError, match=r"2 copies of an image folder \(\(top level\)/, copy/\)"):
        load_cifar10(archive, cache_dir=tmp_path / "cache", verbose=False)


@pytest.mark.parametrize("images, labels, what", [
    (torch.zeros(2, 3, 32, 31, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "images"),
    (torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64), "images"),          # float
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 10]), "labels"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([-1, 3]), "labels"),
])
def test_check_set_refuses_wrong_shapes_types_and_labels(images, labels, what):
    # _check_set 2, 3, 4, 22, 27
    with pytest.raises(ValueError, match=f"x {what} are not"):
        readers.check_set(images, labels, "x")
    readers.check_set(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 9]), "x")


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
