"""The command line: `python -m resnet_nb train|reproduce|info ...`."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .models import EXAMPLE_DEPTHS
from .blocks import SHORTCUT_OPTIONS
from .train import COMPILE_MODES, PRECISIONS, RECIPE_NAMES


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
    t.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 on GPUs that have it, fp16 with loss scaling on older "
                        "GPUs, float32 on CPUs")
    t.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile the training step with this mode (default: eager)")
    r = sub.add_parser("reproduce", help="make the reference runs (He et al. 2015, Fig. 6 and "
                                         "Table 6) with this package's loop")
    r.add_argument("sets", nargs="*", metavar="SET",
                   help="fig6 and/or table6, each optionally with its own depths: table6:20,56")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--depths", type=int, nargs="+", help="a subset of the set's depths")
    r.add_argument("--out", default="reference", help="where the runs are stored "
                   "(default: reference/)")
    r.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, each in its own process (default 1)")
    r.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    r.add_argument("--precision", default="auto", choices=PRECISIONS)
    r.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile the training step with this mode (default: eager)")
    r.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA, else torchvision)")
    r.add_argument("--epochs", type=int, help="another budget than the set's (for tests)")
    r.add_argument("--train-size", type=int, help="fewer training images (for tests)")
    r.add_argument("--test-size", type=int, help="fewer test images (for tests)")
    r.add_argument("--val-size", type=int, help="another validation split (for tests)")
    r.add_argument("--summary", action="store_true",
                   help="print the paper-against-measured table of the stored runs and exit")
    r.add_argument("--only", help=argparse.SUPPRESS)     # one run, in a child process
    sub.add_parser("info", help="versions, device, profile and data source")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataError
    try:
        if args.command == "reproduce":
            return _reproduce(args, argv if argv is not None else sys.argv[1:])
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
                                            data_source=data.source),
                      precision=args.precision, compile=args.compile)
    except TrainingDiverged as e:
        print(f"python -m resnet_nb: {e}", file=sys.stderr)
        return 1
    acc = history.last("test_acc")
    print(f"{history.status}: {len(history.epochs)} epoch(s) in {history.wall_time:.0f} s; "
          f"test accuracy {acc:.4f}" if acc is not None else f"{history.status}: no epoch "
          "finished")
    print(f"history and checkpoint in {out}/")
    return 0 if history.status == "completed" else 130


def _reproduce(args, argv: list[str]) -> int:
    import datetime as dt
    import os
    import time
    from .provenance import device_name
    from .reproduce import (finish_set, get_set, pending_runs, record_set, run_specs,
                            speed_table, summary_table, with_budget, write_manifest)
    from .train import pick_device

    out = Path(args.out)
    if args.summary:
        print(summary_table(out))
        print()
        print(speed_table(out))
        return 0
    if not args.sets:
        raise ValueError("name a set to reproduce: fig6 and/or table6 (or --summary)")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    chosen = {}                              # set -> depths (None: --depths or all)
    for item in args.sets:
        name, _, depths = item.partition(":")
        try:
            chosen[name] = [int(d) for d in depths.split(",")] if depths else args.depths
        except ValueError:
            raise ValueError(f"expected SET or SET:DEPTH,DEPTH (e.g. table6:20,56), got {item!r}")
    sets = [with_budget(get_set(name), epochs=args.epochs, train_size=args.train_size,
                        test_size=args.test_size, val_size=args.val_size) for name in chosen]
    device = pick_device(args.device)
    child_args = [a for a in argv[argv.index("reproduce") + 1:] if a not in args.sets]
    if "--depths" in child_args:            # the child is told its run by --only
        i = child_args.index("--depths")
        j = i + 1
        while j < len(child_args) and not child_args[j].startswith("--"):
            j += 1
        del child_args[i:j]
    command = os.environ.get("RESNET_NB_REPRODUCE_COMMAND") or " ".join(
        ["python -m resnet_nb", *argv])

    if args.only:       # a child process: one run
        from .data import load_cifar10
        from .reproduce import train_run
        rset = sets[0]
        spec = next((s for s in rset.runs(args.seeds) if s.run_id == args.only),
                    None)
        if spec is None:
            raise ValueError(f"{rset.name} has no run {args.only!r}")
        h = train_run(rset, spec, out, data=load_cifar10(args.data), device=device,
                      precision=args.precision, compile=args.compile, command=command)
        return 0 if h.status == "completed" else 130

    specs = {rset.name: rset.runs(args.seeds, chosen[rset.name]) for rset in sets}
    # Seed by seed: every set's first seed before any set's second one.
    todo = sorted(((rset, s) for rset in sets for s in pending_runs(rset, specs[rset.name], out)),
                  key=lambda pair: pair[1].seed)
    for rset in sets:
        n_done = len(specs[rset.name]) - sum(1 for r, _ in todo if r is rset)
        print(f"{rset.name}: {rset.title}\n  budget: {rset.budget()}\n  "
              f"{len(specs[rset.name])} run(s), {n_done} already finished (skipped); "
              f"device {device_name(device)}, {args.jobs} at a time")
    if args.jobs > 1 and todo:
        from .data import load_cifar10
        load_cifar10(args.data)         # decode once here, so that the children read the cache
    os.environ["RESNET_NB_REPRODUCE_COMMAND"] = command
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    interrupted = False
    try:
        ok = run_specs(todo, out, data_source=args.data, device=args.device, jobs=args.jobs,
                       precision=args.precision, compile=args.compile, child_args=child_args,
                       command=command)
    except KeyboardInterrupt:
        ok, interrupted = False, True
    wall = time.perf_counter() - t0
    for rset in sets:
        finish_set(rset, specs[rset.name], out)
        record_set(rset, specs[rset.name], out, command, {
            "started": started, "wall_seconds": round(wall, 1),
            "device": device_name(device), "jobs": args.jobs, "precision": args.precision,
            "compile": args.compile or "off",
            "queued": [s.run_id for r, s in todo if r is rset]})
    write_manifest(out)
    print(f"{'interrupted' if interrupted else 'done'} after {wall:.0f} s; "
          f"{'all runs finished' if ok else 'some runs are not finished: run the same command again to resume them'}; "
          f"results in {out}/ (python -m resnet_nb reproduce --summary --out {out})")
    return 0 if ok else (130 if interrupted else 1)
