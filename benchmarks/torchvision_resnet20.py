"""An independent ResNet-20 on CIFAR-10, written the way torchvision's tutorials write it.

It shares no code with resnet_nb: its own network (He et al. 2015, sec. 4.2, option A
shortcuts), torchvision's ImageFolder, transforms and DataLoader, float32, and the paper's
recipe at the course's fig6 budget (30 epochs of all 50,000 training images, batch 128,
SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 after 50% and 75% of the
iterations). Compare its test error with the package's run of the same budget:

    python benchmarks/torchvision_resnet20.py --data cifar10-jpeg.tar.gz --out runs/tv-resnet20
    python -m resnet_nb train --depth 20 --recipe paper --epochs 30 --train-size all \
        --test-size all --device cpu --data cifar10-jpeg.tar.gz --out runs/pkg-resnet20

--data is an image folder (train/<class>/*, test/<class>/*) or a .tar.gz of one (unpacked
once into <out>/images/). A checkpoint is written after every epoch; --resume continues
from it. history.json holds each epoch's train accuracy (on the augmented batches, as
trained on), test accuracy and images/s.
"""
from __future__ import annotations

import argparse
import json
import os
import tarfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets, transforms

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin           # option A: subsample and pad channels with zeros
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    def __init__(self, n=3, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def image_folder(data: Path, out: Path) -> Path:
    """The folder holding train/ and test/: `data` itself, or the archive unpacked once."""
    if data.is_dir():
        root = data
    else:
        target = out / "images"
        if not (target / ".unpacked").exists():
            with tarfile.open(data) as tar:
                tar.extractall(target, filter="data")
            (target / ".unpacked").touch()
        root = target
    found = [p.parent for p in root.rglob("train") if (p.parent / "test").is_dir()]
    if not found:
        raise SystemExit(f"{data}: no train/ and test/ folders inside")
    return found[0]


def image_sets(root: Path, train_size: int | None):
    """torchvision's ImageFolder datasets with the paper's augmentation (crop and flip)."""
    normalize = transforms.Normalize(MEAN, STD)
    train_set = datasets.ImageFolder(root / "train", transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), normalize]))
    if train_size:
        train_set = torch.utils.data.Subset(
            train_set, torch.randperm(len(train_set))[:train_size].tolist())
    test_set = datasets.ImageFolder(root / "test",
                                    transforms.Compose([transforms.ToTensor(), normalize]))
    return train_set, test_set


def train_epoch(model, loader, optimizer, scheduler) -> tuple[int, int]:
    """One pass over `loader`; (correct, seen) on the augmented batches as trained on."""
    model.train()
    correct, seen = 0, 0
    for x, y in loader:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return correct, seen


def accuracy(model, loader) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(loader.dataset)


def save(out: Path, state: dict) -> None:
    """The checkpoint, then the history, each written beside its place and renamed into it."""
    torch.save(state, out / "checkpoint.pt.tmp")
    os.replace(out / "checkpoint.pt.tmp", out / "checkpoint.pt")
    (out / "history.json.tmp").write_text(json.dumps(state["history"], indent=1))
    os.replace(out / "history.json.tmp", out / "history.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--train-size", type=int, help="fewer training images (a quick check)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.resume and (a.out / "history.json").exists():
        raise SystemExit(f"{a.out} already holds a run: use --resume or another --out")
    root = image_folder(a.data, a.out)

    torch.manual_seed(a.seed)
    train_set, test_set = image_sets(root, a.train_size)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=512, num_workers=a.workers)
    model = ResNet20()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    total = a.epochs * (len(train_set) // 128)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[total // 2, total * 3 // 4], gamma=0.1)   # stepped per iteration
    history, start = {"epochs": [], "config": vars(a) | {"data": str(a.data), "out": str(a.out)}}, 0
    if a.resume and (a.out / "checkpoint.pt").exists():
        state = torch.load(a.out / "checkpoint.pt", weights_only=True)
        for obj, key in ((model, "model"), (optimizer, "optimizer"), (scheduler, "scheduler")):
            obj.load_state_dict(state[key])
        history = state["history"]           # saved with the weights: the two always agree
        start = len(history["epochs"])
        print(f"resuming after epoch {start}")
    history["torch"] = str(torch.__version__)
    history["threads"] = torch.get_num_threads()

    for epoch in range(start, a.epochs):
        # The shuffle depends on (seed, epoch) only, so a resumed run sees the same order.
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=128, shuffle=True, drop_last=True, num_workers=a.workers,
            generator=torch.Generator().manual_seed(a.seed * 1000 + epoch))
        t0 = time.perf_counter()
        correct, seen = train_epoch(model, loader, optimizer, scheduler)
        train_seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "train_acc": correct / seen,
                  "test_acc": accuracy(model, test_loader),
                  "images_per_second": seen / train_seconds,
                  "seconds": time.perf_counter() - t0}
        history["epochs"].append(record)
        print(json.dumps(record), flush=True)
        save(a.out, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "history": history})
    last = history["epochs"][-1]
    print(f"test error {100 * (1 - last['test_acc']):.2f}%, "
          f"train error {100 * (1 - last['train_acc']):.2f}% after {len(history['epochs'])} epochs")


if __name__ == "__main__":
    main()
