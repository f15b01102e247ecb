"""A class's shared CIFAR-10 cache (RESNET_NB_CACHE on a hub): one decoded copy that every
student's kernel reads and none writes. The folder is read-only (as root, where permissions do
not stop writes, a read-only bind mount; else chmod): a good cache loads and nothing is
written, a missing one is decoded into memory with nothing written, and a damaged one is
refused in one line instead of every kernel decoding again."""
import os
import subprocess
from pathlib import Path

import pytest

from resnet_nb.data import DataError, load_cifar10


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture
def read_only():
    """Make a folder read-only for this process (root too); undone afterwards."""
    done = []

    def make(folder: Path) -> Path:
        if os.geteuid() == 0:
            for args in (["--bind", str(folder), str(folder)],
                         ["-o", "remount,ro,bind", str(folder)]):
                r = subprocess.run(["mount", *args], capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.skip(f"cannot make a read-only bind mount here: {r.stderr.strip()}")
                done.append(("umount", folder))
        else:
            folder.chmod(0o555)
            done.append(("chmod", folder))
        assert not os.access(folder, os.W_OK) or os.geteuid() == 0
        return folder

    yield make
    for how, folder in reversed(done):
        if how == "umount":
            subprocess.run(["umount", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)


@pytest.fixture
def copy(tmp_path, image_folder):
    truth = image_folder(tmp_path / "cifar", n_train=2, n_test=1)
    return tmp_path / "cifar", truth


def test_a_read_only_cache_is_read_and_never_written(copy, tmp_path, read_only, capsys, same_images):
    source, truth = copy
    cache = tmp_path / "shared-cache"
    load_cifar10(source, cache_dir=cache, verbose=False)           # the teacher decodes once
    before = _snapshot(cache)
    read_only(cache)
    same_images(load_cifar10(source, cache_dir=cache), truth)        # a student's kernel
    assert "(decoded cache)" in capsys.readouterr().out
    assert _snapshot(cache) == before


def test_a_read_only_folder_without_the_cache_decodes_into_memory(copy, tmp_path, read_only,
                                                                  capsys, same_images):
    source, truth = copy
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    read_only(cache)
    same_images(load_cifar10(source, cache_dir=cache), truth)
    out = capsys.readouterr().out
    assert "decoding" in out and "into memory only" in out
    assert list(cache.iterdir()) == []


def test_a_damaged_read_only_cache_is_refused_in_one_line(copy, tmp_path, read_only):
    source, _ = copy
    cache = tmp_path / "shared-cache"
    load_cifar10(source, cache_dir=cache, verbose=False)
    (cached,) = cache.glob("cifar10-*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])                 # cut short
    before = _snapshot(cache)
    read_only(cache)
    with pytest.raises(DataError) as refused:
        load_cifar10(source, cache_dir=cache)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("the shared data cache ")
    assert "is damaged" in message and message.endswith(
        "ask whoever set up RESNET_NB_CACHE to decode CIFAR-10 into it again, or set "
        "RESNET_NB_CACHE to a folder of your own")
    assert _snapshot(cache) == before


def test_a_damaged_cache_of_ones_own_is_still_decoded_again(copy, tmp_path, capsys, same_images):
    source, truth = copy
    cache = tmp_path / "own-cache"
    load_cifar10(source, cache_dir=cache, verbose=False)
    (cached,) = cache.glob("cifar10-*.pt")
    cached.write_bytes(b"not a cache")
    same_images(load_cifar10(source, cache_dir=cache), truth)
    assert "cannot be used" in capsys.readouterr().out
