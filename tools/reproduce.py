"""The reference runs: He et al. (2015)'s CIFAR-10 experiments, made with resnet_nb's loop.

    python -m tools reproduce fig6 --seeds 0 1 2 --out reference/
    python -m tools reproduce table6 --depths 20 56 --seeds 0 --out reference/
    python -m tools reproduce --summary --out reference/

Two sets:

    fig6    plain-20/32/44/56 and ResNet-20/32/44/56 (option A) on all 50,000 training
            images, at a budget where Fig. 6's ordering can be checked (a compressed copy of
            the paper's step schedule); train and test error after every epoch.
    table6  the paper's recipe (sec. 4.2): 45k/5k split, 182 epochs of 351 steps (63,882
            iterations, the paper's 64k), lr 0.1 divided by 10 at half and three quarters
            of the run (32k and 48k), the 400-step warm-up at lr 0.01 for ResNet-110.

Each run lives in <out>/<set>/<network>-seed<k>/: history.json (with its provenance) and,
while it trains, checkpoint.pt (not committed). Runs resume from their checkpoint, and a
finished run is skipped, so a set can be completed over several sittings (--stop-after
ends one cleanly, e.g. before a cluster job's time limit). The runs train one after the
other in this process, or with --ray [ADDRESS] as Ray tasks, several at once on this
machine or on a cluster, each with its share of a GPU (--gpus-per-run 0.25: four small
networks on one GPU; see tools/ray_sweep.py and docs/clusters.md). After a set, the trained weights it exports (fig6: plain-20/56 and ResNet-20/56
of the first seed) are written to <out>/weights/ in half precision, and <out>/MANIFEST.json
lists the sha256 of every stored file; `resnet_nb.reference` reads them back (and defines
where each file lives).

Every file is written atomically (files.atomic_write: a kill leaves the old file or the new
one), one reproduce command at a time may write <out> (a lock, as `fit` takes on each run
folder), and <out> is checked to be writable before any data are loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from resnet_nb.cli import Parser, run_command
from resnet_nb.device import COMPILE_MODES, PRECISIONS
from resnet_nb.files import atomic_write
from resnet_nb.models import cifar_resnet
from resnet_nb.reference import MANIFEST, README, SET_INFO, WEIGHTS, sha256, weights_path
from resnet_nb.runs import CHECKPOINT, HISTORY, History
from resnet_nb.train import TrainConfig, recipe

PROG = "python -m tools reproduce"
#: Files a run folder holds only while it trains; never committed, never in the manifest.
WORK_FILES = (CHECKPOINT,)

#: He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets (110: best of 5 runs;
#: the paper also gives its mean and std, 6.61 +- 0.16).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PAPER_110_MEAN_STD = (6.61, 0.16)


@dataclass(frozen=True)
class RunSpec:
    """One training run of a reference set."""

    set: str
    depth: int
    shortcut: str      # "none" (plain) or "A"
    seed: int

    @property
    def network(self) -> str:
        """'plain-56' or 'resnet-56': the name used in folders and by resnet_nb.reference."""
        return f"{'plain' if self.shortcut == 'none' else 'resnet'}-{self.depth}"

    @property
    def run_id(self) -> str:
        return f"{self.network}-seed{self.seed}"

    @property
    def label(self) -> str:
        """As the paper writes it: 'plain-56', 'ResNet-56'."""
        return f"{'plain' if self.shortcut == 'none' else 'ResNet'}-{self.depth}"


@dataclass(frozen=True)
class ReferenceSet:
    """A set of reference runs and its budget (the same recipe for every run in it)."""

    name: str
    title: str
    depths: tuple[int, ...]
    shortcuts: tuple[str, ...]
    epochs: int
    batch_size: int = 128
    val_size: int = 0                    # held out of the training set (table6: 5,000)
    split_seed: int = 0                  # one fixed train/val split for every run
    train_size: int | None = None        # None: every training image left after the split
    test_size: int | None = None         # None: all 10,000 test images
    warmup_depth: int = 110              # from this depth on: 400 steps at lr 0.01 first
    exports: tuple[str, ...] = ()        # networks whose weights are stored (first seed)

    def runs(self, seeds, depths=None) -> list[RunSpec]:
        """The runs for these seeds, deepest first (so that the longest runs start first)."""
        depths = self.depths if depths is None else tuple(depths)
        unknown = [d for d in depths if d not in self.depths]
        if unknown:
            raise ValueError(f"{self.name} has depths {', '.join(map(str, self.depths))}, "
                             f"not {', '.join(map(str, unknown))}")
        return [RunSpec(self.name, d, s, seed) for seed in seeds
                for d in sorted(depths, reverse=True) for s in self.shortcuts]

    def train_config(self, spec: RunSpec) -> TrainConfig:
        """The paper's recipe (sec. 4.2) at this set's budget."""
        return recipe("paper", epochs=self.epochs, batch_size=self.batch_size, seed=spec.seed,
                      warmup_steps=400 if spec.depth >= self.warmup_depth else 0)

    @property
    def train_images(self) -> int:
        return (50_000 - self.val_size) if self.train_size is None else self.train_size

    def budget(self) -> str:
        """The budget in one line, as each set states it in its output."""
        steps = self.epochs * (self.train_images // self.batch_size)
        split = f", {self.val_size:,} held out for validation" if self.val_size else ""
        return (f"{self.epochs} epochs of {self.train_images:,} training images{split} = "
                f"{steps:,} iterations of batch {self.batch_size}; SGD momentum 0.9, weight "
                f"decay 1e-4, lr 0.1 divided by 10 after 50% and 75% of the iterations"
                + (f" (400 iterations at lr 0.01 first from depth {self.warmup_depth})"
                   if any(d >= self.warmup_depth for d in self.depths) else "")
                + "; crop and flip augmentation")


SETS = {
    "fig6": ReferenceSet(
        "fig6", "He et al. 2015, Fig. 6: plain networks against ResNets on CIFAR-10",
        depths=(20, 32, 44, 56), shortcuts=("none", "A"), epochs=30,
        exports=("plain-20", "plain-56", "resnet-20", "resnet-56")),
    "table6": ReferenceSet(
        "table6", "He et al. 2015, Table 6: CIFAR-10 test error with the paper's recipe",
        depths=(20, 32, 44, 56, 110), shortcuts=("A",), epochs=182, val_size=5000),
}


def get_set(name: str) -> ReferenceSet:
    if name not in SETS:
        raise ValueError(f"reference set must be one of {', '.join(SETS)}, got {name!r}")
    return SETS[name]


def with_budget(rset: ReferenceSet, *, epochs: int | None = None, train_size: int | None = None,
                test_size: int | None = None, val_size: int | None = None) -> ReferenceSet:
    """The set at another budget (small budgets are for tests); the budget is recorded."""
    changes = {k: v for k, v in (("epochs", epochs), ("train_size", train_size),
                                 ("test_size", test_size), ("val_size", val_size))
               if v is not None}
    return replace(rset, **changes)


# --- one run -------------------------------------------------------------------

def run_dir(out: Path, spec: RunSpec) -> Path:
    return Path(out) / spec.set / spec.run_id


def is_finished(folder: Path, cfg: TrainConfig) -> bool:
    """True when `folder` holds a completed history of this very configuration."""
    path = folder / HISTORY
    if not path.exists():
        return False
    try:
        h = History.load(path)
    except (OSError, ValueError, TypeError):
        return False
    return (h.status == "completed" and len(h.epochs) == cfg.epochs
            and h.config == json.loads(json.dumps(asdict(cfg))))


def train_run(rset: ReferenceSet, spec: RunSpec, out: Path, *, data, device, precision: str =
              "auto", compile: str | None = None, command: str = "") -> History:
    """Train one run (or resume it) with `fit`; return its history."""
    from resnet_nb.provenance import provenance
    from resnet_nb.train import fit

    cfg = rset.train_config(spec)
    folder = run_dir(out, spec)
    if rset.val_size:
        data = data.split_validation(rset.val_size, seed=rset.split_seed)
    data = data.subset(train=rset.train_size, test=rset.test_size, seed=rset.split_seed)
    torch.manual_seed(spec.seed)          # the model's initial weights
    model = cifar_resnet(spec.depth, spec.shortcut)
    prov = provenance(device, reference_set=rset.name, budget=rset.budget(),
                      data_source=data.source, train_images=len(data.train),
                      test_images=len(data.test),
                      val_images=len(data.val) if data.val is not None else 0)
    if command:
        prov["command"] = command
    return fit(model, data, cfg, out_dir=folder, resume=True, device=device, progress=False,
               provenance=prov, precision=precision, compile=compile)


# --- a whole set: one run after another here, or as Ray tasks ---------------------------

def pending_runs(rset: ReferenceSet, specs: list[RunSpec], out: Path) -> list[RunSpec]:
    return [s for s in specs if not is_finished(run_dir(out, s), rset.train_config(s))]


def run_specs(todo: list[tuple[ReferenceSet, RunSpec]], out: Path, *, data_source,
              device: str | None, precision: str = "auto", compile: str | None = None,
              command: str = "", ray: str | None = None, gpus_per_run: float | None = None,
              cpus_per_run: float = 1.0, say=print) -> bool:
    """Train every run of `todo`; True when all finished.

    Without `ray`, one after the other in this process; with `ray` ("local" or a cluster's
    address), as Ray tasks (tools/ray_sweep.py). Ctrl-C (or SIGTERM) stops the runs at once;
    each keeps its last finished epoch.
    """
    def report(rset, spec, h: History, seconds: float, where: str = "") -> None:
        speeds = [e["images_per_second"] for e in h.epochs if "images_per_second" in e]
        speed = f", {statistics.median(speeds):,.0f} images/s" if speeds else ""
        say(f"{rset.name} {spec.run_id}: {h.status}, {_result(h)} ({seconds:.0f} s{speed}"
            f"{', ' + where if where else ''})")

    if ray is not None:
        from tools.ray_sweep import run_on_ray
        return run_on_ray(todo, out, address=ray, gpus_per_run=gpus_per_run,
                          cpus_per_run=cpus_per_run, data_source=data_source, device=device,
                          precision=precision, compile=compile, command=command, say=say,
                          report=report)
    from resnet_nb.data import load_cifar10
    from resnet_nb.device import pick_device
    dev = pick_device(device)
    data = load_cifar10(data_source)
    for rset, spec in todo:
        t0 = time.perf_counter()
        say(f"{rset.name} {spec.run_id}: training ({rset.budget()})")
        h = train_run(rset, spec, out, data=data, device=dev, precision=precision,
                      compile=compile, command=command)
        report(rset, spec, h, time.perf_counter() - t0)
        if h.status == "interrupted":        # Ctrl-C, SIGTERM, --stop-after: stop the sweep
            raise KeyboardInterrupt
        if h.status != "completed":
            return False
    return True


def _result(h: History) -> str:
    if not h.epochs:
        return "no epoch finished"
    e = h.epochs[-1]
    return (f"train error {100 * (1 - e['train_acc']):.2f}%, test error "
            f"{100 * (1 - e['test_acc']):.2f}%" if "test_acc" in e else "")


# --- stored results: weights, manifest, set record ------------------------------------

#: Buffers kept in float32 when weights are stored in half precision: a deep plain network's
#: batch-norm running variance can exceed float16's largest number (65,504) and become inf.
FLOAT32_BUFFERS = ("running_mean", "running_var")


def compact_state_dict(model_state: dict) -> dict:
    """Parameters in float16, batch-norm running statistics in float32; every number finite.

    Raises ValueError naming the tensor if a number is not finite after the conversion.
    """
    out = {}
    for k, v in model_state.items():
        if v.is_floating_point():
            v = v.float() if k.rsplit(".", 1)[-1] in FLOAT32_BUFFERS else v.half()
            if not torch.isfinite(v).all():
                raise ValueError(f"{k} is not finite in {v.dtype} (largest magnitude "
                                 f"{v.float().abs().max().item():.3g})")
        out[k] = v
    return out


def export_weights(rset: ReferenceSet, spec: RunSpec, out: Path) -> Path | None:
    """Store the finished run's weights compactly (compact_state_dict; weights_only)."""
    folder = run_dir(out, spec)
    if not (folder / CHECKPOINT).exists() or not is_finished(folder, rset.train_config(spec)):
        return None
    state = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
    history = History.load(folder / HISTORY)
    path = weights_path(out, rset.name, spec.network, spec.seed)
    _save(path, {"model_config": state["model_config"],
                 "state_dict": compact_state_dict(state["model"]),
                 "dtype": "float16, batch-norm running statistics float32", "set": rset.name,
                 "run": spec.run_id, "test_acc": history.last("test_acc")})
    return path


def _save(path: Path, obj) -> None:
    """torch.save, atomically (files.atomic_write): a kill leaves the old file or the new."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _write_json(path: Path, obj, **dumps) -> None:
    """JSON and a final newline, atomically (files.atomic_write)."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, **dumps) + "\n").encode()))


def write_manifest(out: Path) -> dict:
    """List every stored file under `out` with its size and sha256 (work files excluded)."""
    out = Path(out)
    files = {}
    for path in sorted(out.rglob("*")):
        if (not path.is_file() or path.name in (MANIFEST, README) or path.name in WORK_FILES
                or path.name.startswith(".")):
            continue
        files[path.relative_to(out).as_posix()] = {"bytes": path.stat().st_size,
                                                   "sha256": sha256(path)}
    manifest = {"note": "resnet-nb reference runs; `resnet_nb.reference` checks every file it "
                        "reads against these sums", "files": files}
    _write_json(out / MANIFEST, manifest, indent=1, sort_keys=True)
    return manifest


def compact_history(folder: Path) -> None:
    """Rewrite a finished history.json compactly (per-step losses to 5 significant digits)."""
    path = folder / HISTORY
    h = History.load(path)
    h.step_loss = [float(f"{x:.5g}") for x in h.step_loss]
    _write_json(path, h.to_dict(), separators=(",", ":"))


def record_set(rset: ReferenceSet, specs: list[RunSpec], out: Path, command: str,
               sitting: dict) -> dict:
    """<out>/<set>/set.json: the set's budget, recipe, runs and sittings (wall time, device).

    `sitting` describes this sitting (its "queued" runs among them); the runs it finished
    are added to it as "finished".
    """
    path = Path(out) / rset.name / SET_INFO
    info = json.loads(path.read_text()) if path.exists() else {}
    before = set(info.get("finished_runs", []))
    finished = {s.run_id for s in specs if is_finished(run_dir(out, s), rset.train_config(s))}
    info.update(name=rset.name, title=rset.title, budget=rset.budget(),
                definition=json.loads(json.dumps(asdict(rset))))
    if finished - before or "command" not in info:
        info["command"] = command         # the command that made the runs held, not a failed try
    info.setdefault("sittings", []).append({**sitting, "command": command,
                                            "finished": sorted(finished - before)})
    info["finished_runs"] = sorted(before | finished)
    _write_json(path, info, indent=1)
    return info


def finish_set(rset: ReferenceSet, specs: list[RunSpec], out: Path) -> list[Path]:
    """Compact finished histories and export the set's weights (first seed)."""
    exported = []
    for spec in specs:
        folder = run_dir(out, spec)
        if is_finished(folder, rset.train_config(spec)):
            compact_history(folder)
            if spec.network in rset.exports and spec.seed == min(s.seed for s in specs):
                path = export_weights(rset, spec, out)
                if path is not None:
                    exported.append(path)
    return exported


# --- reading the stored runs back: the paper-against-measured table ----------------------

@dataclass
class Measured:
    label: str
    test_errors: list = field(default_factory=list)     # % per seed
    train_errors: list = field(default_factory=list)
    wall_times: list = field(default_factory=list)       # s per run
    images_per_second: list = field(default_factory=list)
    devices: set = field(default_factory=set)
    budgets: set = field(default_factory=set)            # "30 epochs x 50,000 images"

    @staticmethod
    def spread(values) -> str:
        if not values:
            return "not run"
        mean = statistics.mean(values)
        if len(values) == 1:
            return f"{mean:.2f} (n=1)"
        return f"{mean:.2f} ± {statistics.stdev(values):.2f} (n={len(values)})"


def collect(out: Path, set_name: str) -> dict[str, Measured]:
    """Finished runs of a set, grouped by network (plain first, then by depth)."""
    found: dict[str, Measured] = {}
    folder = Path(out) / set_name
    runs = sorted(p for p in folder.glob("*-seed*") if (p / HISTORY).exists()) \
        if folder.is_dir() else []
    for run in runs:
        h = History.load(run / HISTORY)
        if h.status != "completed" or not h.epochs:
            continue
        network = run.name.rpartition("-seed")[0]
        kind, _, depth = network.partition("-")
        m = found.setdefault(network, Measured(f"{'plain' if kind == 'plain' else 'ResNet'}-"
                                               f"{depth}"))
        m.test_errors.append(100 * (1 - h.last("test_acc")))
        m.train_errors.append(100 * (1 - h.last("train_acc")))
        m.wall_times.append(h.wall_time)
        speeds = [e["images_per_second"] for e in h.epochs if "images_per_second" in e]
        m.images_per_second.append(statistics.median(speeds) if speeds else 0.0)
        for sitting in h.provenance.get("sittings") or [h.provenance]:   # each resume's too
            m.devices.add(sitting.get("device", "?") + (
                f", {sitting['precision']}" if sitting.get("precision") else ""))
        m.budgets.add(f"{h.config['epochs']} epochs x "
                      f"{h.provenance.get('train_images', h.steps_per_epoch * h.config['batch_size']):,} images")
    return found


def summary_table(out: Path) -> str:
    """The README's paper-against-measured table, from the stored runs (Markdown)."""
    rows = ["| set | network | paper: test error (%) | measured: test error (%) | "
            "measured: train error (%) | budget | device | wall time per run |",
            "|---|---|---|---|---|---|---|---|"]
    for set_name in SETS:
        rset = get_set(set_name)
        found = collect(out, set_name)
        for spec in sorted({s for s in rset.runs([0])}, key=lambda s: (s.shortcut != "none",
                                                                       s.depth)):
            m = found.get(spec.network)
            if spec.shortcut == "none":
                paper = "— (Fig. 6, left: higher with depth)"
            elif set_name == "table6":
                paper = (f"{PAPER_TABLE6[spec.depth]:.2f}" + (
                    f" (best of 5; {PAPER_110_MEAN_STD[0]} ± {PAPER_110_MEAN_STD[1]})"
                    if spec.depth == 110 else ""))
            else:
                paper = f"{PAPER_TABLE6[spec.depth]:.2f} (Table 6, 64k iterations)"
            if m is None:
                rows.append(f"| {set_name} | {spec.label} | {paper} | not run | | "
                            f"{rset.epochs} epochs x {rset.train_images:,} images | | |")
                continue
            wall = statistics.mean(m.wall_times)
            rows.append(
                f"| {set_name} | {spec.label} | {paper} | {Measured.spread(m.test_errors)} | "
                f"{Measured.spread(m.train_errors)} | {'; '.join(sorted(m.budgets))} | "
                f"{', '.join(sorted(d.replace('cuda: ', '') for d in m.devices))} | "
                f"{wall / 60:.1f} min |")
    return "\n".join(rows)


def _runner(sitting: dict) -> str:
    """How a sitting trained its runs (older records say how many at a time)."""
    return sitting.get("runner") or f"{sitting.get('jobs', 1)} at a time"


def speed_table(out: Path) -> str:
    """Training speed per network (median images/s over epochs and runs) and set wall times."""
    lines = []
    for set_name in SETS:
        info_path = Path(out) / set_name / SET_INFO
        if not info_path.exists():
            continue
        info = json.loads(info_path.read_text())
        found = collect(out, set_name)
        lines.append(f"{set_name}: " + "; ".join(
            f"{s['wall_seconds']:.0f} s on {s['device']} ({_runner(s)}, compile "
            f"{s['compile']}; finished {', '.join(s.get('finished', [])) or 'none'})"
            for s in info["sittings"]))
        for network, m in found.items():
            lines.append(f"  {m.label:<11} {statistics.median(m.images_per_second):>9,.0f} "
                         f"images/s (median over {len(m.images_per_second)} run(s); runs "
                         "shared the device)")
    return "\n".join(lines)


# --- the command: python -m tools reproduce ... ------------------------------------------

def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, e.g. 0.25, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Make the reference runs (He et al. 2015, Fig. 6 and "
                                      "Table 6) with resnet_nb's training loop.")
    p.add_argument("sets", nargs="*", metavar="SET",
                   help="fig6 and/or table6, each optionally with its own depths: table6:20,56")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--depths", type=int, nargs="+", help="a subset of the set's depths")
    p.add_argument("--out", default="reference", help="where the runs are stored "
                   "(default: reference/); with --ray, a folder every worker can reach")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="train the runs as Ray tasks: on this machine (no ADDRESS), or on a "
                        "running cluster (auto, ray://HEAD:10001); needs the [ray] extra")
    p.add_argument("--gpus-per-run", type=_share, metavar="SHARE",
                   help="with --ray: the GPU share of each run, e.g. 0.25 trains four at once "
                        "on one GPU (default: 1 where the cluster has GPUs, else 0)")
    p.add_argument("--cpus-per-run", type=_share, default=1.0, metavar="N",
                   help="with --ray: CPU cores each run asks for (default 1)")
    p.add_argument("--stop-after", type=_share, metavar="SECONDS",
                   help="stop cleanly after this long (each run keeps its last finished "
                        "epoch; the same command resumes), e.g. before a job's time limit")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile the training step with this mode (default: eager)")
    p.add_argument("--data", help="CIFAR-10 source (default: RESNET_NB_DATA, else torchvision)")
    p.add_argument("--epochs", type=int, help="another budget than the set's (for tests)")
    p.add_argument("--train-size", type=int, help="fewer training images (for tests)")
    p.add_argument("--test-size", type=int, help="fewer test images (for tests)")
    p.add_argument("--val-size", type=int, help="another validation split (for tests)")
    p.add_argument("--summary", action="store_true",
                   help="print the paper-against-measured table of the stored runs and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; its exit code follows resnet_nb.cli's (0 done, 2 a user error, 128 +
    the signal's number when stopped, 1 when some run did not finish)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command(PROG, lambda state: _reproduce(build_parser().parse_args(argv), argv))


def _reproduce(args, argv: list[str]) -> int:
    """The command, given its parsed arguments `args` and the words `argv` they came from."""
    from resnet_nb.files import FolderLock, check_writable, remove_leftovers

    out = Path(args.out)
    if args.summary:
        print(summary_table(out))
        print()
        print(speed_table(out))
        return 0
    if not args.sets:
        raise ValueError("name a set to reproduce: fig6 and/or table6 (or --summary)")
    if args.ray is None and (args.gpus_per_run is not None or "--cpus-per-run" in argv):
        raise ValueError("--gpus-per-run and --cpus-per-run share out a Ray cluster: add --ray")
    if args.ray is not None:
        from tools.ray_sweep import import_ray
        import_ray()                         # without Ray: one line on how to install it
    chosen = {}                              # set -> depths (None: --depths or all)
    for item in args.sets:
        name, _, depths = item.partition(":")
        try:
            chosen[name] = [int(d) for d in depths.split(",")] if depths else args.depths
        except ValueError:
            raise ValueError(f"expected SET or SET:DEPTH,DEPTH (e.g. table6:20,56), got {item!r}")
    sets = [with_budget(get_set(name), epochs=args.epochs, train_size=args.train_size,
                        test_size=args.test_size, val_size=args.val_size) for name in chosen]
    command = " ".join([PROG, *argv])
    specs = {rset.name: rset.runs(args.seeds, chosen[rset.name]) for rset in sets}
    what = "the output folder (--out)"
    check_writable(out, what)               # before the data are loaded

    # One reproduce command at a time writes `out` (its set records and manifest); each run
    # folder is locked by its own fit, in this process or in a Ray worker.
    with FolderLock(out, what):
        for folder in (out, out / WEIGHTS, *(out / rset.name for rset in sets)):
            remove_leftovers(folder, min_age_s=0)     # ours: we hold the lock
        with _stopping_after(args.stop_after):
            return _reproduce_runs(args, out, sets, specs, command)


class _stopping_after:
    """Interrupt this process (SIGINT, as Ctrl-C) after `seconds`, if given."""

    def __init__(self, seconds: float | None):
        self.timer = None if seconds is None else threading.Timer(
            seconds, lambda: os.kill(os.getpid(), signal.SIGINT))

    def __enter__(self):
        if self.timer is not None:
            self.timer.daemon = True
            self.timer.start()

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()


def _reproduce_runs(args, out: Path, sets, specs, command: str) -> int:
    """Train the pending runs of `sets`, then store and record them (see _reproduce)."""
    import datetime as dt

    from resnet_nb.device import pick_device
    from resnet_nb.provenance import device_name

    # Seed by seed: every set's first seed before any set's second one.
    todo = sorted(((rset, s) for rset in sets for s in pending_runs(rset, specs[rset.name], out)),
                  key=lambda pair: pair[1].seed)
    gpus = ("a GPU where the cluster has GPUs" if args.gpus_per_run is None
            else f"{args.gpus_per_run:g} GPU")
    where = "one after another" if args.ray is None else (
        f"on Ray ({args.ray}), each run with {args.cpus_per_run:g} CPU(s) and {gpus}")
    device = device_name(pick_device(args.device)) if args.ray is None else (
        args.device or "chosen by Ray")
    for rset in sets:
        n_done = len(specs[rset.name]) - sum(1 for r, _ in todo if r is rset)
        print(f"{rset.name}: {rset.title}\n  budget: {rset.budget()}\n  "
              f"{len(specs[rset.name])} run(s), {n_done} already finished (skipped); "
              f"device {device}, {where}")
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    interrupted = False
    try:
        ok = run_specs(todo, out, data_source=args.data, device=args.device,
                       precision=args.precision, compile=args.compile, command=command,
                       ray=args.ray, gpus_per_run=args.gpus_per_run,
                       cpus_per_run=args.cpus_per_run)
    except KeyboardInterrupt:
        ok, interrupted = False, True
    wall = time.perf_counter() - t0
    for rset in sets:
        finish_set(rset, specs[rset.name], out)
        record_set(rset, specs[rset.name], out, command, {
            "started": started, "wall_seconds": round(wall, 1), "device": device,
            "runner": where, "precision": args.precision, "compile": args.compile or "off",
            "queued": [s.run_id for r, s in todo if r is rset]})
    write_manifest(out)
    print(f"{'interrupted' if interrupted else 'done'} after {wall:.0f} s (the sweep's wall "
          f"time); {'all runs finished' if ok else 'some runs are not finished: run the same command again to resume them'}; "
          f"results in {out}/ ({PROG} --summary --out {out})")
    return 0 if ok else (130 if interrupted else 1)


if __name__ == "__main__":
    sys.exit(main())
