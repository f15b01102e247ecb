"""The command line: `python -m resnet_nb train|info|hub-link ...`.

Exit codes: 0 done, 1 training diverged, 2 a user error (one line on stderr saying what
to do), 128 + the signal's number when stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP.
With RESNET_NB_DEBUG=1 a user error shows its whole traceback instead of its one line
(for telling a real bug that raised a ValueError from a user's mistake).
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path
from typing import Callable

from .blocks import SHORTCUT_OPTIONS
from .models import EXAMPLE_DEPTHS
from .profiles import PROFILE_NAMES
from .signals import signal_name, stops_as_interrupts
from .device import COMPILE_MODES, PRECISIONS
from .train import MAX_SEED, RECIPE_NAMES

PROG = "python -m resnet_nb"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _size(text: str) -> int | str:
    if text.lower() in ("all", "full"):
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG,
               description="Train and inspect the CIFAR-10 ResNets of He et al. (2015).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train a CIFAR-10 ResNet or plain network")
    t.add_argument("--depth", type=int, default=20,
                   help=f"6n+2: {', '.join(map(str, EXAMPLE_DEPTHS))}, ... (default 20)")
    t.add_argument("--shortcut", default="A", choices=SHORTCUT_OPTIONS,
                   help="A: zero-pad identity, B/C: projections, none: plain network")
    t.add_argument("--preact", action="store_true", help="pre-activation blocks (He et al. 2016)")
    t.add_argument("--recipe", default="fast", choices=RECIPE_NAMES)
    t.add_argument("--epochs", type=int, help="default: the profile's")
    t.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    t.add_argument("--batch-size", type=int, help="default: the profile's")
    t.add_argument("--train-size", type=_size,
                   help="training images, or 'all' (default: the profile's)")
    t.add_argument("--test-size", type=_size,
                   help="test images to report on, or 'all' (default: the profile's)")
    t.add_argument("--val-size", type=int, default=0,
                   help="hold out this many training images for validation (paper: 5000)")
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA, else torchvision)")
    t.add_argument("--out", help="output folder (default: runs/<model>-<recipe>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--profile", choices=PROFILE_NAMES,
                   help="smoke, cpu or gpu (default: RESNET_NB_PROFILE)")
    t.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 on GPUs that have it, fp16 with loss scaling on older "
                        "GPUs, float32 on CPUs")
    t.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile the training step with this mode (default: eager)")
    sub.add_parser("info", help="versions, device, profile and data source")
    h = sub.add_parser("hub-link", help="the nbgitpuller links that hand the class release out "
                                        "on a JupyterHub (defaults: ./pyproject.toml)")
    h.add_argument("notebooks", nargs="*", help="notebooks to link, e.g. 01_degradation.ipynb "
                                                "(the notebooks/ folder is always linked)")
    h.add_argument("--hub", help="the hub's address, e.g. https://hub.example.org")
    h.add_argument("--repo", help="the course repository's address")
    h.add_argument("--branch", help="the class release branch (default: release-branch)")
    h.add_argument("--app", default="lab", choices=("lab", "notebook", "classic"))
    return p


def _hub_link(args) -> int:
    from .hub import course_settings, hub_links
    found = course_settings()
    hub, repo = args.hub or found.get("hub"), args.repo or found.get("repo")
    branch = args.branch or found.get("branch")
    missing = [f"--{name}" for name, value in (("hub", hub), ("repo", repo), ("branch", branch))
               if not value]
    if missing:
        raise ValueError(f"give {', '.join(missing)} (or run this in the course's folder, "
                         "whose pyproject.toml names them: Repository, release-branch, hub-url)")
    here = Path("notebooks")
    unknown = [n for n in args.notebooks if found and here.is_dir()
               and not (here / n.removeprefix("notebooks/")).is_file()]
    if unknown:
        raise ValueError(f"no {', '.join(unknown)} in {here.resolve()}: name notebooks as they "
                         "are in notebooks/, e.g. 01_degradation.ipynb")
    for what, link in hub_links(hub, repo, branch, args.notebooks, args.app):
        print(f"{what:<32}{link}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns its exit code (see the module docstring)."""
    def command(state: dict) -> int:
        args = build_parser().parse_args(argv)
        if args.command == "hub-link":
            return _hub_link(args)
        return _train(args, state) if args.command == "train" else _info()
    return run_command(PROG, command)


def run_command(prog: str, command: Callable[[dict], int]) -> int:
    """`command(state)`'s exit code, with the conventions of the module docstring.

    Ctrl-C, SIGTERM (a scheduler, `kill`, a closed Colab runtime) and SIGHUP (a closed
    terminal) all stop a run the same way (signals.stops_as_interrupts): fit keeps the
    finished epochs, and --resume continues. The handlers are restored at the end, for
    callers such as tests that run a command in-process. `state["signals"]` lists the
    signals received; a command sets `state["out"]` to the folder its run writes.
    """
    state: dict = {}
    with stops_as_interrupts() as received:
        state["signals"] = received
        try:
            return command(state)
        except KeyboardInterrupt:
            signum = received[-1] if received else signal.SIGINT
            where = state.get("out")
            saved = (f"; finished epochs are saved in {where}/, and --resume continues from "
                     "them" if where is not None and (where / "checkpoint.pt").exists() else "")
            print(f"{prog}: stopped by {signal_name(signum)}{saved}", file=sys.stderr)
            return 128 + int(signum)
        except Exception as e:
            message = _user_error(e)
            if message is None or _debugging():
                raise             # a bug, or asked for: the traceback is for us
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 2


def _debugging() -> bool:
    """RESNET_NB_DEBUG is set (to anything but 0, false or nothing)."""
    import os
    return os.environ.get("RESNET_NB_DEBUG", "").strip().lower() not in ("", "0", "false")


def _user_error(e: Exception) -> str | None:
    """The one-line message for an error a user can cause (or their machine), else None."""
    from .data import DataError
    from .files import FolderBusy
    if isinstance(e, (ValueError, DataError, FolderBusy, IndexError)):
        return str(e)
    if isinstance(e, OSError):   # a full disk, a read-only folder, a missing file ...
        if e.strerror and e.filename:
            return f"{e.strerror}: {e.filename}"
        return str(e) or type(e).__name__
    return None


def _info() -> int:
    """Print versions, device, profile, data source and cache; exit 2 if one is unusable."""
    import torch

    from .data import DataError
    from .device import pick_device
    from .profiles import get_profile
    from .provenance import device_name, git_commit, versions
    from .sources import check_source, default_cache_dir
    problems = []
    for name, v in versions().items():
        print(f"{name:<12}{v}")
    print(f"{'git':<12}{git_commit()}")
    print(f"{'device':<12}{device_name(pick_device())}")
    print(f"{'cuda':<12}{'available' if torch.cuda.is_available() else 'not available'}")
    try:
        profile = str(get_profile())
    except ValueError as e:
        problems.append("profile")
        profile = f"PROBLEM: {e}"
    print(f"{'profile':<12}{profile}")
    try:
        data = check_source()       # class folders and archive members, without decoding
    except DataError as e:
        problems.append("data")
        data = f"PROBLEM: {e}"
    print(f"{'data':<12}{data}")
    print(f"{'cache':<12}{default_cache_dir()}")
    if problems:
        print(f"{PROG}: error: fix the {' and the '.join(problems)} setting(s) shown above",
              file=sys.stderr)
        return 2
    return 0


def _check_out(out: Path, resume: bool, cfg, model) -> None:
    """Everything about --out that can be checked before the data are loaded."""
    from dataclasses import asdict
    from .files import FolderLock, check_writable
    from .runs import CHECKPOINT, check_resume
    check_writable(out, "the output folder (--out)")
    with FolderLock(out, "the output folder (--out)"):   # another run writing it: refuse now
        pass
    if (out / CHECKPOINT).exists():
        if not resume:
            raise ValueError(f"{out} already holds a run: add --resume to continue it, "
                             "or choose another --out")
        check_resume(out, cfg, asdict(model.config))     # damaged, or other settings


def _train(args, state: dict) -> int:
    import torch

    from .data import load_cifar10
    from .device import pick_device
    from .models import cifar_resnet
    from .profiles import get_profile
    from .provenance import provenance
    from .runs import TrainingDiverged
    from .train import fit, recipe

    profile = get_profile(args.profile)
    overrides = {"seed": args.seed,
                 "epochs": args.epochs if args.epochs is not None else profile.epochs,
                 "batch_size": args.batch_size if args.batch_size is not None
                 else profile.batch_size}
    if args.lr is not None:
        overrides["lr"] = args.lr
    if args.recipe == "paper" and args.depth >= 110:
        # He et al. 2015, sec. 4.2: for ResNet-110, lr 0.01 until training error < 80%
        # ("about 400 iterations"), then back to 0.1.
        overrides["warmup_steps"] = 400
    cfg = recipe(args.recipe, **overrides)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)          # the model's initial weights; data order: cfg.seed
    model = cifar_resnet(args.depth, args.shortcut, preact=args.preact)
    slug = re.sub(r"[^a-z0-9]+", "-", model.name.lower()).strip("-")
    out = Path(args.out or f"runs/{slug}-{args.recipe}-seed{args.seed}")
    _check_out(out, args.resume, cfg, model)   # before the data: problems are found first
    state["out"] = out

    data = load_cifar10(args.data)
    if args.val_size:
        data = data.split_validation(args.val_size, seed=args.seed)
    pick = lambda given, default: default if given is None else (None if given == "all" else given)
    data = data.subset(train=pick(args.train_size, profile.train_size),
                       test=pick(args.test_size, profile.test_size), seed=args.seed)
    print(f"{model.name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{data}; {cfg}; device {device}")
    try:
        history = fit(model, data, cfg, out_dir=out, resume=args.resume, device=device,
                      provenance=provenance(device, profile=profile.name,
                                            data_source=data.source),
                      precision=args.precision, compile=args.compile)
    except TrainingDiverged as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    acc = history.last("test_acc")
    print(f"{history.status}: {len(history.epochs)} epoch(s) in {history.wall_time:.0f} s; "
          f"test accuracy {acc:.4f}" if acc is not None else f"{history.status}: no epoch "
          "finished")
    print(f"history and checkpoint in {out}/")
    if history.status == "completed":
        return 0
    signum = state["signals"][-1] if state["signals"] else signal.SIGINT
    print(f"{PROG}: stopped by {signal_name(signum)}; run the same command with --resume to "
          "continue" + ("" if history.epochs else " (no epoch had finished)"), file=sys.stderr)
    return 128 + int(signum)
