"""Which arithmetic and which torch.compile mode train fastest here? Prints measured ratios.

    python benchmarks/precision_and_compile.py [--data PATH] [--depths 20 56] [--steps 60]
        [--repeats 3] [--variants eager-fp32 eager-fp16 eager-bf16 compile-default-bf16 ...]
        [--json results.json]

Each variant trains a CIFAR ResNet with resnet_nb's own `train_one_epoch` (batch 128, real
augmented images held on the device, channels_last):

  eager-fp32            float32 (on NVIDIA GPUs cuDNN uses TF32 for convolutions)
  eager-fp16            fp16 autocast with loss scaling (what GPUs without bf16 use, e.g. T4)
  eager-bf16            bf16 autocast (what GPUs with native bf16 use)
  compile-default-bf16  torch.compile(model) of the training forward (and its backward)
  compile-reduce-overhead-bf16   the same, replayed as CUDA graphs

A variant is first warmed up (for compiled variants this is when they compile: the warm-up
time minus the steady-state time of the same steps is reported as compile time), then
timed over `--steps` steps, `--repeats` times, the variants taking turns so that drift hits
them alike. It prints images/s (median and range) and each variant's ratio to the first
variant of its depth, with the range of the per-repeat ratios. A variant that fails (e.g.
no compiler for torch.compile) is reported and skipped. Needs real CIFAR-10 images.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from resnet_nb import cifar_resnet, load_cifar10
from resnet_nb.data import Batches
from resnet_nb.device import pick_device
from resnet_nb.provenance import device_name, git_commit
from resnet_nb.train import lr_at, make_optimizer, recipe, train_one_epoch

BATCH = 128
VARIANTS = ("eager-fp32", "eager-fp16", "eager-bf16", "compile-default-bf16",
            "compile-reduce-overhead-bf16")


def parse(variant: str) -> tuple[str | None, str]:
    """'compile-reduce-overhead-bf16' -> ('reduce-overhead', 'bf16'); 'eager-fp16' -> (None, ...)."""
    kind, _, rest = variant.partition("-")
    mode, _, precision = rest.rpartition("-")
    if kind == "eager":
        return None, precision
    return mode, precision


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Runner:
    """One model and optimizer, trained in chunks of `steps` batches with train_one_epoch."""

    def __init__(self, depth, variant, images, device, steps, warm_steps):
        mode, self.precision = parse(variant)
        torch.manual_seed(0)
        self.model = cifar_resnet(depth).to(device, memory_format=torch.channels_last)
        self.step_model = torch.compile(self.model, mode=mode) if mode else self.model
        self.cfg = recipe("paper")
        self.opt = make_optimizer(self.model, self.cfg)
        self.batches = Batches(images, BATCH, train=True, device=device)
        self.steps, self.warm_steps, self.device = steps, warm_steps, device
        self.epoch = 0

    def run(self, steps: int) -> float:
        """Seconds for `steps` training steps (synchronised)."""
        self.batches.set_epoch(self.epoch)
        self.epoch += 1
        n = steps * BATCH
        full_images, full_labels = self.batches.images, self.batches.labels
        self.batches.images, self.batches.labels = full_images[:n], full_labels[:n]
        try:
            sync(self.device)
            t = time.perf_counter()
            stats = train_one_epoch(self.step_model, self.batches, self.opt,
                                    lambda s: lr_at(s, 64_000, self.cfg), progress=False,
                                    precision=self.precision)
            sync(self.device)
            seconds = time.perf_counter() - t
        finally:
            self.batches.images, self.batches.labels = full_images, full_labels
        if not all(map(lambda x: x == x, stats["step_loss"])):
            raise FloatingPointError("a loss was NaN")
        return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA)")
    p.add_argument("--device", help="default: the best available")
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=60, help="timed steps per repeat")
    p.add_argument("--warm-steps", type=int, default=12, help="warm-up steps (compiles)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)

    device = pick_device(args.device)
    data = load_cifar10(args.data)
    if data.source == "synthetic":
        raise SystemExit("this benchmark needs the real CIFAR-10 images (RESNET_NB_DATA)")
    images = data.subset(train=BATCH * max(args.steps, args.warm_steps), seed=1).train
    print(f"{device_name(device)}; torch {torch.__version__}; git {git_commit()}; batch {BATCH}, "
          f"{args.steps} steps x {args.repeats} repeats", flush=True)
    results = {"device": device_name(device), "torch": str(torch.__version__),
               "steps": args.steps, "repeats": args.repeats, "depths": {}}
    for depth in args.depths:
        runners, failed, warm = {}, {}, {}
        for variant in args.variants:
            try:
                r = Runner(depth, variant, images, device, args.steps, args.warm_steps)
                first = r.run(args.warm_steps)          # compiles, for compiled variants
                again = r.run(args.warm_steps)          # steady state over the same steps
                warm[variant] = max(0.0, first - again)
                runners[variant] = r
                print(f"  ResNet-{depth} {variant}: ready (warm-up {first:.1f} s, "
                      f"extra first-call time {warm[variant]:.1f} s)", flush=True)
            except Exception as e:      # report and go on: one broken variant is a result too
                failed[variant] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print(f"  ResNet-{depth} {variant}: FAILED ({failed[variant]})", flush=True)
        speeds = {v: [] for v in runners}
        for _ in range(args.repeats):
            for v, r in runners.items():
                speeds[v].append(args.steps * BATCH / r.run(args.steps))
        base = next(iter(speeds), None)
        rows = {}
        print(f"== ResNet-{depth}, images/s (median, range) and ratio to {base}")
        for v, s in speeds.items():
            ratios = [a / b for a, b in zip(s, speeds[base])]
            rows[v] = {"images_per_second": s, "median": statistics.median(s),
                       "ratio_to_first": statistics.median(ratios),
                       "ratio_range": [min(ratios), max(ratios)],
                       "first_call_extra_seconds": warm[v]}
            print(f"  {v:<30} {statistics.median(s):>9,.0f}  ({min(s):,.0f}-{max(s):,.0f})"
                  f"   x{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                  f"   first call +{warm[v]:.0f} s", flush=True)
        for v, why in failed.items():
            print(f"  {v:<30} failed: {why}")
        results["depths"][str(depth)] = {"variants": rows, "failed": failed}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
