"""One run across several processes: DistributedDataParallel, started by torchrun.

    torchrun --standalone --nproc_per_node=2 -m resnet_nb train --depth 20 ...

`fit` stays a single-process loop; it calls this module at four named points, each of
which does nothing in a plain run (`SINGLE`):

* `shard(batches, group)`: every process draws the same global batch (same order, same
  crops and flips, from the run's seed) and keeps its slice of it, so that the global batch
  is the single-process run's batch and the learning-rate schedule counts the same steps;
* `wrap(model, group, device)`: batch norm over the global batch (below), then DDP, which
  averages the gradients of the processes: the mean of equal shards' mean losses is the
  global batch's mean loss, so one step equals the single-process step;
* `open_run(...)`: rank 0 checks, locks and restores the output folder; the others wait,
  then read the same checkpoint. Checkpoints hold the plain network, so a run resumes with
  any number of processes;
* `reduce_epoch(stats, group)`: the epoch's losses and accuracy over the global batches.

Rank 0 alone writes checkpoints and the history (`writes`). The data are decoded once per
machine: `first_on_each_machine` lets local rank 0 fill the cache while the others wait.

Batch norm: on GPUs torch's SyncBatchNorm (nccl). torch's SyncBatchNorm refuses CPU
tensors, so on CPUs (gloo) `GlobalBatchNorm2d` computes the same statistics: the mean and
variance of the whole global batch, gathered with autograd-aware all-reduces.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place among those training one network (torchrun's RANK etc.)."""

    rank: int = 0
    local_rank: int = 0          # the rank on this machine (picks its GPU)
    world_size: int = 1

    @property
    def writes(self) -> bool:
        """Rank 0 writes the checkpoints, the history and what is printed."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world_size > 1


SINGLE = Group()


def from_environment() -> Group:
    """The Group torchrun describes in RANK, LOCAL_RANK and WORLD_SIZE (SINGLE without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Group(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)


def start(group: Group, device: torch.device) -> None:
    """Join the process group: nccl between GPUs, gloo between CPUs."""
    if not group.many:
        return
    import torch.distributed as dist
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(group: Group) -> None:
    import torch.distributed as dist
    if group.many and dist.is_initialized():
        dist.destroy_process_group()


def device_for(group: Group, device: torch.device) -> torch.device:
    """On GPUs, one per process on each machine: cuda:LOCAL_RANK."""
    if group.many and device.type == "cuda" and device.index is None:
        return torch.device("cuda", group.local_rank)
    return device


def barrier(group: Group) -> None:
    if group.many:
        import torch.distributed as dist
        dist.barrier()


@contextlib.contextmanager
def first_on_each_machine(group: Group):
    """Run the body in local rank 0 first (e.g. decoding the data into the cache), then in
    the others, which then read what it left (the cache)."""
    if group.local_rank != 0:
        barrier(group)
    yield
    if group.local_rank == 0:
        barrier(group)


def agree(group: Group, check) -> None:
    """Run `check()` on rank 0; if it raises a user error, raise it on every rank.

    So that a refusal (a busy or foreign --out) ends every process with the same line.
    """
    error = None
    if group.writes:
        try:
            check()
        except (ValueError, OSError) as e:
            error = e
    if group.many:
        import torch.distributed as dist
        box = [None if error is None else (type(error).__name__, str(error))]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None and error is None:
            error = ValueError(box[0][1])
    if error is not None:
        raise error


# --- the four points fit calls ---------------------------------------------------------

class Shard:
    """This process's slice of every global batch of `batches` (a Batches).

    Every process draws the whole global batch from the same generator, as a single process
    would, and keeps rows [rank * b, (rank + 1) * b) of it, b = batch_size / world_size.
    """

    def __init__(self, batches, group: Group):
        if batches.batch_size % group.world_size:
            raise ValueError(f"the batch size ({batches.batch_size}) must be a multiple of the "
                             f"number of processes ({group.world_size})")
        self.batches, self.group = batches, group
        self.local = batches.batch_size // group.world_size

    def __getattr__(self, name):          # images, batch_size, augment, mean, std, ...
        return getattr(self.batches, name)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self):
        lo = self.group.rank * self.local
        for x, y in self.batches:         # x: (B, 3, 32, 32), y: (B,)
            yield x[lo:lo + self.local], y[lo:lo + self.local]


def shard(batches, group: Group):
    return Shard(batches, group) if group.many else batches


def wrap(model: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """`model` (already on `device`) with global-batch batch norm, in DDP; `model` itself
    keeps the parameters (its state dict has no "module." prefix)."""
    if not group.many:
        return model
    from torch.nn.parallel import DistributedDataParallel
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device])
    _use_global_batch_norm(model)
    return DistributedDataParallel(model)


def open_run(group: Group, out, resume: bool, model, optimizer, cfg, device, history, say,
             scaler=None):
    """runs.open_run for rank 0 (check, lock, restore); the others then restore the same
    checkpoint without taking the lock."""
    from .runs import open_run as open_one
    if not group.many:
        return open_one(out, resume, model, optimizer, cfg, device, history, say, scaler)
    if group.writes:
        opened = open_one(out, resume, model, optimizer, cfg, device, history, say, scaler)
        barrier(group)
        return opened
    barrier(group)
    return open_one(out, resume, model, optimizer, cfg, device, history, lambda *a, **k: None,
                    scaler, lock=False)


def reduce_epoch(stats: dict, group: Group) -> dict:
    """train_one_epoch's {"loss", "acc", "step_loss"} over the global batches: equal shards,
    so each step's loss (and the accuracy) is the mean over the processes."""
    if not group.many:
        return stats
    import torch.distributed as dist
    numbers = torch.tensor([*stats["step_loss"], stats["acc"]], dtype=torch.float64)
    dist.all_reduce(numbers)
    numbers /= group.world_size
    step_loss = numbers[:-1].tolist()
    return {"loss": sum(step_loss) / max(len(step_loss), 1), "acc": float(numbers[-1]),
            "step_loss": step_loss}


# --- batch norm over the global batch on CPUs -------------------------------------------

class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (all processes).

    Two all-reduces, as a single process computes them: the mean, then the mean squared
    deviation from it; the gradients flow back through them to every process. Evaluation uses the running statistics, as BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        world = dist.get_world_size()
        count = world * x.numel() // x.shape[1]                  # N * H * W over all shards
        mean = _SumOverProcesses.apply(x.sum((0, 2, 3))) / count          # (C,)
        centred = x - mean.view(1, -1, 1, 1)
        var = _SumOverProcesses.apply((centred * centred).sum((0, 2, 3))) / count  # biased
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * count / (count - 1))
            self.num_batches_tracked += 1
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        return out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _SumOverProcesses(torch.autograd.Function):
    """y = the sum of x over the processes; the gradient of each x is the sum of y's
    gradients over the processes (every process's loss depends on y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _use_global_batch_norm(model: nn.Module) -> None:
    """Turn every BatchNorm2d of `model` into a GlobalBatchNorm2d, in place (same state)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            if module.momentum is None or not module.affine or not module.track_running_stats:
                raise ValueError("GlobalBatchNorm2d needs affine batch norm with a momentum")
            module.__class__ = GlobalBatchNorm2d
