import io
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb import data as D
from resnet_nb import readers, sources
from resnet_nb.data import Batches, DataError, ImageSet, augment, load_cifar10, normalize

CLASSES = D.CLASSES


def _images(n_per_class, seed):
    rng = np.random.default_rng(seed)
    return {c: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n_per_class)]
            for c in CLASSES}


def make_image_folder(root, n_train=3, n_test=2):
    """train/<class>/*.png, test/<class>/*.png; PNG so that pixels survive exactly."""
    truth = {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        truth[split] = _images(n, seed)
        for c, arrays in truth[split].items():
            (root / split / c).mkdir(parents=True)
            for i, a in enumerate(arrays):
                Image.fromarray(a).save(root / split / c / f"{i:04d}.png")
    return truth


def make_tv_folder(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": [int(x) for x in rng.integers(0, 10, n)]}
        batches[name] = d
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return batches


def tar_gz(src_dir, arcname, out):
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src_dir, arcname=arcname)
    return out


def check_image_folder(data, truth):
    assert data.train.images.shape == (30, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (20, 3, 32, 32)
    assert data.classes == CLASSES
    for split, s in (("train", data.train), ("test", data.test)):
        assert s.labels.bincount().tolist() == [len(truth[split]["cat"])] * 10
        cat = CLASSES.index("cat")
        first_cat = s.images[s.labels == cat][0].permute(1, 2, 0).numpy()
        assert np.array_equal(first_cat, truth[split]["cat"][0])


def test_image_folder(tmp_path, capsys):
    truth = make_image_folder(tmp_path / "cifar")
    data = load_cifar10(tmp_path / "cifar")
    check_image_folder(data, truth)
    assert "image folder" in capsys.readouterr().out


def test_image_folder_one_level_down(tmp_path):
    truth = make_image_folder(tmp_path / "unpacked" / "cifar10-jpeg")
    check_image_folder(load_cifar10(tmp_path / "unpacked", verbose=False), truth)


def test_image_folder_archive(tmp_path, capsys):
    truth = make_image_folder(tmp_path / "src" / "cifar10")
    archive = tar_gz(tmp_path / "src" / "cifar10", "cifar10", tmp_path / "cifar10.tar.gz")
    data = load_cifar10(archive)
    check_image_folder(data, truth)
    out = capsys.readouterr().out
    assert "archive" in out and str(tmp_path) not in out  # no absolute path is printed


def test_torchvision_folder_and_archive(tmp_path):
    batches = make_tv_folder(tmp_path / "tv")
    for source in (tmp_path / "tv", tmp_path / "tv" / "cifar-10-batches-py",
                   tar_gz(tmp_path / "tv" / "cifar-10-batches-py", "cifar-10-batches-py",
                          tmp_path / "cifar-10-python.tar.gz")):
        data = load_cifar10(source, verbose=False)
        assert data.train.images.shape == (20, 3, 32, 32) and len(data.test) == 4
        expected = torch.as_tensor(batches["data_batch_2"]["data"][1]).reshape(3, 32, 32)
        assert torch.equal(data.train.images[5], expected)
        assert data.test.labels.tolist() == batches["test_batch"]["labels"]


def test_env_variable_chooses_the_source(tmp_path, monkeypatch, capsys):
    make_tv_folder(tmp_path / "tv")
    monkeypatch.setenv("RESNET_NB_DATA", str(tmp_path / "tv"))
    assert len(load_cifar10().train) == 20
    assert "torchvision folder" in capsys.readouterr().out
    assert "torchvision folder" in sources.describe_source()


def test_cache_second_load_reads_no_images(tmp_path, monkeypatch, capsys):
    truth = make_image_folder(tmp_path / "cifar")
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
    check_image_folder(second, truth)


def test_damaged_cache_is_rebuilt(tmp_path):
    make_image_folder(tmp_path / "cifar")
    load_cifar10(tmp_path / "cifar", verbose=False)
    (cache_file,) = (tmp_path / "cache").glob("cifar10-*.pt")
    cache_file.write_bytes(b"garbage")
    assert len(load_cifar10(tmp_path / "cifar", verbose=False).train) == 30


def test_truncated_archive_gives_clear_error_and_no_cache(tmp_path):
    make_image_folder(tmp_path / "src" / "cifar10")
    archive = tar_gz(tmp_path / "src" / "cifar10", "cifar10", tmp_path / "c.tar.gz")
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        load_cifar10(archive, verbose=False)
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_corrupt_image_gives_clear_error(tmp_path):
    make_image_folder(tmp_path / "cifar")
    (tmp_path / "cifar" / "train" / "cat" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode"):
        load_cifar10(tmp_path / "cifar", verbose=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.pt"))


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


def test_synthetic_is_announced(capsys):
    data = load_cifar10("synthetic", synthetic_size=(100, 50))
    assert len(data.train) == 100 and len(data.test) == 50
    assert "NOT CIFAR-10" in capsys.readouterr().out


def test_validation_split_and_subset():
    data = D.make_synthetic(200, 50)
    split = data.split_validation(40, seed=1)
    assert len(split.train) == 160 and len(split.val) == 40 and len(split.test) == 50
    # The two parts are disjoint and together the whole training set.
    both = torch.cat([split.train.images, split.val.images]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(data.train.images.flatten(1),
                                                              dim=0).shape[0]
    small = data.subset(train=30, test=10)
    assert len(small.train) == 30 and len(small.test) == 10
    # A sample of the training images, each at most once, each with its own label
    # (tests/test_data_plumbing.py checks the order, the seed and the test part).
    index = {bytes(img.flatten().numpy()): i for i, img in enumerate(data.train.images)}
    for n in (30, 150):        # 150 of 200 drawn with replacement would repeat images
        part = data.subset(train=n).train
        picked = [index[bytes(img.flatten().numpy())] for img in part.images]
        assert len(set(picked)) == n and picked == sorted(picked)
        assert part.labels.tolist() == data.train.labels[picked].tolist()
    with pytest.raises(ValueError):
        data.split_validation(0)


def test_augment_keeps_shapes_labels_and_pixels():
    data = D.make_synthetic(64, 10)
    g = torch.Generator().manual_seed(0)
    out = augment(data.train.images, g)
    assert out.shape == data.train.images.shape and out.dtype == torch.uint8
    # Each output is a shifted (and maybe mirrored) copy: its centre 24x24 lies in the original.
    for i in range(8):
        src, dst = data.train.images[i], out[i]
        found = False
        for flip in (False, True):
            s = src.flip(-1) if flip else src
            padded = torch.nn.functional.pad(s, (4, 4, 4, 4))
            for dy in range(9):
                for dx in range(9):
                    if torch.equal(padded[:, dy:dy + 32, dx:dx + 32], dst):
                        found = True
        assert found


def test_batches_order_augmentation_and_normalisation():
    data = D.make_synthetic(300, 100)
    train = Batches(data.train, 64, train=True, seed=3)
    assert len(train) == 4                        # the last, partial batch is dropped
    labels_seen = torch.cat([y for _, y in train])
    assert len(labels_seen) == 256 and len(set(labels_seen.tolist())) == 10
    x, y = next(iter(train))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    # Same seed and epoch: same batches; another epoch: another order.
    again = Batches(data.train, 64, train=True, seed=3)
    assert torch.equal(next(iter(again))[0], x)
    again.set_epoch(1)
    assert not torch.equal(next(iter(again))[1], y)
    test = Batches(data.test, 64)
    assert len(test) == 2 and torch.equal(torch.cat([y for _, y in test]), data.test.labels)
    x0, _ = next(iter(test))
    torch.testing.assert_close(x0, normalize(data.test.images[:64]))


def test_normalisation_uses_cifar_statistics():
    # CIFAR-10's per-channel mean and standard deviation of the training images (0..1 scale),
    # written out here rather than read from the module, so that wrong constants fail.
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    img = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(img)
    for c in range(3):
        assert out[0, c, 0, 0].item() == pytest.approx((1 - mean[c]) / std[c], rel=1e-5)
    assert normalize(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten().tolist() == \
        pytest.approx([-m / s for m, s in zip(mean, std)], rel=1e-5)


def test_batches_without_augmentation_and_with_other_statistics():
    data = D.make_synthetic(96, 10)
    plain = Batches(data.train, 32, train=True, seed=1, augment=False, mean=(0.5,) * 3,
                    std=(0.5,) * 3)
    augmented = Batches(data.train, 32, train=True, seed=1)
    assert len(plain) == len(augmented) == 3
    for (x, y), (xa, ya) in zip(plain, augmented):
        assert torch.equal(y, ya)                     # same shuffled order with or without
        # Each image is one of the training images, uncropped and unflipped, on the (x/255 -
        # 0.5)/0.5 scale: find it by its label-independent pixels.
        want = data.train.images.float() / 255 * 2 - 1          # (96, 3, 32, 32)
        for img in x:
            assert any(torch.allclose(img, w, atol=1e-6) for w in want)
        assert not all(any(torch.allclose(img, w, atol=1e-6) for w in want) for img in xa)
    # The oracle for the statistics: uint8 0 -> (0 - 0.5) / 0.5 = -1, 255 -> +1.
    extremes = ImageSet(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
                        .expand(2, 3, 2, 2).clone(), torch.tensor([0, 1]))
    x, _ = next(iter(Batches(extremes, 2, mean=(0.5,) * 3, std=(0.5,) * 3)))
    assert x[0].unique().tolist() == [-1.0] and x[1].unique().tolist() == [1.0]
    # augment=True on evaluation batches crops and flips too (a test-time-augmentation demo).
    assert Batches(data.test, 8, augment=True).augment and not Batches(data.test, 8).augment
    with pytest.raises(ValueError, match="one value per colour channel"):
        Batches(data.test, 8, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="std > 0"):
        normalize(data.test.images, std=(0.5, 0.0, 0.5))


def test_real_cifar10_copy(real_data_path):
    data = load_cifar10(real_data_path, verbose=False)
    assert len(data.train) == 50_000 and len(data.test) == 10_000
    assert data.train.labels.bincount().tolist() == [5000] * 10
    mean = data.train.images.float().mean((0, 2, 3)) / 255
    torch.testing.assert_close(mean, torch.tensor(D.MEAN), atol=3e-3, rtol=0)
    # The standard deviation over all training pixels of a channel (not the often copied
    # 0.2023, 0.1994, 0.2010, which are means of per-image deviations).
    std = (data.train.images.float() / 255).transpose(0, 1).flatten(1).std(dim=1)
    torch.testing.assert_close(std, torch.tensor(D.STD), atol=3e-3, rtol=0)
    # Normalised, the training images have mean 0 and deviation 1 in every channel.
    x = normalize(data.train.images[::10])
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3), atol=0.02, rtol=0)
    torch.testing.assert_close(x.transpose(0, 1).flatten(1).std(dim=1), torch.ones(3),
                               atol=0.02, rtol=0)
