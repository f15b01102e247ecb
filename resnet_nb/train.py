"""Training: a recipe (TrainConfig), its learning-rate schedule, and a plain loop.

    cfg = recipe("paper", epochs=30)              # He et al. 2015, sec. 4.2
    history = fit(model, data, cfg)               # train_one_epoch, then evaluate, per epoch

Everything a run produces is plain data: `fit` returns a History that serialises to JSON,
and checkpoints are state dicts that load with `torch.load(path, weights_only=True)`. The
run's bookkeeping (checkpoints, resuming, divergence) is in runs.py, the device and the
arithmetic in device.py.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .checks import is_int, is_real
from .data import Batches, CifarData
from .device import autocast_for, check_compile, grad_scaler, pick_device, resolve_precision
from .runs import (CHECKPOINT, HISTORY, History, check_epoch_loss, check_finite, check_numbers,
                   diverged, keep_epoch, loss_bound, new_history, save_checkpoint,
                   stopped)

RECIPE_NAMES = ("paper", "fast")
#: Seeds are 32-bit, as in numpy: enough for any experiment, and safe in every generator.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. Learning-rate milestones are fractions of the whole run."""

    recipe: str = "fast"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1                    # the peak learning rate
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    schedule: str = "step"             # "step": lr/10 at each milestone; "onecycle": up, then down to 0
    milestones: tuple[float, ...] = (0.5, 0.75)
    warmup_fraction: float = 0.0       # onecycle: the share of steps spent rising to lr
    warmup_steps: int = 0              # step: steps at lr/10 first (the paper's ResNet-110)
    seed: int = 0

    def __post_init__(self):
        # Checked here, at the boundary, so that a bad value fails now with its name,
        # not later inside the training loop.
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if not is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (is_real(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name, low, high in (("momentum", 0, 1), ("label_smoothing", 0, 1),
                                ("warmup_fraction", 0, 1)):
            value = getattr(self, name)
            if not (is_real(value) and low <= value < high):
                raise ValueError(f"{name} must be a number from {low} to below {high}, "
                                 f"got {value!r}")
        if not (is_real(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum above 0")
        if self.schedule not in ("step", "onecycle"):
            raise ValueError(f"schedule must be 'step' or 'onecycle', got {self.schedule!r}")
        m = self.milestones
        if not (isinstance(m, (tuple, list)) and all(is_real(x) and 0 < x < 1 for x in m)
                and list(m) == sorted(m)):
            raise ValueError(f"milestones must be increasing fractions of the run between 0 "
                             f"and 1, e.g. (0.5, 0.75), got {m!r}")
        # numpy's integers pass the checks: store Python's, which a history's JSON can hold.
        for name in ("epochs", "batch_size", "seed", "warmup_steps"):
            object.__setattr__(self, name, int(getattr(self, name)))


def recipe(name: str = "fast", **overrides) -> TrainConfig:
    """A named recipe, with any field overridden.

    "paper": He et al. 2015, section 4.2: SGD, momentum 0.9, weight decay 1e-4,
        batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k
        (182 epochs of 45k images; milestones at 1/2 and 3/4 of the run).
    "fast": a short budget for CPUs and quick runs: one-cycle to lr 0.2 with
        Nesterov momentum, label smoothing 0.1, weight decay 5e-4, 10 epochs.
    """
    base = {
        "paper": TrainConfig(recipe="paper", epochs=182, batch_size=128, lr=0.1, momentum=0.9,
                             weight_decay=1e-4, schedule="step", milestones=(0.5, 0.75)),
        "fast": TrainConfig(recipe="fast", epochs=10, batch_size=128, lr=0.2, momentum=0.9,
                            nesterov=True, weight_decay=5e-4, label_smoothing=0.1,
                            schedule="onecycle", warmup_fraction=0.2),
    }
    if name not in base:
        raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPE_NAMES))}, "
                         f"got {name!r}")
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"recipe() has no setting {', '.join(map(repr, unknown))}; the settings "
                         f"are {', '.join(f.name for f in fields(TrainConfig))}")
    return replace(base[name], **overrides)


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """The learning rate for optimisation step `step` (0-based) of `total_steps`."""
    progress = step / max(total_steps, 1)
    if cfg.schedule == "onecycle":
        rise = cfg.warmup_fraction
        if progress < rise:   # linear from lr/10 up to lr
            return cfg.lr * (0.1 + 0.9 * progress / rise)
        return cfg.lr * max(0.0, (1 - progress) / (1 - rise))   # linear down to 0
    if step < cfg.warmup_steps:
        return cfg.lr / 10
    passed = sum(progress >= m for m in cfg.milestones)
    return cfg.lr * 0.1 ** passed


def suggest_lr(cfg: TrainConfig) -> str:
    """A sensible lower learning rate after `cfg` diverged.

    Above the recipe's default: the default, which is known to train. At or below it:
    a tenth (the paper's own warm-up rate for ResNet-110 is a tenth of 0.1).
    """
    default = recipe(cfg.recipe).lr if cfg.recipe in RECIPE_NAMES else None
    if default is not None and cfg.lr > default:
        return f"lr={default:g}, the {cfg.recipe!r} recipe's default"
    return f"lr={cfg.lr / 10:g}"


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter, as in the paper."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def train_one_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer,
                    lr_schedule: Callable[[int], float], first_step: int = 0, *,
                    label_smoothing: float = 0.0, on_step: Callable | None = None,
                    progress: bool = True, desc: str = "train", precision: str = "auto",
                    scaler=None) -> dict:
    """One pass over `batches`. Returns {"loss", "acc", "step_loss" (list of floats)}.

    `precision` as in device.resolve_precision; `scaler` is a grad_scaler (fit passes its own,
    so that its state lasts over epochs and goes into checkpoints).
    Raises FloatingPointError naming the step if the loss becomes NaN or infinite, or
    explodes (see runs.loss_bound): above it for EXPLODE_STEPS steps, or on average over the
    epoch.
    """
    device = batches.images.device
    if scaler is None:
        scaler = grad_scaler(device, precision)
    model.train()
    losses, correct, seen = [], torch.zeros((), device=device), 0
    step, checked = first_step, 0          # checked: losses already found finite
    bound = math.inf                       # set from the number of classes at the first step
    # Pass `disable` only to switch the bar off: otherwise TQDM_DISABLE=1 decides.
    bar = progress_bar(batches, desc=desc, leave=False, **({} if progress else {"disable": True}))
    for x, y in bar:
        lr = lr_schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast_for(device, precision):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()       # = loss.backward() unless fp16 needs scaling
        scaler.step(optimizer)              # = optimizer.step() unless fp16 needs scaling
        scaler.update()

        losses.append(loss.detach())
        bound = loss_bound(logits.shape[-1])
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        step += 1
        # Check finiteness every 25 steps (every step with a callback): syncs are costly on GPUs.
        if on_step is not None or step % 25 == 0:
            check_finite(losses, checked, first_step, lr_schedule, bound)
            checked = len(losses)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.3g}", refresh=False)
        if on_step is not None:
            on_step(step, loss.item())
    check_finite(losses, checked, first_step, lr_schedule, bound)
    step_loss = torch.stack(losses).float().cpu().tolist() if losses else []
    mean = sum(step_loss) / max(len(step_loss), 1)
    check_epoch_loss(mean, step_loss, bound, first_step, lr_schedule)
    return {"loss": mean, "acc": float(correct) / max(seen, 1), "step_loss": step_loss}


def evaluate(model: nn.Module, batches: Batches, precision: str = "auto") -> dict:
    """Mean cross-entropy and accuracy of `model` on `batches` (eval mode, no augmentation)."""
    device = batches.images.device
    model.eval()
    total_loss, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
    # `with`, not the @torch.no_grad() decorator: mutmut skips decorated functions.
    with torch.no_grad():
        for x, y in batches:
            with autocast_for(device, precision):
                logits = model(x)
            total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
    return {"loss": float(total_loss) / max(seen, 1), "acc": float(correct) / max(seen, 1)}


def predict(model: nn.Module, batches: Batches, precision: str = "auto") -> torch.Tensor:
    """Predicted class of every image in `batches`, in order, on the CPU."""
    device = batches.images.device
    model.eval()
    out = []
    with torch.no_grad():
        for x, _ in batches:
            with autocast_for(device, precision):
                out.append(model(x).argmax(1).cpu())
    return torch.cat(out)


def fit(model: nn.Module, data: CifarData, cfg: TrainConfig, *,
        out_dir: str | os.PathLike | None = None, resume: bool = False,
        device: str | torch.device | None = None, precision: str = "auto",
        compile: str | None = None, on_step: Callable[[int, float], None] | None = None,
        progress: bool = True, verbose: bool = True, evaluate_test: bool = True,
        provenance: dict | None = None, batches: Callable[..., Batches] = Batches,
        group: distributed.Group = distributed.SINGLE) -> History:
    """Train `model` on `data.train` with recipe `cfg`; evaluate on val/test after each epoch.

    With `out_dir`, a checkpoint and the history are written after every epoch whose numbers
    are all finite, and `resume=True` continues exactly as if the run had not stopped (see
    runs.open_run for the checks). KeyboardInterrupt ends training cleanly, returning the
    history so far; a loss that explodes raises TrainingDiverged, a failed save SaveFailed.
    `verbose=False` prints nothing. `precision`: see device.resolve_precision; `compile`: None
    or a torch.compile mode. `batches` makes the mini-batches as Batches does (e.g.
    functools.partial(Batches, augment=False)); history.provenance records what they do, with
    `provenance`'s entries and one record per sitting (provenance["sittings"]). `group`: this
    process's place in a torchrun run (distributed.py), whose rank 0 alone writes and prints.
    """
    say = print if verbose and group.writes else (lambda *a, **k: None)
    _check_sets(data, evaluate_test)
    device = pick_device(str(device) if device is not None else None)
    precision = resolve_precision(device, precision)
    check_compile(compile)
    model.to(device=device, memory_format=torch.channels_last)
    # DDP and compile share `model`'s tensors: training updates `model` (one state dict).
    step_model = distributed.wrap(model, group, device)
    step_model = torch.compile(step_model, mode=compile) if compile else step_model
    scaler = grad_scaler(device, precision)
    # Each process trains on its share of every global batch of cfg.batch_size images.
    train = distributed.shard(batches(data.train, cfg.batch_size, train=True, device=device,
                                      seed=cfg.seed), group)
    evaluated = _evaluation_batches(batches, data, evaluate_test, device)
    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(train)
    history = new_history(model, cfg, data, train, {**(provenance or {}), "precision": precision,
                                                    "compile": compile or "off"})
    out = Path(out_dir) if out_dir is not None else None
    # Checks the folder and locks it for this process (released when the run ends).
    lock, start_epoch, history = distributed.open_run(group, out, resume, model, optimizer, cfg,
                                                      device, history, say, scaler)
    out = out if group.writes else None     # rank 0 alone writes checkpoints and the history
    history.status = "running"
    epoch = start_epoch
    with lock:
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.perf_counter()
                train.set_epoch(epoch)
                first = epoch * len(train)
                stats = train_one_epoch(step_model, train, optimizer,
                                        lambda s: lr_at(s, total_steps, cfg), first,
                                        label_smoothing=cfg.label_smoothing, on_step=on_step,
                                        progress=progress and group.writes,
                                        desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                        precision=precision, scaler=scaler)
                stats = distributed.reduce_epoch(stats, group)    # over the global batches
                record = _epoch_record(epoch, stats, t0, len(train) * cfg.batch_size,
                                       lr_at(first, total_steps, cfg), model, evaluated, precision)
                check_numbers(model, optimizer, record)    # only finite epochs are kept
                keep_epoch(history, record, stats["step_loss"], out, lambda: save_checkpoint(
                    out / CHECKPOINT, model, optimizer, epoch + 1, history, cfg, scaler))
            history.status = "completed"
        except KeyboardInterrupt:
            say(stopped(history, epoch, out))
        except FloatingPointError as e:
            raise diverged(history, e, epoch, suggest_lr(cfg), out) from None
    if out is not None:
        history.save(out / HISTORY)
    return history


def _epoch_record(epoch: int, stats: dict, t0: float, images: int, lr: float, model: nn.Module,
                  evaluated: dict[str, Batches], precision: str) -> dict:
    """Epoch `epoch`'s (0-based) numbers: its training loss, accuracy and speed (`images`
    trained since `t0`), then the loss and accuracy of each set in `evaluated`."""
    # train_one_epoch ends by reading its losses, which waits for the device.
    train_seconds = time.perf_counter() - t0
    record = {"epoch": epoch + 1, "lr": lr, "train_loss": stats["loss"],
              "train_acc": stats["acc"], "train_seconds": train_seconds,
              "images_per_second": images / train_seconds}
    for name, evaluation in evaluated.items():
        result = evaluate(model, evaluation, precision)
        record.update({f"{name}_loss": result["loss"], f"{name}_acc": result["acc"]})
    record["seconds"] = time.perf_counter() - t0
    return record


def _evaluation_batches(batches: Callable[..., Batches], data: CifarData, evaluate_test: bool,
                        device: torch.device) -> dict[str, Batches]:
    """{"val": ..., "test": ...}: the sets fit evaluates after each epoch, as they are."""
    sets = {"val": data.val, "test": data.test if evaluate_test else None}
    return {name: batches(images, 512, device=device, augment=False)
            for name, images in sets.items() if images is not None}


def _check_sets(data: CifarData, evaluate_test: bool) -> None:
    if len(data.train) == 0:
        raise ValueError("data.train is empty: fit needs training images")
    if data.val is not None and len(data.val) == 0:
        raise ValueError("data.val is empty: hold out at least one image, or none (val=None)")
    if evaluate_test and len(data.test) == 0:
        raise ValueError("data.test is empty: give test images, or pass evaluate_test=False")


def progress_bar(iterable, **kwargs):
    """A tqdm.auto bar (a widget in Jupyter), switched off when TQDM_DISABLE is set.

    tqdm's terminal bar reads TQDM_DISABLE itself, but its notebook bar does not,
    so the setting is applied here for both.
    """
    from tqdm.auto import tqdm
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false"):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
