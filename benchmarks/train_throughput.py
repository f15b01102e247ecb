"""How fast is resnet_nb's training loop? Prints ratios measured in the same run, repeated.

    python benchmarks/train_throughput.py [--data PATH] [--steps 30] [--repeats 5] [--device cpu]

For each device (the CPU, and CUDA where available), three ways of training
ResNet-20 with batch 128 are timed in turns, `--repeats` times each:

  loop      resnet_nb's training loop: uint8 images on the device, batched
            crop/flip on tensors, channels_last (bf16 autocast on CUDA);
  bare      forward + backward + step on one fixed batch, same memory format
            and precision: the ceiling for any loop;
  tutorial  the way tutorials write it: torchvision transforms per PIL image,
            DataLoader(num_workers=2, shuffle), NCHW float32.

It prints images/s for each (median and range over repeats) and the ratios
loop/bare and loop/tutorial, each with the range of the per-repeat ratios.
Needs a real CIFAR-10 copy (RESNET_NB_DATA or --data).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from resnet_nb import cifar_resnet, load_cifar10
from resnet_nb.data import MEAN, STD, Batches
from resnet_nb.device import autocast_for, grad_scaler
from resnet_nb.provenance import device_name, git_commit
from resnet_nb.train import lr_at, make_optimizer, recipe, train_one_epoch

BATCH = 128


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def fresh_model(device, channels_last=True):
    torch.manual_seed(0)
    model = cifar_resnet(20).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def time_loop(data, device, steps):
    """resnet_nb's own train_one_epoch over `steps` batches of real, augmented images."""
    model, cfg = fresh_model(device), recipe("fast")
    opt = make_optimizer(model, cfg)
    subset = data.subset(train=BATCH * (steps + 3), seed=1).train
    batches = Batches(subset, BATCH, train=True, device=device)
    warm = Batches(subset.take(torch.arange(3 * BATCH)), BATCH, train=True, device=device)
    schedule = lambda s: lr_at(s, 10_000, cfg)
    train_one_epoch(model, warm, opt, schedule, progress=False)     # warm-up
    batches.images, batches.labels = batches.images[:BATCH * steps], batches.labels[:BATCH * steps]
    sync(device)
    t = time.perf_counter()
    train_one_epoch(model, batches, opt, schedule, label_smoothing=cfg.label_smoothing,
                    progress=False)
    sync(device)
    return BATCH * steps / (time.perf_counter() - t)


def time_bare(device, steps):
    """The ceiling: one fixed batch, no data handling at all."""
    model, cfg = fresh_model(device), recipe("fast")
    opt = make_optimizer(model, cfg)
    x = torch.randn(BATCH, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,), device=device)
    scaler = grad_scaler(device)     # as train_one_epoch: fp16 (e.g. a T4) needs loss scaling

    def step():
        with autocast_for(device):
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    for _ in range(3):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return BATCH * steps / (time.perf_counter() - t)


class TutorialCIFAR(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does: HWC uint8 in memory, a PIL image per item."""

    def __init__(self, images_u8, labels, transform):
        self.images = images_u8.permute(0, 2, 3, 1).numpy()   # (N, 32, 32, 3)
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def make_tutorial_loader(data, steps):
    import torchvision.transforms as T
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    subset = data.subset(train=BATCH * (steps + 3), seed=1).train
    ds = TutorialCIFAR(subset.images, subset.labels, transform)
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=2)


def time_tutorial(loader, device, steps):
    """The tutorial loop: NCHW float32, no autocast, .to(device) per batch."""
    model, cfg = fresh_model(device, channels_last=False), recipe("fast")
    opt = make_optimizer(model, cfg)
    it = iter(loader)
    t = None
    for i in range(steps + 3):
        if i == 3:              # steady state: the workers are up and ahead
            sync(device)
            t = time.perf_counter()
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return BATCH * steps / (time.perf_counter() - t)


def summary(name, values):
    med = statistics.median(values)
    return f"{name}: median {med:,.0f} images/s (range {min(values):,.0f}-{max(values):,.0f})"


def ratio_line(label, num, den, target):
    ratios = [a / b for a, b in zip(num, den)]
    med = statistics.median(ratios)
    verdict = "meets" if med >= target else "MISSES"
    return (f"{label}: {med:.2f} (range {min(ratios):.2f}-{max(ratios):.2f} over "
            f"{len(ratios)} repeats; target >= {target}: {verdict})")


def bench(data, device, steps, repeats):
    loader = make_tutorial_loader(data, steps)
    loop, bare, tut = [], [], []
    for _ in range(repeats):                 # interleaved, so drift hits all three alike
        loop.append(time_loop(data, device, steps))
        bare.append(time_bare(device, steps))
        tut.append(time_tutorial(loader, device, steps))
    print(f"== {device_name(device)}, ResNet-20, batch {BATCH}, {steps} steps x {repeats} repeats")
    print(summary("  loop    ", loop))
    print(summary("  bare    ", bare))
    print(summary("  tutorial", tut))
    print(ratio_line(f"[{device.type}] loop / bare fwd+bwd+step", loop, bare, 0.9))
    print(ratio_line(f"[{device.type}] loop / tutorial DataLoader", loop, tut, 1.2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", action="append", help="cpu and/or cuda (default: all available)")
    args = p.parse_args()
    data = load_cifar10(args.data)
    if data.source == "synthetic":
        raise SystemExit("this benchmark needs the real CIFAR-10 images (RESNET_NB_DATA)")
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, git {git_commit()}")
    for d in devices:
        bench(data, torch.device(d), args.steps, args.repeats)


if __name__ == "__main__":
    main()
