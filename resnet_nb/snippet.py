"""The widely shared "ResNet" snippet that notebook 05 takes apart, reconstructed with its faults.

Not the original text: our own reconstruction, which keeps every feature that matters (a first
block that adds a 3-channel input to a 64-channel output, two "shortcuts", no batch
normalisation, no classifier head, the transforms, the optimiser's settings, the loop) and fills
in the rest plainly. Its faults are there on purpose: tests/notebooks/test_snippet.py pins each of them,
so that no tidy-up repairs the exhibit. `source()` is the listing the notebook shows.

Ours, not the snippet's: the `block` argument of `SnippetResNet` (so that repaired blocks can be
swapped in), `SnippetCIFAR`, which hands out PIL images as `torchvision.datasets.CIFAR10` does
but from the course's copy of the images (nothing to download), a loader without worker
processes (the same batches; workers cannot import classes defined in a notebook on macOS and
Windows), and, below the listing, the snippet's settings in the course's terms and `block_rms`.
"""
from __future__ import annotations

import inspect
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms
from PIL import Image
from torch.autograd import Variable
from torch.utils.data import DataLoader, Dataset

_LISTING_START, _LISTING_END = "# --- the snippet\n", "# --- end of the snippet\n"


# --- the snippet
class SnippetBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.shortcut = nn.Sequential()
        self.shortcut2 = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = self.conv2(out)
        out = out + self.shortcut(x) + self.shortcut2(out)
        return F.relu(out)


class SnippetResNet(nn.Module):
    def __init__(self, block=SnippetBlock):
        super().__init__()
        self.layer1 = block(3, 64)
        self.layer2 = block(64, 64)
        self.layer3 = block(64, 64)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        out = self.pool(self.layer1(x))
        out = self.pool(self.layer2(out))
        out = self.layer3(out)
        return out


transform = transforms.Compose([
    transforms.Resize(32),
    transforms.ToTensor(),
    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
])


def snippet_loader(image_set):
    trainset = SnippetCIFAR(image_set, transform)    # torchvision.datasets.CIFAR10(...) there
    return DataLoader(trainset, batch_size=4, shuffle=True, num_workers=0)    # 2 there


def snippet_training(net, trainloader, epochs=10):
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    for epoch in range(epochs):
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            inputs, labels = Variable(inputs), Variable(labels)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.data[0]
            if i % 2000 == 1999:
                print('[%d, %5d] loss: %.3f' % (epoch + 1, i + 1, running_loss / 2000))
                running_loss = 0.0
    print('Finished Training')
# --- end of the snippet


class SnippetCIFAR(Dataset):
    """What torchvision.datasets.CIFAR10 hands out, from an ImageSet: (PIL image, label)."""

    def __init__(self, image_set, transform=None):
        self.images = image_set.images.permute(0, 2, 3, 1).numpy()   # (N, 32, 32, 3) uint8
        self.labels = image_set.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i])
        return (self.transform(image) if self.transform else image), self.labels[i]


def source() -> str:
    """The snippet's listing: the reconstruction above, as a reviewer reads it."""
    text = inspect.getsource(sys.modules[__name__])
    return text[text.index(_LISTING_START) + len(_LISTING_START):text.index(_LISTING_END)].strip()


#: The snippet's Normalize statistics, as `Batches(..., **SNIPPET_STATS)` takes them.
SNIPPET_STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def snippet_recipe(epochs: int = 1, **overrides):
    """The snippet's optimiser as a course recipe (`fit` takes it): SGD, lr 0.001 held constant
    (no milestones), momentum 0.9, weight decay 5e-4, batch 4, no label smoothing; any field
    overridden, e.g. batch_size=128."""
    from .train import recipe
    return recipe("paper", **{"lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4,
                              "milestones": (), "batch_size": 4, "epochs": epochs, **overrides})


def block_rms(net: nn.Module, x: torch.Tensor) -> list[float]:
    """Root-mean-square of the input and of the output of each of `net`'s three blocks
    (layer1-3, in the mode the net is in), without gradients: [input, block 1, 2, 3]."""
    sizes = [x.pow(2).mean().sqrt().item()]

    def keep(_module, _inputs, out):
        sizes.append(out.pow(2).mean().sqrt().item())

    hooks = [block.register_forward_hook(keep) for block in (net.layer1, net.layer2, net.layer3)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return sizes
