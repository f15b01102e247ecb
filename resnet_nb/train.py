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
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import MEAN, STD, Batches, CifarData
from .device import autocast_for, check_compile, grad_scaler, pick_device, resolve_precision
from .files import FolderLock, atomic_write, check_writable, reason, remove_leftovers, show_path
from .files import signals_deferred

RECIPE_NAMES = ("paper", "fast")
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
#: Seeds are 32-bit, as in numpy: enough for any experiment, and safe in every generator.
MAX_SEED = 2**32 - 1
#: A run diverges when its training loss stays above this multiple of ln(classes), the loss
#: of a uniform guess; see _loss_bound.
EXPLODED = 10


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if not _is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (_is_real(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name, low, high in (("momentum", 0, 1), ("label_smoothing", 0, 1),
                                ("warmup_fraction", 0, 1)):
            value = getattr(self, name)
            if not (_is_real(value) and low <= value < high):
                raise ValueError(f"{name} must be a number from {low} to below {high}, "
                                 f"got {value!r}")
        if not (_is_real(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum above 0")
        if self.schedule not in ("step", "onecycle"):
            raise ValueError(f"schedule must be 'step' or 'onecycle', got {self.schedule!r}")
        m = self.milestones
        if not (isinstance(m, (tuple, list)) and all(_is_real(x) and 0 < x < 1 for x in m)
                and list(m) == sorted(m)):
            raise ValueError(f"milestones must be increasing fractions of the run between 0 "
                             f"and 1, e.g. (0.5, 0.75), got {m!r}")


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


def seed_everything(seed: int) -> None:
    """Seed PyTorch's generators (model initialisation; data order is seeded separately)."""
    torch.manual_seed(seed)


class TrainingDiverged(RuntimeError):
    """The loss or the network's numbers became NaN, infinite or exploded.

    `.history` holds the run up to its last good epoch.
    """

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


class RunFileError(ValueError):
    """A checkpoint or history file is empty, truncated, damaged or not one of ours.

    The message names the file and says what to do.
    """


class SaveFailed(OSError):
    """An epoch could not be saved (a full disk, a folder that became read-only).

    The previous checkpoint is kept; `.history` holds the run so far.
    """

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """What a run produced, as plain data (JSON-serialisable)."""

    model: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)        # CifarData.record(): source, sizes, seeds
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
        """Read a history.json; RunFileError (naming the file) if it is damaged or foreign."""
        text = Path(path).read_text()     # a missing file raises FileNotFoundError
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError) as e:
            raise RunFileError(f"{show_path(path)} is not a readable run history ({reason(e)}): "
                               "it is truncated, edited or not written by resnet_nb") from None


def _plain(d: dict) -> dict:
    """The same data as JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(d))


def _atomic_write(path: Path, write: Callable) -> None:
    """Write to a temporary file, then rename: an interrupt never leaves half a file."""
    atomic_write(path, write)


def progress_bar(iterable, **kwargs):
    """A tqdm.auto bar (a widget in Jupyter), switched off when TQDM_DISABLE is set.

    tqdm's terminal bar reads TQDM_DISABLE itself, but its notebook bar does not,
    so the setting is applied here for both.
    """
    from tqdm.auto import tqdm
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false"):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


#: Steps in a row above the loss bound after which a run counts as exploded.
EXPLODE_STEPS = 25


def _loss_bound(num_classes: int) -> float:
    """EXPLODED x ln(classes): a training loss that stays above it has exploded.

    ln(C) is the cross-entropy of a uniform guess, where training starts. A loss ten
    times that puts (in geometric mean) a probability below C**-10 on the right class:
    huge logits, confidently wrong, which SGD does not bring back. Runs at learning rates
    merely too high stay below it: ResNet-20 on 2,000 CIFAR-10 images at peak lr 2 and 5
    ("fast") and 2 ("paper") had single steps up to 21 but first-epoch means of 4.3-7.1,
    and then trained on; at lr 30 the first epoch averaged 4.8e5. Hence two rules: the
    loss above the bound for EXPLODE_STEPS steps in a row, or on average over an epoch.
    """
    return EXPLODED * math.log(max(num_classes, 2))


def _check_finite(losses: list[torch.Tensor], start: int, first_step: int,
                  lr_schedule: Callable[[int], float], bound: float = math.inf) -> None:
    """Raise FloatingPointError naming the first step from losses[start:] whose loss is not
    finite, or if the last EXPLODE_STEPS losses all lie above `bound` (a loss that explodes
    without becoming infinite).

    One device sync for all the losses checked, instead of one per step.
    """
    if start >= len(losses):
        return
    low = max(0, min(start, len(losses) - EXPLODE_STEPS))
    values = torch.stack(losses[low:]).float().cpu()
    finite = torch.isfinite(values[start - low:])
    if not bool(finite.all()):
        i = start + int((~finite).nonzero()[0])
        at = first_step + i
        raise FloatingPointError(f"the loss became {float(losses[i])} at step {at} "
                                 f"(lr {lr_schedule(at):.3g})")
    if len(losses) >= EXPLODE_STEPS and bool((values[-EXPLODE_STEPS:] > bound).all()):
        at = first_step + len(losses) - 1
        raise FloatingPointError(
            f"the loss stayed above {bound:.3g} ({EXPLODED} x ln(classes), the loss of a "
            f"uniform guess) for {EXPLODE_STEPS} steps, reaching {float(values.max()):.3g} at "
            f"step {at} (lr {lr_schedule(at):.3g})")


def train_one_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer,
                    lr_schedule: Callable[[int], float], first_step: int = 0, *,
                    label_smoothing: float = 0.0, on_step: Callable | None = None,
                    progress: bool = True, desc: str = "train", precision: str = "auto",
                    scaler=None) -> dict:
    """One pass over `batches`. Returns {"loss", "acc", "step_loss" (list of floats)}.

    `precision` as in resolve_precision; `scaler` is a grad_scaler (fit passes its own,
    so that its state lasts over epochs and goes into checkpoints).
    Raises FloatingPointError naming the step if the loss becomes NaN or infinite, or
    explodes (see _loss_bound): above it for EXPLODE_STEPS steps, or on average over the epoch.
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
        bound = _loss_bound(logits.shape[-1])
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        step += 1
        # Check finiteness every 25 steps (every step with a callback): syncs are costly on GPUs.
        if on_step is not None or step % 25 == 0:
            _check_finite(losses, checked, first_step, lr_schedule, bound)
            checked = len(losses)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.3g}", refresh=False)
        if on_step is not None:
            on_step(step, loss.item())
    _check_finite(losses, checked, first_step, lr_schedule, bound)
    step_loss = torch.stack(losses).float().cpu().tolist() if losses else []
    mean = sum(step_loss) / max(len(step_loss), 1)
    if mean > bound:
        at = first_step + next(i for i, v in enumerate(step_loss) if v > bound)
        raise FloatingPointError(f"the training loss averaged {mean:.3g} over the epoch, above "
                                 f"{bound:.3g} ({EXPLODED} x ln(classes), the loss of a uniform "
                                 f"guess); it first exceeded that at step {at} "
                                 f"(lr {lr_schedule(at):.3g})")
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


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, epoch: int,
                    history: History, config: TrainConfig, scaler=None) -> None:
    """A plain dict of state dicts and plain data, loadable with weights_only=True."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else {},
             "history": _plain(history.to_dict()), "train_config": asdict(config),
             "model_config": asdict(model.config) if hasattr(model, "config") else {}}
    _atomic_write(Path(path), lambda f: torch.save(state, f))


#: What every checkpoint written by `fit` holds (it may hold more).
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "train_config", "model_config")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by `fit` (state dicts and plain data only), checked.

    Raises RunFileError, naming the file and what to do, if it is empty, truncated, not
    written by resnet_nb, or holds NaN or infinite numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {show_path(path)}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:   # empty, truncated, a zip of something else, a pickled object ...
        problem = f"it cannot be read ({reason(e)})"
    else:
        problem = _checkpoint_problem(state)
    if problem:
        raise RunFileError(f"{show_path(path)} is not a usable checkpoint: {problem}. Delete it "
                           "to start that run afresh, or use another output folder")
    return state


def _checkpoint_problem(state) -> str | None:
    """What makes `state` not a checkpoint that `fit` wrote, or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint"
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if not (isinstance(state["model"], dict) and state["model"]
            and all(isinstance(v, torch.Tensor) for v in state["model"].values())):
        return "its model is not a state dict"
    opt = state["optimizer"]
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
            and isinstance(opt.get("param_groups"), list)):
        return "its optimizer is not an optimizer's state dict"
    history = state["history"]
    if not (_is_int(state["epoch"]) and isinstance(history, dict)
            and isinstance(history.get("epochs"), list)
            and len(history["epochs"]) == state["epoch"]):
        return "its epoch count and history disagree"
    if not (isinstance(state["train_config"], dict) and isinstance(state["model_config"], dict)):
        return "its settings are missing"
    bad = _first_not_finite(_named_tensors(state["model"], opt))
    if bad:
        return f"{bad} holds NaN or infinite numbers (saved from a diverged run)"
    return None


def _named_tensors(model_state: dict, optimizer_state: dict) -> list:
    """(name, tensor) of a model's state dict and of an optimizer's per-parameter state."""
    named = list(model_state.items())
    for index, entry in optimizer_state.get("state", {}).items():
        if isinstance(entry, dict):
            named += [(f"optimizer state {index}.{k}", v) for k, v in entry.items()]
    return named


def _first_not_finite(named) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None."""
    named = [(n, t) for n, t in named if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not named:
        return None
    flags = [torch.isfinite(t).all() for _, t in named]
    ok = torch.stack([f.to(flags[0].device) for f in flags]).cpu()   # one sync
    return None if bool(ok.all()) else named[int((~ok).nonzero()[0])][0]


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

    Faults: `out_dir` is checked (writable, not in use by another process) before any
    training; resume is refused, naming each field and both values, if the settings,
    the network or the data (`history.data`) differ from the checkpoint's. A loss that
    becomes NaN/inf or explodes (see _loss_bound), or an epoch that ends with a number
    of the network that is not finite, raises TrainingDiverged: only finite epochs are
    saved. A failed save (a full disk) raises SaveFailed, keeping the last checkpoint.

    `augment=False` trains on the images as they are (no crop, no flip); `mean`, `std`: the
    per-channel statistics every batch is standardised with (default: CIFAR-10's). Both go
    into the history's provenance.

    `history.provenance` describes the run's first sitting (with `provenance`'s entries:
    device, commit, date ...); `provenance["sittings"]` lists every sitting, its first epoch,
    device, precision, compile mode, commit, versions and date, so that a run resumed on
    another machine or in another precision says so.
    """
    say = print if verbose else (lambda *a, **k: None)
    _check_sets(data, evaluate_test)
    device = pick_device(str(device) if device is not None else None)
    precision = resolve_precision(device, precision)
    check_compile(compile)
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
                                  "input_mean": list(mean), "input_std": list(std)},
                      data=data.record())
    history.provenance["sittings"] = [_sitting(history.provenance, first_epoch=1)]
    out = Path(out_dir) if out_dir is not None else None
    # Checks the folder and locks it for this process (released below, in `finally`).
    lock, start_epoch, history = _open_run(out, resume, model, optimizer, cfg, device, history,
                                           say, scaler)

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
            _check_numbers(model, optimizer, record)    # only finite epochs are kept
            _keep_epoch(history, record, stats["step_loss"], out, lambda: save_checkpoint(
                out / CHECKPOINT, model, optimizer, epoch + 1, history, cfg, scaler))
        history.status = "completed"
    except KeyboardInterrupt:
        history.status = "interrupted"
        # A signal held back while epoch k was saved arrives after it: "after epoch k".
        when = "after" if len(history.epochs) > epoch else "during"
        history.message = (f"stopped {when} epoch {epoch + 1}; the history holds "
                           f"{len(history.epochs)} finished epoch(s)"
                           + (f"; resume=True continues from the checkpoint in {out.name}/"
                              if out is not None and history.epochs else ""))
        say(history.message)
    except FloatingPointError as e:
        history.status = "diverged"
        history.message = _diverged_message(e, epoch, cfg, out, history)
        if out is not None:
            history.save(out / HISTORY)
        raise TrainingDiverged(history.message, history) from None
    finally:
        if lock is not None:
            lock.release()
    if out is not None:
        history.save(out / HISTORY)
    return history


# --- fit's checks: before the work, before each save, and on resume ---------------------

def _check_sets(data: CifarData, evaluate_test: bool) -> None:
    if len(data.train) == 0:
        raise ValueError("data.train is empty: fit needs training images")
    if data.val is not None and len(data.val) == 0:
        raise ValueError("data.val is empty: hold out at least one image, or none (val=None)")
    if evaluate_test and len(data.test) == 0:
        raise ValueError("data.test is empty: give test images, or pass evaluate_test=False")


def _open_run(out: Path | None, resume: bool, model: nn.Module, optimizer, cfg: TrainConfig,
              device: torch.device, history: History, say, scaler=None) -> tuple:
    """Check and claim the output folder, and restore its checkpoint for `resume`.

    Before any work: the folder must be writable, and no other process may be writing
    it (a lock, held until fit ends); temporary files of killed writes are removed.
    Returns (lock or None, first epoch, history).
    """
    if out is None:
        if resume:
            raise ValueError("resume=True needs out_dir, the folder holding the checkpoint")
        return None, 0, history
    check_writable(out, "the output folder")
    lock = FolderLock(out, "the output folder").acquire()
    try:
        # The lock is ours, so every temporary file here is a leftover of a killed run.
        remove_leftovers(out, min_age_s=0, also=(f".{CHECKPOINT}.", f".{HISTORY}."))
        if not resume:
            return lock, 0, history
        if not (out / CHECKPOINT).exists():
            say(f"no checkpoint in {out.name}/ yet: starting from the beginning")
            return lock, 0, history
        start_epoch, restored = _restore(out / CHECKPOINT, model, optimizer, cfg, device,
                                         history.data, say, scaler)
        _add_sitting(restored, history.provenance, start_epoch + 1, say,
                     f"the run in {show_path(out)}/")
        history = restored
        say(f"resuming from epoch {start_epoch} of {cfg.epochs} ({out.name}/{CHECKPOINT})")
        return lock, start_epoch, history
    except BaseException:
        lock.release()
        raise


#: What each sitting of a run (its start, and each resume) records: where and how it ran.
SITTING_KEYS = ("date", "device", "platform", "precision", "compile", "git_commit", "versions",
                "data_source", "command")


def _sitting(provenance: dict, first_epoch: int) -> dict:
    """One sitting's record: its first epoch (1-based) and the SITTING_KEYS of `provenance`."""
    return {"first_epoch": first_epoch,
            **{k: provenance[k] for k in SITTING_KEYS if k in provenance}}


def _add_sitting(saved: History, now: dict, first_epoch: int, say, where: str) -> None:
    """Record a resumed sitting in `saved.provenance["sittings"]`, and say so when it computes
    in another precision or compile mode than the sitting before (allowed: a run started on
    a GPU may go on on a CPU, but the history must not claim one arithmetic for all epochs).

    The top-level provenance stays the first sitting's; histories written before sittings
    were recorded get their first sitting from it.
    """
    sittings = list(saved.provenance.get("sittings") or [_sitting(saved.provenance, 1)])
    last = sittings[-1]
    changed = [f"{k} {last[k]!r} until epoch {first_epoch - 1}, {now[k]!r} from epoch "
               f"{first_epoch}" for k in ("precision", "compile")
               if k in now and k in last and last[k] != now[k]]
    if changed:
        say(f"note: {where} goes on in other arithmetic ({'; '.join(changed)}); its "
            "history records each sitting (provenance['sittings'])")
    saved.provenance = {**saved.provenance, "sittings": [*sittings, _sitting(now, first_epoch)]}


def _differences(saved: dict, now: dict) -> list[str]:
    """'name: value in the checkpoint, value now' for every field that differs."""
    saved, now = _plain(saved), _plain(now)
    missing = "(not set)"
    return [f"{k}: {saved.get(k, missing)!r} in the checkpoint, {now.get(k, missing)!r} now"
            for k in [*now, *(k for k in saved if k not in now)]
            if saved.get(k, missing) != now.get(k, missing)]


def check_resume(out_dir: str | os.PathLike, cfg: TrainConfig, model_config: dict | None = None,
                 map_location="cpu") -> dict:
    """The checkpoint in `out_dir`, checked to continue a run of `cfg` (and of `model_config`).

    Raises RunFileError for a damaged checkpoint, and ValueError naming every setting
    that differs, with both values. The command line calls it before loading any data.
    """
    path = Path(out_dir) / CHECKPOINT
    state = load_checkpoint(path, map_location=map_location)
    where = f"the checkpoint in {show_path(path.parent)}/"
    diffs = _differences(state["train_config"], asdict(cfg))
    if diffs:
        raise ValueError(f"{where} was made with different training settings: "
                         f"{'; '.join(diffs)}. Resume with the same settings, or use a new "
                         "output folder")
    if model_config is not None:
        diffs = _differences(state["model_config"], model_config)
        if diffs:
            raise ValueError(f"{where} is for another network: {'; '.join(diffs)}. Resume with "
                             "the same network, or use a new output folder")
    return state


def _data_differences(saved: dict, now: dict) -> list[str]:
    """How the data of a run differ from those recorded in its checkpoint ([] if the same).

    The same fingerprint means the same images and labels, whatever path they came from.
    """
    if saved.get("fingerprint") == now.get("fingerprint"):
        return []
    diffs = _differences({k: v for k, v in saved.items() if k != "fingerprint"},
                         {k: v for k, v in now.items() if k != "fingerprint"})
    return diffs or [f"the same source, sizes and seeds, but other images or labels "
                     f"(fingerprint {saved.get('fingerprint')} in the checkpoint, "
                     f"{now.get('fingerprint')} now)"]


def _restore(path: Path, model: nn.Module, optimizer, cfg: TrainConfig,
             device: torch.device, data_now: dict, say, scaler=None) -> tuple[int, History]:
    state = check_resume(path.parent, cfg, asdict(model.config) if hasattr(model, "config")
                         else None, map_location=device)
    where = f"the checkpoint in {show_path(path.parent)}/"
    saved_data = state["history"].get("data") or {}
    if not saved_data:
        say(f"note: {where} does not record its data (written by an older resnet_nb), so "
            "this run cannot check that it continues on the same data")
    else:
        diffs = _data_differences(saved_data, data_now)
        if diffs:
            raise ValueError(f"{where} was made on different data: {'; '.join(diffs)}. Resume "
                             "with the same data (source, sizes, seeds), or use a new output "
                             "folder")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):     # fp16 runs: the loss scale goes on
            scaler.load_state_dict(state["scaler"])
        history = History.from_dict(state["history"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise RunFileError(f"{show_path(path)} does not fit this network ({reason(e)}). Delete "
                           "it to start that run afresh, or use another output folder") from None
    return state["epoch"], history


def _check_numbers(model: nn.Module, optimizer, record: dict) -> None:
    """Raise FloatingPointError unless the epoch's losses and every number of the network
    and of the optimizer (weights, batch-norm running statistics, momentum) are finite.

    A checkpoint is written only after this check, so a saved epoch is always a good one.
    """
    losses = [k for k, v in record.items() if k.endswith("_loss") and not math.isfinite(v)]
    if losses:
        raise FloatingPointError(f"the {losses[0].replace('_', ' ')} became {record[losses[0]]}")
    bad = _first_not_finite(_named_tensors(model.state_dict(), optimizer.state_dict()))
    if bad:
        raise FloatingPointError(f"{bad} holds NaN or infinite numbers")


def _keep_epoch(history: History, record: dict, step_loss: list, out: Path | None,
                save_checkpoint: Callable[[], None]) -> None:
    """Add a finished epoch to `history` and, with `out`, write its checkpoint and the history.

    The writes belong together: Ctrl-C, SIGTERM or SIGHUP waits until both are written.
    The history holds the epoch only if its checkpoint was written, so that the two always
    agree: an interrupt or a failed write takes it out again. A failed write (a full disk)
    stops the run with SaveFailed; the previous checkpoint stays as it was, and history.json
    is marked "failed" if it can still be written.
    """
    kept = len(history.epochs), len(history.step_loss), history.wall_time

    def add() -> None:
        history.step_loss.extend(step_loss)
        history.epochs.append(record)
        history.wall_time += record["seconds"]
    if out is None:
        add()
        return
    with signals_deferred():     # a signal that arrives in here is delivered at its end
        add()
        try:
            save_checkpoint()
        except BaseException as e:
            del history.epochs[kept[0]:], history.step_loss[kept[1]:]
            history.wall_time = kept[2]
            if not isinstance(e, OSError):
                raise
            failure = e
        else:
            try:
                history.save(out / HISTORY)
                return
            except OSError as e:     # the checkpoint holds the epoch: the history keeps it
                failure = e
        history.status = "failed"
        history.message = (f"could not save epoch {kept[0] + 1} in {show_path(out)}/ "
                           f"({reason(failure)}). The last checkpoint written there is kept: "
                           "free some space (or make the folder writable), then resume to "
                           "continue")
        with contextlib.suppress(OSError):     # a few kB may still fit where the checkpoint did not
            history.save(out / HISTORY)
        raise SaveFailed(history.message, history) from None


def suggest_lr(cfg: TrainConfig) -> str:
    """A sensible lower learning rate after `cfg` diverged.

    Above the recipe's default: the default, which is known to train. At or below it:
    a tenth (the paper's own warm-up rate for ResNet-110 is a tenth of 0.1).
    """
    default = recipe(cfg.recipe).lr if cfg.recipe in RECIPE_NAMES else None
    if default is not None and cfg.lr > default:
        return f"lr={default:g}, the {cfg.recipe!r} recipe's default"
    return f"lr={cfg.lr / 10:g}"


def _diverged_message(e: Exception, epoch: int, cfg: TrainConfig, out: Path | None,
                      history: History) -> str:
    saved, n = "", len(history.epochs)
    if out is not None and n:
        saved = (f"; {'epoch 1' if n == 1 else f'epochs 1-{n}'}, whose numbers are all finite, "
                 f"{'is' if n == 1 else 'are'} saved in {show_path(out)}/")
    return (f"training diverged: {e} in epoch {epoch + 1}. Start again with a lower learning "
            f"rate, e.g. {suggest_lr(cfg)}{' (in a new output folder)' if out else ''}{saved}")
