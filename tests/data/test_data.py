"""resnet_nb.data, the teaching core: synthetic data, the validation split and subsets,
normalisation with CIFAR-10's published statistics, Batches and augmentation, the real copy."""
import pytest
import torch

from resnet_nb import data as D, recipe
from resnet_nb.data import (Batches, CLASSES, ImageSet, augment, load_cifar10, make_synthetic,
                            normalize)

# CIFAR-10's per-channel statistics of the 50,000 training images on the 0..1 scale, as
# published with the data's common recipes (not read from the package under test):
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


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
    # (test_the_seed_changes_the_order and test_subset_is_a_seeded_sample... below check the
    # order, the seed and the test part).
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


@pytest.mark.slow
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


def test_subset_edges():
    data = make_synthetic(40, 10)
    assert data.subset(train=40).train is data.train                 # all of it: the same set
    assert len(data.subset(train=1).train) == 1                       # one image is a subset
    assert torch.equal(data.subset(train=20).train.images,           # the default seed is 0
                       data.subset(train=20, seed=0).train.images)
    assert data.subset().train is data.train and data.subset().test is data.test


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


def test_the_default_validation_split_is_the_papers_5000_images_with_seed_0():
    # CifarData.split_validation 1, 2, 4
    data = make_synthetic(5010, 10)
    split = data.split_validation()
    assert len(split.val) == 5000 and len(split.train) == 10
    assert torch.equal(split.val.images, data.split_validation(5000, seed=0).val.images)
    assert len(data.split_validation(1).val) == 1


@pytest.mark.parametrize("call,needle", [
    (lambda d: Batches(d.train, batch_size=2.5), "batch_size must be a positive integer, got 2.5"),
    (lambda d: Batches(d.train, batch_size=True), "batch_size must be a positive integer"),
    (lambda d: d.subset(train=2.5), "subset train size must be a positive integer (or None: "
                                    "all), got 2.5"),
    (lambda d: d.subset(test=0), "subset test size must be a positive integer"),
    (lambda d: d.split_validation(2.5), "validation size must be an integer between 1 and 99, "
                                        "got 2.5"),
])
def test_sizes_of_data_must_be_whole_numbers(call, needle):
    with pytest.raises(ValueError) as info:
        call(make_synthetic(100, 20))
    assert needle in str(info.value)


def test_sizes_may_be_numpy_integers():
    import numpy as np
    d = make_synthetic(100, 20).subset(train=np.int64(50)).split_validation(np.int64(10))
    assert (len(d.train), len(d.val), len(Batches(d.train, batch_size=np.int64(8)))) == (40, 10, 5)
    # A recipe takes them too, and stores Python integers (a history's JSON holds them).
    import json
    from dataclasses import asdict
    cfg = recipe("fast", epochs=np.int64(2), batch_size=np.int32(8), seed=np.uint8(3))
    assert json.loads(json.dumps(asdict(cfg)))["batch_size"] == 8 and type(cfg.seed) is int
