"""Training: a plain loop (train_one_epoch, evaluate, fit), named recipes, checkpoints.

Everything a run produces is plain data: `fit` returns a History that
serialises to JSON, and checkpoints are state dicts that load with
`torch.load(path, weights_only=True)`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import MEAN, STD, Batches, CifarData

RECIPE_NAMES = ("paper", "fast")
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"


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
        if self.epochs <= 0:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.schedule not in ("step", "onecycle"):
            raise ValueError(f"schedule must be 'step' or 'onecycle', got {self.schedule!r}")


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


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then the CPU (or `prefer`, e.g. "cpu")."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead")


def resolve_precision(device: torch.device | str, precision: str = "auto") -> str:
    """The arithmetic a run on `device` uses: "bf16", "fp16" or "fp32".

    "auto" picks bf16 mixed precision on CUDA GPUs that compute in bf16 natively (compute
    capability >= 8.0: A100, L4, H100, RTX 30xx and newer), fp16 mixed precision with loss
    scaling on older CUDA GPUs (e.g. Colab's T4, which only emulates bf16), and float32
    elsewhere (CPUs, Apple GPUs). Asking for bf16 or fp16 off a CUDA GPU is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    device = torch.device(device)
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise ValueError(f"{precision} mixed precision needs a CUDA GPU; on {device.type} "
                             "use precision 'fp32' (or 'auto')")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    return precision


def autocast_for(device: torch.device | str, precision: str = "auto"):
    """The autocast context for `device` and `precision` (see resolve_precision).

    Under it, convolutions and matrix products run in bf16 or fp16 while reductions such as
    the loss stay in float32; with "fp32" it does nothing.
    """
    p = resolve_precision(device, precision)
    if p == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if p == "bf16" else torch.float16)


def grad_scaler(device: torch.device | str, precision: str = "auto"):
    """Loss scaling for fp16, whose small range lets small gradients underflow to 0.

    scaler.scale(loss).backward() multiplies the loss (so every gradient) by a large factor;
    scaler.step(optimizer) divides the gradients back first, and skips the step when one
    overflowed; scaler.update() adapts the factor. Off fp16 the scaler does nothing, so the
    same loop serves every precision.
    """
    enabled = resolve_precision(device, precision) == "fp16"
    if hasattr(torch.amp, "GradScaler"):            # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def seed_everything(seed: int) -> None:
    """Seed PyTorch's generators (model initialisation; data order is seeded separately)."""
    torch.manual_seed(seed)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. `.history` holds the run up to that point."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """What a run produced, as plain data (JSON-serialisable)."""

    model: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    steps_per_epoch: int = 0
    total_steps: int = 0
    step_loss: list = field(default_factory=list)   # one float per optimisation step
    epochs: list = field(default_factory=list)      # one dict per finished epoch
    wall_time: float = 0.0                          # seconds spent training and evaluating
    status: str = "new"                             # running, completed, interrupted, diverged
    message: str = ""
    provenance: dict = field(default_factory=dict)

    def last(self, key: str, default=None):
        """The latest epoch's value of `key` (e.g. "test_acc")."""
        return self.epochs[-1].get(key, default) if self.epochs else default

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        _atomic_write(Path(path), lambda f: f.write(json.dumps(self.to_dict(), indent=1)
                                                    .encode()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _plain(d: dict) -> dict:
    """The same data as JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(d))


def _atomic_write(path: Path, write: Callable) -> None:
    """Write to a temporary file, then rename: an interrupt never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def progress_bar(iterable, **kwargs):
    """A tqdm.auto bar (a widget in Jupyter), switched off when TQDM_DISABLE is set.

    tqdm's terminal bar reads TQDM_DISABLE itself, but its notebook bar does not,
    so the setting is applied here for both.
    """
    from tqdm.auto import tqdm
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false"):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def _check_finite(losses: list[torch.Tensor], start: int, first_step: int,
                  lr_schedule: Callable[[int], float]) -> None:
    """Raise FloatingPointError naming the first step from losses[start:] whose loss is not finite.

    One device sync for all the losses checked, instead of one per step.
    """
    if start >= len(losses):
        return
    finite = torch.isfinite(torch.stack(losses[start:]).float()).cpu()
    if bool(finite.all()):
        return
    i = start + int((~finite).nonzero()[0])
    at = first_step + i
    raise FloatingPointError(f"the loss became {float(losses[i])} at step {at} "
                             f"(lr {lr_schedule(at):.3g})")


def train_one_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer,
                    lr_schedule: Callable[[int], float], first_step: int = 0, *,
                    label_smoothing: float = 0.0, on_step: Callable | None = None,
                    progress: bool = True, desc: str = "train", precision: str = "auto",
                    scaler=None) -> dict:
    """One pass over `batches`. Returns {"loss", "acc", "step_loss" (list of floats)}.

    `precision` as in resolve_precision; `scaler` is a grad_scaler (fit passes its own,
    so that its state lasts over epochs and goes into checkpoints).
    Raises FloatingPointError naming the step if the loss becomes NaN or infinite.
    """
    device = batches.images.device
    if scaler is None:
        scaler = grad_scaler(device, precision)
    model.train()
    losses, correct, seen = [], torch.zeros((), device=device), 0
    step, checked = first_step, 0          # checked: losses already found finite
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
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        step += 1
        # Check finiteness every 25 steps (every step with a callback): syncs are costly on GPUs.
        if on_step is not None or step % 25 == 0:
            _check_finite(losses, checked, first_step, lr_schedule)
            checked = len(losses)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.3g}", refresh=False)
        if on_step is not None:
            on_step(step, loss.item())
    _check_finite(losses, checked, first_step, lr_schedule)
    step_loss = torch.stack(losses).float().cpu().tolist() if losses else []
    return {"loss": sum(step_loss) / max(len(step_loss), 1),
            "acc": float(correct) / max(seen, 1), "step_loss": step_loss}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, precision: str = "auto") -> dict:
    """Mean cross-entropy and accuracy of `model` on `batches` (eval mode, no augmentation)."""
    device = batches.images.device
    model.eval()
    total_loss, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for x, y in batches:
        with autocast_for(device, precision):
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return {"loss": float(total_loss) / max(seen, 1), "acc": float(correct) / max(seen, 1)}


@torch.no_grad()
def predict(model: nn.Module, batches: Batches, precision: str = "auto") -> torch.Tensor:
    """Predicted class of every image in `batches`, in order, on the CPU."""
    device = batches.images.device
    model.eval()
    out = []
    for x, _ in batches:
        with autocast_for(device, precision):
            out.append(model(x).argmax(1).cpu())
    return torch.cat(out)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, epoch: int,
                    history: History, config: TrainConfig, scaler=None) -> None:
    """A plain dict of state dicts and plain data, loadable with weights_only=True."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else {},
             "history": _plain(history.to_dict()), "train_config": asdict(config),
             "model_config": asdict(model.config) if hasattr(model, "config") else {}}
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by `fit` (state dicts and plain data only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter, as in the paper."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def fit(model: nn.Module, data: CifarData, cfg: TrainConfig, *, out_dir: str | os.PathLike |
        None = None, resume: bool = False, device: str | torch.device | None = None,
        on_step: Callable[[int, float], None] | None = None, progress: bool = True,
        evaluate_test: bool = True, provenance: dict | None = None,
        verbose: bool = True, precision: str = "auto", compile: str | None = None,
        augment: bool = True, mean=MEAN, std=STD) -> History:
    """Train `model` on `data.train` with recipe `cfg`; evaluate on val/test after each epoch.

    With `out_dir`, a checkpoint and the history are written after every epoch,
    and `resume=True` continues from the checkpoint there exactly as if the
    run had not stopped. The stop button (KeyboardInterrupt) ends training
    cleanly: the history so far is returned and the model is left as it is.
    `verbose=False` keeps fit from printing (the message is in `history.message`).
    `precision`: see resolve_precision. `compile`: None (eager), or a torch.compile mode
    ("default", "reduce-overhead") for the training forward and backward; evaluation
    stays eager. Each epoch's record holds its training images per second.
    `augment=False` trains on the images as they are (no crop, no flip); `mean`, `std`: the
    per-channel statistics every batch is standardised with (default: CIFAR-10's). Both go
    into the history's provenance.
    """
    say = print if verbose else (lambda *a, **k: None)
    device = pick_device(str(device) if device is not None else None)
    precision = resolve_precision(device, precision)
    if compile is not None and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be None or one of {', '.join(map(repr, COMPILE_MODES))}, "
                         f"got {compile!r}")
    model.to(device=device, memory_format=torch.channels_last)
    # The compiled module shares the model's parameters and buffers: training updates `model`.
    step_model = torch.compile(model, mode=compile) if compile else model
    scaler = grad_scaler(device, precision)
    inputs = {"mean": tuple(mean), "std": tuple(std)}
    train = Batches(data.train, cfg.batch_size, train=True, device=device, seed=cfg.seed,
                    augment=augment, **inputs)
    val = Batches(data.val, 512, device=device, **inputs) if data.val is not None else None
    test = Batches(data.test, 512, device=device, **inputs) if evaluate_test else None
    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(train)
    history = History(model=_plain(asdict(model.config)) if hasattr(model, "config") else {},
                      config=_plain(asdict(cfg)), steps_per_epoch=len(train), total_steps=total_steps,
                      provenance={**(provenance or {}), "precision": precision,
                                  "compile": compile or "off", "augment": augment,
                                  "input_mean": list(mean), "input_std": list(std)})
    out = Path(out_dir) if out_dir is not None else None
    start_epoch = 0
    if resume:
        if out is None:
            raise ValueError("resume=True needs out_dir, the folder holding the checkpoint")
        if (out / CHECKPOINT).exists():
            start_epoch, history = _restore(out / CHECKPOINT, model, optimizer, cfg, device,
                                            scaler)
            say(f"resuming from epoch {start_epoch} of {cfg.epochs} ({out.name}/{CHECKPOINT})")
        else:
            say(f"no checkpoint in {out.name}/ yet: starting from the beginning")

    history.status = "running"
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train.set_epoch(epoch)
            first = epoch * len(train)
            stats = train_one_epoch(step_model, train, optimizer,
                                    lambda s: lr_at(s, total_steps, cfg), first,
                                    label_smoothing=cfg.label_smoothing, on_step=on_step,
                                    progress=progress, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                    precision=precision, scaler=scaler)
            # train_one_epoch ends by reading its losses, which waits for the device.
            train_seconds = time.perf_counter() - t0
            record = {"epoch": epoch + 1, "lr": lr_at(first, total_steps, cfg),
                      "train_loss": stats["loss"], "train_acc": stats["acc"],
                      "train_seconds": train_seconds,
                      "images_per_second": len(train) * cfg.batch_size / train_seconds}
            if val is not None:
                v = evaluate(model, val, precision)
                record.update(val_loss=v["loss"], val_acc=v["acc"])
            if test is not None:
                t = evaluate(model, test, precision)
                record.update(test_loss=t["loss"], test_acc=t["acc"])
            record["seconds"] = time.perf_counter() - t0
            history.step_loss.extend(stats["step_loss"])
            history.epochs.append(record)
            history.wall_time += record["seconds"]
            if out is not None:
                save_checkpoint(out / CHECKPOINT, model, optimizer, epoch + 1, history, cfg,
                                scaler)
                history.save(out / HISTORY)
        history.status = "completed"
    except KeyboardInterrupt:
        history.status = "interrupted"
        history.message = (f"stopped during epoch {epoch + 1}; the history holds "
                           f"{len(history.epochs)} finished epoch(s)"
                           + (f"; resume=True continues from the checkpoint in {out.name}/"
                              if out is not None and history.epochs else ""))
        say(history.message)
    except FloatingPointError as e:
        history.status = "diverged"
        history.message = (f"training diverged: {e} in epoch {epoch + 1}. Try a lower learning "
                           f"rate (e.g. lr={cfg.lr / 10:g})"
                           + (f"; the last good epoch is saved in {out.name}/"
                              if out is not None and history.epochs else "."))
        if out is not None:
            history.save(out / HISTORY)
        raise TrainingDiverged(history.message, history) from None
    if out is not None:
        history.save(out / HISTORY)
    return history


def _restore(path: Path, model: nn.Module, optimizer, cfg: TrainConfig,
             device: torch.device, scaler=None) -> tuple[int, History]:
    state = load_checkpoint(path, map_location=device)
    if state["train_config"] != asdict(cfg):
        raise ValueError(f"the checkpoint in {path.parent.name}/ was made with different "
                         f"training settings ({state['train_config']}); resume with the same "
                         "settings, or use a new output folder")
    if hasattr(model, "config") and state["model_config"] != asdict(model.config):
        raise ValueError(f"the checkpoint in {path.parent.name}/ is for "
                         f"{state['model_config']}, not this model")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):     # fp16 runs: the loss scale goes on
        scaler.load_state_dict(state["scaler"])
    return state["epoch"], History.from_dict(state["history"])
