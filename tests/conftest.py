import errno
import io
import os

import pytest
import torch


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
