"""Data plumbing: the cache tells sources apart, the order changes every epoch, subsets are
samples of the images they came from, and normalisation uses CIFAR-10's published statistics."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb import cifar_resnet, fit, load_cifar10, make_synthetic, recipe
from resnet_nb.data import CLASSES, Batches, ImageSet, normalize


def image_folder(root, seed, n=2):
    """train/<class>/*.png and test/<class>/*.png of random pixels; returns the train pixels."""
    rng = np.random.default_rng(seed)
    first = None
    for split in ("train", "test"):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i}.png")
                if first is None:
                    first = a
    return first


def test_two_copies_sharing_one_cache_folder_load_their_own_pixels(tmp_path):
    a_first = image_folder(tmp_path / "a" / "cifar", seed=0)
    b_first = image_folder(tmp_path / "b" / "cifar", seed=1)
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


class RecordingBatches(Batches):
    """Batches that remember the labels they yielded, one list per pass."""

    passes: list = []

    def __iter__(self):
        seen = []
        RecordingBatches.passes.append((self.train, seen))
        for x, y in super().__iter__():
            seen.append(y.clone())
            yield x, y


def test_fit_shuffles_the_training_set_anew_every_epoch():
    data = make_synthetic(128, 10)
    data = type(data)(ImageSet(data.train.images, torch.arange(128)),      # label = index
                      ImageSet(data.test.images, torch.arange(10) % 10))
    RecordingBatches.passes = []
    cfg = recipe("fast", epochs=3, batch_size=32, seed=1)
    fit(cifar_resnet(8, num_classes=128, width=4), data, cfg, device="cpu", progress=False,
        evaluate_test=False, verbose=False, batches=RecordingBatches)
    orders = [torch.cat(seen) for train, seen in RecordingBatches.passes if train]
    assert len(orders) == 3
    for order in orders:                       # every image once per epoch
        assert sorted(order.tolist()) == list(range(128))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert not torch.equal(orders[0], torch.arange(128))
    # Epoch k's order is the one Batches gives for (seed, k), so a resumed run sees it too.
    again = Batches(ImageSet(data.train.images, data.train.labels), 32, train=True, seed=1)
    again.set_epoch(2)
    assert torch.equal(torch.cat([y for _, y in again]), orders[2])


def test_the_seed_changes_the_order():
    data = ImageSet(torch.zeros(64, 3, 32, 32, dtype=torch.uint8), torch.arange(64))
    order = lambda seed: torch.cat([y for _, y in Batches(data, 16, train=True, seed=seed)])
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))


def test_subset_is_a_seeded_sample_without_replacement_in_source_order():
    data = make_synthetic(200, 60)
    data = data.split_validation(20)                                     # 180 training images
    ids = ImageSet(data.train.images, torch.arange(len(data.train)))      # label = index
    data = type(data)(ids, data.test, data.val)
    # Large samples (120 of 180, 40 of 60): drawn with replacement they would repeat images.
    small = data.subset(train=120, test=40, seed=1)
    idx = small.train.labels
    assert len(idx) == 120 and len(set(idx.tolist())) == 120              # no repeats
    assert torch.equal(idx, idx.sort().values)                           # source order kept
    assert torch.equal(small.train.images, data.train.images[idx])       # images go with labels
    assert not torch.equal(idx, torch.arange(120))                       # not the first 120
    # The test subset: test images, each once, with their own labels.
    rows = {bytes(img.flatten().numpy()): int(lab) for img, lab in
            zip(data.test.images, data.test.labels)}
    assert len(small.test) == 40
    assert len({bytes(img.flatten().numpy()) for img in small.test.images}) == 40
    assert all(rows[bytes(img.flatten().numpy())] == int(lab)
               for img, lab in zip(small.test.images, small.test.labels))
    assert small.val is data.val                                         # untouched
    assert torch.equal(data.subset(train=120, seed=1).train.labels, idx)  # seeded
    assert not torch.equal(data.subset(train=120, seed=2).train.labels, idx)
    assert data.subset(train=500).train is data.train                    # more than there is
    with pytest.raises(ValueError, match="positive"):
        data.subset(train=0)


# CIFAR-10's per-channel statistics of the 50,000 training images on the 0..1 scale, as
# published with the data's common recipes (not read from the package under test):
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def test_normalisation_uses_cifar10_published_statistics():
    pixels = torch.tensor([0, 255, 125], dtype=torch.uint8)
    images = pixels.view(3, 1, 1, 1).expand(3, 3, 2, 2).contiguous()     # black, white, grey
    out = normalize(images)
    for c in range(3):
        for i, v in enumerate(pixels.tolist()):
            want = (v / 255 - CIFAR_MEAN[c]) / CIFAR_STD[c]
            assert out[i, c].flatten().tolist() == pytest.approx([want] * 4, rel=1e-5, abs=1e-6)
    # Training batches use the same normalisation.
    x, _ = next(iter(Batches(ImageSet(images, torch.zeros(3, dtype=torch.int64)), 3)))
    torch.testing.assert_close(x, out)
