"""resnet_nb.files: writes that survive failures and full disks, leftovers, locks."""
import os
import time

import pytest

fcntl = pytest.importorskip("fcntl")

from resnet_nb.files import (TEMP_PREFIX, FolderBusy, FolderLock, atomic_write, locked_temp_dir,
                             remove_leftovers)


def age(path, seconds=3600):
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")

    def fail(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_full_disk_under_torch_save_is_the_disk_error(tmp_path, full_disk):
    """torch.save turns ENOSPC into `RuntimeError: ... unexpected pos`; atomic_write gives
    back the OSError, so that `except OSError` sees a full disk."""
    torch = pytest.importorskip("torch")
    target = tmp_path / "w.pt"
    target.write_bytes(b"old")
    full_disk.free = 4096
    with pytest.raises(OSError) as info:
        atomic_write(target, lambda f: torch.save({"w": torch.zeros(10_000)}, f))
    assert info.value.errno == 28
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_new_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640      # 0666 less the umask


def test_leftovers_are_removed_but_live_writes_are_not(tmp_path):
    dead = tmp_path / f"{TEMP_PREFIX}cache.pt.dead"
    young = tmp_path / f"{TEMP_PREFIX}cache.pt.young"
    live = tmp_path / f"{TEMP_PREFIX}cache.pt.live"
    other = tmp_path / "cifar10-0123.pt"
    for p in (dead, young, live, other):
        p.write_bytes(b"x")
    for p in (dead, live, other):
        age(p)
    download = tmp_path / f"{TEMP_PREFIX}download.abc"           # a killed download
    (download / "cifar-10-batches-py").mkdir(parents=True)
    age(download)
    with open(live, "rb") as writer:                            # a writer that is alive
        fcntl.flock(writer, fcntl.LOCK_EX)
        removed = remove_leftovers(tmp_path)
    assert sorted(removed) == sorted([dead.name, download.name])
    assert young.exists() and live.exists() and other.exists()


def test_a_locked_temporary_folder_is_not_a_leftover(tmp_path):
    with locked_temp_dir(tmp_path, "download") as tmp:
        age(tmp)
        assert remove_leftovers(tmp_path) == [] and tmp.exists()
    assert not tmp.exists()


def test_a_folder_lock_is_held_once_and_released(tmp_path):
    with FolderLock(tmp_path, "the output folder"):
        with pytest.raises(FolderBusy, match=f"another process \\(pid {os.getpid()}\\) is "
                                             "writing the output folder"):
            FolderLock(tmp_path, "the output folder").acquire()
    FolderLock(tmp_path).acquire().release()


def test_atomic_write_leaves_the_old_file_and_no_temporary_one_on_failure(tmp_path):
    target = tmp_path / "sub" / "dir" / "f.json"             # folders made as needed
    seen = []

    def write(f):
        seen.extend(p.name for p in target.parent.iterdir())  # while it writes
        f.write(b"old")
    atomic_write(target, write)
    assert target.read_bytes() == b"old"
    # It wrote a hidden temporary file beside the target (so the rename is atomic).
    assert len(seen) == 1 and seen[0].startswith(".tmp-f.json.")

    def half(f):
        f.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
