"""resnet_nb.sources: which copy RESNET_NB_DATA or an argument names, how it is described,
the counts of a full or a small copy, the torchvision download, and the messages that name the
copy and the image."""
import os
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch

from resnet_nb import sources
from resnet_nb.data import CifarData, DataError, ImageSet, load_cifar10
from resnet_nb.files import show_path
from resnet_nb.sources import describe_source


def test_describe_source_names_each_kind(tmp_path, monkeypatch, image_folder, tv_folder):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RESNET_NB_DATA", raising=False)
    assert describe_source() == "torchvision (downloads CIFAR-10 when online)"
    assert describe_source("synthetic") == "synthetic"
    monkeypatch.setenv("RESNET_NB_DATA", "synthetic")
    assert describe_source() == "synthetic"
    assert describe_source("nowhere").startswith("nowhere (MISSING: Point RESNET_NB_DATA")
    image_folder(tmp_path / "imgs", n_train=1, n_test=1)
    assert describe_source("imgs") == "image folder imgs"
    tv_folder(tmp_path / "tv", n=2)
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


def test_torchvision_download_is_moved_in_place_once(tmp_path, monkeypatch, tv_folder):
    import torchvision
    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            assert download is True
            calls.append(root)
            tv_folder(Path(root), n=2)

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


def test_messages_name_the_copy_and_the_image(tmp_path, monkeypatch, image_folder):
    monkeypatch.chdir(tmp_path)
    only_train = tmp_path / "half"
    (only_train / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="neither"):
        load_cifar10(only_train, verbose=False)
    src = tmp_path / "bad"
    image_folder(src, n_train=1, n_test=1)
    (src / "train" / "airplane" / "0000.png").write_bytes(b"not a png")
    # The file is named (its path in the copy), not an index.
    with pytest.raises(DataError, match=r"cannot decode image train/airplane/0000\.png in image "
                                        r"folder \S+ \("):
        load_cifar10(src, verbose=False)
    (src / "train" / "extra").mkdir()
    with pytest.raises(DataError, match=r"^image folder bad: train/ has extra, which is not a "
                                        r"CIFAR-10 class\. "):
        load_cifar10(src, verbose=False)
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="bad")
        tar.add(src / "train" / "airplane" / "0000.png", arcname="bad/train/extra/0.png")
    with pytest.raises(DataError, match=r"^archive bad\.tar\.gz: train/ has extra, which is "
                                        r"not a CIFAR-10 class\. "):
        load_cifar10(archive, verbose=False)
    (src / "train" / "extra").rmdir()
    with tarfile.open(archive, "w:gz") as tar:                   # in an archive: its member
        tar.add(src, arcname="bad")
    with pytest.raises(DataError, match=r"cannot decode image bad/train/airplane/0000\.png in "
                                        r"archive \S+ \("):
        load_cifar10(archive, verbose=False)


def test_env_variable_chooses_the_source(tmp_path, monkeypatch, capsys, tv_folder):
    tv_folder(tmp_path / "tv")[1]
    monkeypatch.setenv("RESNET_NB_DATA", str(tmp_path / "tv"))
    assert len(load_cifar10().train) == 20
    assert "torchvision folder" in capsys.readouterr().out
    assert "torchvision folder" in sources.describe_source()


def test_missing_source_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="RESNET_NB_DATA"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither"):
        load_cifar10(tmp_path / "empty")


def test_offline_download_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    import torchvision

    class OfflineCIFAR10:
        def __init__(self, root, train=True, download=False):
            # Like a real interrupted download: a partial file, then the network error.
            with open(os.path.join(root, "cifar-10-python.tar.gz"), "wb") as f:
                f.write(b"partial")
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(DataError) as info:
        load_cifar10("torchvision", cache_dir=tmp_path / "cache")
    assert "Offline?" in str(info.value) and "RESNET_NB_DATA" in str(info.value)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []


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


def test_a_small_copy_loads_and_says_how_small(tmp_path, capsys, image_folder):
    image_folder(tmp_path / "c", n_train=3, n_test=2)
    data = load_cifar10(tmp_path / "c")
    assert len(data.train) == 30
    out = capsys.readouterr().out
    assert ("NOTE: a partial copy of CIFAR-10: train 30 of 50,000 images (3 per class), "
            "test 20 of 10,000 images (2 per class)") in out
    load_cifar10(tmp_path / "c")        # from the cache: said again
    assert "NOTE: a partial copy" in capsys.readouterr().out
