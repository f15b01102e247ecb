"""A run's bookkeeping: its History, checkpoints, resuming, sittings, and divergence.

`train.fit` is the loop; this module keeps the run it makes safe to stop, resume and trust:

* `History`: what a run produced, as plain data (JSON). `TrainingDiverged`, `RunFileError`
  and `SaveFailed` carry what went wrong, with the history so far.
* checkpoints: `save_checkpoint` writes plain state dicts (`torch.load(path,
  weights_only=True)`), `load_checkpoint` reads one back and refuses a damaged or foreign one.
* resuming: `open_run` checks and locks the output folder and restores its checkpoint;
  `check_resume` refuses other settings, another network or other data, naming each field;
  each sitting (the start, each resume) is recorded with where and how it computed.
* divergence: a loss or a number of the network that is not finite, or a loss that explodes
  (see loss_bound), stops the run; `diverged` records it and says what to try instead, as
  `stopped` does for an interrupted run.
* `keep_epoch`: an epoch's checkpoint and history are written together, or not at all.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .checks import is_int
from .files import FolderLock, atomic_write, check_writable, reason, remove_leftovers, show_path
from .signals import signals_deferred

if TYPE_CHECKING:
    from .data import Batches, CifarData
    from .train import TrainConfig

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
#: A run diverges when its training loss stays above this multiple of ln(classes), the loss
#: of a uniform guess; see loss_bound.
EXPLODED = 10
#: Steps in a row above the loss bound after which a run counts as exploded.
EXPLODE_STEPS = 25


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
        atomic_write(path, lambda f: f.write(json.dumps(self.to_dict(), indent=1).encode()))

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


def new_history(model: nn.Module, cfg: TrainConfig, data: CifarData, train: Batches,
                provenance: dict) -> History:
    """The History of a run about to start: its settings, its data, what its training
    batches `train` do to the images, and its first sitting."""
    provenance = {**provenance, "augment": train.augment, "input_mean": list(train.mean),
                  "input_std": list(train.std)}
    history = History(model=_plain(asdict(model.config)) if hasattr(model, "config") else {},
                      config=_plain(asdict(cfg)), steps_per_epoch=len(train),
                      total_steps=cfg.epochs * len(train), provenance=provenance,
                      data=data.record())
    history.provenance["sittings"] = [_sitting(history.provenance, first_epoch=1)]
    return history


# --- divergence: a loss or a number that is not finite, or a loss that explodes -----------

def loss_bound(num_classes: int) -> float:
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


def check_finite(losses: list[torch.Tensor], start: int, first_step: int,
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


def check_epoch_loss(mean: float, step_loss: list[float], bound: float, first_step: int,
                     lr_schedule: Callable[[int], float]) -> None:
    """Raise FloatingPointError if the epoch's mean loss `mean` (of `step_loss`) lies above
    `bound` (see loss_bound), naming the step where the loss first exceeded it."""
    if mean > bound:
        at = first_step + next(i for i, v in enumerate(step_loss) if v > bound)
        raise FloatingPointError(f"the training loss averaged {mean:.3g} over the epoch, above "
                                 f"{bound:.3g} ({EXPLODED} x ln(classes), the loss of a uniform "
                                 f"guess); it first exceeded that at step {at} "
                                 f"(lr {lr_schedule(at):.3g})")


def check_numbers(model: nn.Module, optimizer, record: dict) -> None:
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


def stopped(history: History, epoch: int, out: Path | None) -> str:
    """Mark `history` interrupted in epoch `epoch` (0-based) and return what to tell the user."""
    history.status = "interrupted"
    # A signal held back while epoch k was saved arrives after it: "after epoch k".
    when = "after" if len(history.epochs) > epoch else "during"
    history.message = (f"stopped {when} epoch {epoch + 1}; the history holds "
                       f"{len(history.epochs)} finished epoch(s)"
                       + (f"; resume=True continues from the checkpoint in {out.name}/"
                          if out is not None and history.epochs else ""))
    return history.message


def diverged(history: History, error: Exception, epoch: int, suggestion: str,
             out: Path | None) -> TrainingDiverged:
    """Mark `history` diverged in epoch `epoch` (0-based), save it in `out`, and return the
    TrainingDiverged to raise. `suggestion`: a learning rate to try instead (train.suggest_lr)."""
    history.status = "diverged"
    history.message = _diverged_message(error, epoch, suggestion, out, history)
    if out is not None:
        history.save(out / HISTORY)
    return TrainingDiverged(history.message, history)


def _diverged_message(e: Exception, epoch: int, suggestion: str, out: Path | None,
                      history: History) -> str:
    saved, n = "", len(history.epochs)
    if out is not None and n:
        saved = (f"; {'epoch 1' if n == 1 else f'epochs 1-{n}'}, whose numbers are all finite, "
                 f"{'is' if n == 1 else 'are'} saved in {show_path(out)}/")
    return (f"training diverged: {e} in epoch {epoch + 1}. Start again with a lower learning "
            f"rate, e.g. {suggestion}{' (in a new output folder)' if out else ''}{saved}")


# --- checkpoints --------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, epoch: int,
                    history: History, config: TrainConfig, scaler=None) -> None:
    """A plain dict of state dicts and plain data, loadable with weights_only=True."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else {},
             "history": _plain(history.to_dict()), "train_config": asdict(config),
             "model_config": asdict(model.config) if hasattr(model, "config") else {}}
    atomic_write(path, lambda f: torch.save(state, f))


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
    if not (is_int(state["epoch"]) and isinstance(history, dict)
            and isinstance(history.get("epochs"), list)
            and len(history["epochs"]) == state["epoch"]):
        return "its epoch count and history disagree"
    if not (isinstance(state["train_config"], dict) and isinstance(state["model_config"], dict)):
        return "its settings are missing"
    bad = _first_not_finite(_named_tensors(state["model"], opt))
    if bad:
        return f"{bad} holds NaN or infinite numbers (saved from a diverged run)"
    return None


# --- resuming: the output folder, the checks, the sittings --------------------------------

def open_run(out: Path | None, resume: bool, model: nn.Module, optimizer, cfg: TrainConfig,
             device: torch.device, history: History, say, scaler=None) -> tuple:
    """Check and claim the output folder, and restore its checkpoint for `resume`.

    Before any work: the folder must be writable, and no other process may be writing
    it (a lock, held until fit ends); temporary files of killed writes are removed.
    Returns (the lock, a context that releases it; the first epoch; the history).
    """
    if out is None:
        if resume:
            raise ValueError("resume=True needs out_dir, the folder holding the checkpoint")
        return contextlib.nullcontext(), 0, history
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


def _differences(saved: dict, now: dict) -> list[str]:
    """'name: value in the checkpoint, value now' for every field that differs."""
    saved, now = _plain(saved), _plain(now)
    missing = "(not set)"
    return [f"{k}: {saved.get(k, missing)!r} in the checkpoint, {now.get(k, missing)!r} now"
            for k in [*now, *(k for k in saved if k not in now)]
            if saved.get(k, missing) != now.get(k, missing)]


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


# --- saving an epoch ----------------------------------------------------------------------

def keep_epoch(history: History, record: dict, step_loss: list, out: Path | None,
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
