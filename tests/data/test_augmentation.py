"""Augmentation happens, and as specified: random 4-pixel shifts and horizontal flips.

Oracle: for every output image, the one (flip, dy, dx) that reproduces it from its source by
hand (crop rows dy.., columns dx.. of the zero-padded image, then mirror if flipped). Over 256
images about half must be mirrored and every offset 0..8 must occur.
"""
import pytest
import torch
import torch.nn.functional as F

from resnet_nb.data import Batches, ImageSet, augment

PAD = 4


def noise_images(n, seed=0):
    """Random images with no zero pixel, so the zero padding and every shift are visible."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def candidates(src: torch.Tensor) -> torch.Tensor:
    """All 2 x 9 x 9 augmentations of one image by hand: (2, 9, 9, 3, 32, 32)."""
    padded = F.pad(src, (PAD, PAD, PAD, PAD))
    crops = torch.stack([torch.stack([padded[:, dy:dy + 32, dx:dx + 32]
                                      for dx in range(2 * PAD + 1)])
                         for dy in range(2 * PAD + 1)])
    return torch.stack([crops, crops.flip(-1)])


def identify(src: torch.Tensor, out: torch.Tensor):
    """(flipped, dy, dx) such that out is src shifted by (dy - 4, dx - 4), then mirrored."""
    hits = (candidates(src) == out).flatten(3).all(3).nonzero().tolist()
    assert len(hits) == 1, f"{len(hits)} augmentations reproduce this image (expected 1)"
    flip, dy, dx = hits[0]
    return bool(flip), dy, dx


def check_spread(found):
    """Half the images flipped (256 draws: 128 +- 8), every offset 0..8 seen in y and in x."""
    flips = sum(f for f, _, _ in found)
    assert 0.35 * len(found) < flips < 0.65 * len(found), f"{flips} of {len(found)} flipped"
    assert {dy for _, dy, _ in found} == set(range(2 * PAD + 1))
    assert {dx for _, _, dx in found} == set(range(2 * PAD + 1))
    # Offsets are drawn per image: many distinct shifts (81 possible; ~78 expected of 256).
    assert len({(dy, dx) for _, dy, dx in found}) > 50


def test_augment_flips_about_half_and_uses_every_shift():
    images = noise_images(256)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    check_spread([identify(images[i], out[i]) for i in range(len(images))])


def test_augment_depends_on_the_generator_only():
    images = noise_images(64, seed=1)
    a = augment(images, torch.Generator().manual_seed(7))
    b = augment(images, torch.Generator().manual_seed(7))
    c = augment(images, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def unnormalise(x: torch.Tensor, batches: Batches) -> torch.Tensor:
    """A normalised float batch back to its uint8 pixels."""
    return ((x - batches._shift) / batches._scale).round().to(torch.uint8)


def epoch_transforms(images, batches):
    """{image index: (flipped, dy, dx)} for one epoch; the labels hold the image indices."""
    found = {}
    for x, y in batches:
        pixels = unnormalise(x, batches)
        for img, i in zip(pixels, y.tolist()):
            found[i] = identify(images[i], img)
    return found


def test_training_batches_are_augmented_anew_each_epoch():
    images = noise_images(256, seed=2)
    data = ImageSet(images, torch.arange(256))     # label = image index, to find the source
    batches = Batches(data, 64, train=True, seed=3)
    first = epoch_transforms(images, batches)
    assert len(first) == 256
    check_spread(list(first.values()))
    batches.set_epoch(1)
    second = epoch_transforms(images, batches)
    check_spread(list(second.values()))
    same = sum(first[i] == second[i] for i in range(256))
    assert same < 20, f"{same} of 256 images got the same augmentation in epochs 1 and 2"


def test_evaluation_batches_are_not_augmented():
    images = noise_images(100, seed=4)
    batches = Batches(ImageSet(images, torch.arange(100)), 32)
    seen = torch.cat([unnormalise(x, batches) for x, _ in batches])
    assert torch.equal(seen, images)


@pytest.mark.parametrize("pad", [1, 2])
def test_augment_honours_the_padding(pad):
    images = noise_images(200, seed=5)
    out = augment(images, torch.Generator().manual_seed(0), pad=pad)
    # The rows and columns of zeros at the borders say how far each image was shifted.
    zero_rows = (out == 0).all(1).all(2).sum(1)     # (N,): rows that came from the padding
    zero_cols = (out == 0).all(1).all(1).sum(1)
    assert set(zero_rows.tolist()) == set(range(pad + 1))
    assert set(zero_cols.tolist()) == set(range(pad + 1))
