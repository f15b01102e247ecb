"""The command line: `python -m resnet_nb train ...` and `python -m resnet_nb info`."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .models import EXAMPLE_DEPTHS
from .blocks import SHORTCUT_OPTIONS
from .train import RECIPE_NAMES


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m resnet_nb",
                description="Train and inspect the CIFAR-10 ResNets of He et al. (2015).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA, else torchvision)")
    t.add_argument("--out", help="output folder (default: runs/<model>-<recipe>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--profile", help="smoke, cpu or gpu (default: RESNET_NB_PROFILE)")
    sub.add_parser("info", help="versions, device, profile and data source")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataError
    try:
        return _train(args) if args.command == "train" else _info()
    except (ValueError, DataError, IndexError) as e:
        print(f"python -m resnet_nb: error: {e}", file=sys.stderr)
        return 2


def _info() -> int:
    import torch
    from .data import default_cache_dir, describe_source
    from .profiles import get_profile
    from .provenance import device_name, git_commit, versions
    from .train import pick_device
    for name, v in versions().items():
        print(f"{name:<12}{v}")
    print(f"{'git':<12}{git_commit()}")
    print(f"{'device':<12}{device_name(pick_device())}")
    print(f"{'cuda':<12}{'available' if torch.cuda.is_available() else 'not available'}")
    print(f"{'profile':<12}{get_profile()}")
    print(f"{'data':<12}{describe_source()}")
    print(f"{'cache':<12}{default_cache_dir()}")
    return 0


def _train(args) -> int:
    from dataclasses import replace
    from .data import load_cifar10
    from .models import cifar_resnet
    from .profiles import get_profile
    from .provenance import provenance
    from .train import CHECKPOINT, TrainingDiverged, fit, pick_device, recipe, seed_everything

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
    seed_everything(args.seed)
    model = cifar_resnet(args.depth, args.shortcut, preact=args.preact)
    slug = re.sub(r"[^a-z0-9]+", "-", model.name.lower()).strip("-")
    out = Path(args.out or f"runs/{slug}-{args.recipe}-seed{args.seed}")
    if (out / CHECKPOINT).exists() and not args.resume:
        raise ValueError(f"{out} already holds a run: add --resume to continue it, "
                         "or choose another --out")

    data = load_cifar10(args.data)
    if args.val_size:
        data = data.split_validation(args.val_size, seed=args.seed)
    pick = lambda given, default: default if given is None else (None if given == "all" else given)
    data = data.subset(train=pick(args.train_size, profile.train_size),
                       test=pick(args.test_size, profile.test_size), seed=args.seed)
    device = pick_device(args.device)
    print(f"{model.name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{data}; {cfg}; device {device}")
    try:
        history = fit(model, data, cfg, out_dir=out, resume=args.resume, device=device,
                      provenance=provenance(device, profile=profile.name,
                                            data_source=data.source))
    except TrainingDiverged as e:
        print(f"python -m resnet_nb: {e}", file=sys.stderr)
        return 1
    acc = history.last("test_acc")
    print(f"{history.status}: {len(history.epochs)} epoch(s) in {history.wall_time:.0f} s; "
          f"test accuracy {acc:.4f}" if acc is not None else f"{history.status}: no epoch "
          "finished")
    print(f"history and checkpoint in {out}/")
    return 0 if history.status == "completed" else 130
