import errno
import io
import os

import pytest
import torch


# Settings that choose what the course runs; a test that changes one for the rest of the
# process (e.g. by calling a script's main()) makes every later notebook under nbval run with
# it: once, the cpu profile leaked that way, and CI's notebooks trained at full size.
_WATCHED = ("RESNET_NB_PROFILE", "RESNET_NB_DATA", "RESNET_NB_CACHE", "RESNET_NB_REFERENCE",
            "RESNET_NB_REPRODUCE_COMMAND", "RESNET_NB_DEBUG", "TQDM_DISABLE", "MPLBACKEND")


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
