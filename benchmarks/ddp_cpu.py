"""What does a 2-process DistributedDataParallel run cost per image on the CPU?

    python benchmarks/ddp_cpu.py [--repeats 3] [--train-size 2048] [--epochs 3]

Trains ResNet-20 at smoke size (synthetic images, batch 128) with `python -m resnet_nb
train`, in turns: one process using every core, and `torchrun --nproc_per_node=2` with one
thread per process (gloo; each process half of every batch; batch norm over the global
batch). Speeds are the training images/s the runs record, median over epochs after the
first. Prints each variant's images/s (median and range over repeats) and the ratio of
time per image, 2 processes / 1 process, with the range of the per-repeat ratios.

It also measures, in 2 gloo processes on this machine, what the all-reduces of one
training step cost alone: the gradients (one all-reduce of ResNet-20's 269,722 numbers)
and the batch norms' statistics (19 layers, 2 forward and 2 backward all-reduces each).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS, BN_LAYERS, BN_WIDTHS = 269_722, 19, (16,) * 7 + (32,) * 6 + (64,) * 6


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}


def images_per_second(processes: int, args) -> float:
    train = ["-m", "resnet_nb", "train", "--data", "synthetic", "--train-size",
             str(args.train_size), "--test-size", "100", "--batch-size", "128", "--epochs",
             str(args.epochs), "--profile", "smoke", "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        launch = [sys.executable] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}"]
        cores = os.cpu_count() or 1
        subprocess.run([*launch, *train, "--out", f"{tmp}/run"], check=True, cwd=ROOT,
                       env=_env(max(1, cores // processes)), capture_output=True)
        epochs = json.loads(Path(f"{tmp}/run/history.json").read_text())["epochs"]
    return statistics.median(e["images_per_second"] for e in epochs[1:])


def allreduce_seconds(steps: int = 20) -> None:
    """Run inside torchrun: time one step's all-reduces (rank 0 prints seconds per step)."""
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    grads = torch.randn(PARAMETERS)
    stats = [torch.randn(w) for w in BN_WIDTHS]

    def step() -> None:
        for s in stats:
            for _ in range(4):          # mean and variance, forward and backward
                dist.all_reduce(s)
        dist.all_reduce(grads)
    step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    if dist.get_rank() == 0:
        print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / steps}))
    dist.destroy_process_group()


def spread(values) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    one, two = [], []
    for _ in range(args.repeats):           # in turns, so that a busy machine slows both
        one.append(images_per_second(1, args))
        two.append(images_per_second(2, args))
    ratios = [a / b for a, b in zip(one, two)]       # time per image, 2 processes / 1
    probe = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2", __file__, "--allreduce"], cwd=ROOT,
                           env=_env(1), capture_output=True, text=True, check=True)
    reduce_s = json.loads(probe.stdout.strip().splitlines()[-1])["seconds_per_step"]
    print(f"ResNet-20, batch 128, {args.train_size} synthetic images, {os.cpu_count()} cores, "
          f"{args.repeats} repeats (median, range)")
    print(f"1 process, {os.cpu_count()} threads: {spread(one)} images/s")
    print(f"2 processes (gloo), 1 thread each: {spread(two)} images/s")
    print(f"time per image, 2 processes / 1 process: {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    step_s = 128 / statistics.median(two)            # one global batch of 128
    print(f"all-reduces of one step alone (2 gloo processes): {1000 * reduce_s:.1f} ms, "
          f"{100 * reduce_s / step_s:.0f}% of a 2-process step ({1000 * step_s:.0f} ms)")


if __name__ == "__main__":
    if "--allreduce" in sys.argv:
        allreduce_seconds()
    else:
        main()
