"""Fixtures shared by the package tests: each test's own cache folder and seed, a real
CIFAR-10 copy when there is one, a disk that fills up, and small data copies written the ways users
hold CIFAR-10 (image folders, torchvision's batches, archives). What the tests in a browser or on
a hub share (chromium, Playwright, a free port) is in tests/browsers.py."""
import errno
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch


# Settings that choose what the course runs; a test that changes one for the rest of the
# process (e.g. by calling a script's main()) makes every later notebook under nbval run with
# it: once, the cpu profile leaked that way, and CI's notebooks trained at full size.
_WATCHED = ("RESNET_NB_PROFILE", "RESNET_NB_DATA", "RESNET_NB_CACHE", "RESNET_NB_REFERENCE",
            "RESNET_NB_REPRODUCE_COMMAND", "RESNET_NB_DEBUG", "TQDM_DISABLE", "MPLBACKEND")


def pytest_collection_modifyitems(items):
    """A browser test is a slow test (`-m "not slow"` leaves it out with the rest)."""
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    """Set up before _isolated's monkeypatch, so it checks after monkeypatch has undone its
    own changes: what is still different, the test changed behind monkeypatch's back."""
    before = {name: os.environ.get(name) for name in _WATCHED}
    yield
    changed = sorted(name for name in _WATCHED if os.environ.get(name) != before[name])
    for name in changed:
        if before[name] is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before[name]
    assert not changed, f"the test left {changed} changed in os.environ (use monkeypatch)"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache folder and a fixed seed; env settings of the shell don't leak."""
    monkeypatch.setenv("RESNET_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    torch.manual_seed(0)


@pytest.fixture
def real_data_path():
    """The real CIFAR-10 copy named by RESNET_NB_DATA, or skip."""
    path = os.environ.get("RESNET_NB_DATA")
    if not path or not os.path.exists(path):
        pytest.skip("RESNET_NB_DATA does not point at a CIFAR-10 copy")
    return path


class NearlyFullDisk:
    """A disk with `free` bytes left (None: plenty): each file written through os.fdopen (as
    files.atomic_write does) fails with OSError ENOSPC once it would hold more than that, as a
    real full disk does. The error comes from inside the file's `write`, so it reaches the
    writer (torch.save, json) the way a real one does: torch.save wraps it in a RuntimeError
    ("unexpected pos"). A file that failed is removed by its writer, and its space is free again.
    """

    def __init__(self):
        self.free = None

    def writer(self, fd):
        disk = self

        class Nearly(io.BufferedWriter):
            written = 0

            def write(self, b):
                n = memoryview(b).nbytes
                if disk.free is not None and self.written + n > disk.free:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self.written += n
                return super().write(b)
        return Nearly(io.FileIO(fd, "w"))


@pytest.fixture
def full_disk(monkeypatch):
    """A NearlyFullDisk that every file opened for writing with os.fdopen lies on; set its
    `.free` to fill it."""
    disk = NearlyFullDisk()
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        return disk.writer(fd) if "w" in mode else real(fd, mode, *args, **kwargs)
    monkeypatch.setattr(os, "fdopen", fdopen)
    return disk


# --- small copies of CIFAR-10, written as users hold it --------------------------------------

def write_image_folder(root, n_train=2, n_test=1, seed=0, classes=None, suffix=".png"):
    """train/<class>/NNNN.png and test/<class>/NNNN.png of random pixels (PNG, so that pixels
    survive exactly); returns {"split/class/NNNN.png": pixels}."""
    from PIL import Image

    from resnet_nb.data import CLASSES
    rng = np.random.default_rng(seed)
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in CLASSES if classes is None else classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i:04d}{suffix}")
                truth[f"{split}/{c}/{i:04d}{suffix}"] = a
    return truth


def write_tv_folder(root, n=4, seed=0):
    """torchvision's cifar-10-batches-py/ (five training batches, the test batch and
    batches.meta) with n random images a batch; returns the folder and {batch: its dict}."""
    from resnet_nb.data import CLASSES
    from resnet_nb.readers import TV_FILES
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in TV_FILES[:-1]:
        batches[name] = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": [int(x) for x in rng.integers(0, 10, n)]}
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return folder, batches


def tar_of(src, arcname, out):
    """A .tar.gz of src, stored under arcname."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return out


def same_images(data, truth):
    """Every image of `data` is where its file in `truth` says, with its class folder's label,
    as uint8 with CIFAR-10's classes."""
    from resnet_nb.data import CLASSES
    assert data.classes == CLASSES
    for split, s in (("train", data.train), ("test", data.test)):
        assert s.images.dtype == torch.uint8
        for c in CLASSES:
            want = [a for name, a in sorted(truth.items()) if name.startswith(f"{split}/{c}/")]
            got = s.images[s.labels == CLASSES.index(c)].permute(0, 2, 3, 1).numpy()
            assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


@pytest.fixture
def image_folder():
    """write_image_folder(root, n_train=2, n_test=1, seed=0, classes=None, suffix=".png")."""
    return write_image_folder


@pytest.fixture
def tv_folder():
    """write_tv_folder(root, n=4, seed=0) -> (folder, batches)."""
    return write_tv_folder


@pytest.fixture(name="tar_of")
def tar_of_fixture():
    """tar_of(src, arcname, out) -> out."""
    return tar_of


@pytest.fixture(name="same_images")
def same_images_fixture():
    """same_images(data, truth): asserts that data holds truth's images."""
    return same_images


class Planted:
    """Unpickling this calls os.makedirs(path): what a tampered cache or checkpoint could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path,)


@pytest.fixture
def planted_object():
    """planted_object(path): an object whose unpickling makes the folder path."""
    return Planted
