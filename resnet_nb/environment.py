"""Is this machine ready for the course? Versions, device, profile and data, with advice.

    checks = check_environment()      # a list of Check(name, status, value, advice)
    print(format_checks(checks))      # one line each; advice under anything that is not ok

Nothing here downloads or loads data: the data check only looks at what
`load_cifar10()` would use (RESNET_NB_DATA, or torchvision's download) and
whether a copy is already on disk.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata

OK, WARNING, PROBLEM = "ok", "warning", "problem"

# The oldest versions the course is tested against (pyproject.toml's floors; a test checks
# that they agree, and .ci/floors runs the course on exactly these).
MINIMUM = {"torch": "2.2", "torchvision": "0.17", "numpy": "1.26", "matplotlib": "3.9",
           "ipywidgets": "7.7", "tqdm": "4.66"}
MINIMUM_PYTHON = (3, 10)
EXAMPLE_DATA = "export RESNET_NB_DATA=/path/to/cifar-10-batches-py   (or a .tar.gz of it)"


@dataclass(frozen=True)
class Check:
    """One line of the environment report."""

    name: str
    status: str          # "ok", "warning" (works, but read the advice) or "problem"
    value: str
    advice: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():   # "0rc1": stop after the number
            break
    return tuple(parts)


def check_package(name: str, minimum: str | None = None) -> Check:
    """Is `name` installed (and at least `minimum`)?"""
    minimum = minimum or MINIMUM.get(name)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, PROBLEM, "not installed",
                     f"install the course with its dependencies: pip install -e \".[notebook]\" "
                     f"(or pip install {name})")
    if minimum and _version_tuple(version) < _version_tuple(minimum):
        return Check(name, PROBLEM, version, f"the course needs {name} >= {minimum}: "
                     f"pip install -U \"{name}>={minimum}\"")
    return Check(name, OK, version)


def check_numpy() -> Check:
    """numpy, and whether torch can use it: torch before 2.3 was built for NumPy 1 and cannot
    exchange arrays with NumPy 2 (torch.from_numpy raises 'Numpy is not available')."""
    check = check_package("numpy")
    if not check.ok:
        return check
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return check
    if _version_tuple(torch_version) < (2, 3) and _version_tuple(check.value) >= (2,):
        return Check("numpy", PROBLEM, check.value,
                     f"torch {torch_version} was built for NumPy 1 and cannot use NumPy "
                     f"{check.value}: pip install \"numpy>=1.26,<2\" (or torch >= 2.3)")
    return check


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < MINIMUM_PYTHON:
        return Check("python", PROBLEM, version, "the course needs Python "
                     f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer")
    return Check("python", OK, version)


def check_device(profile_name: str | None = None) -> Check:
    """The device training will use, and whether it suits the profile."""
    import torch
    from .provenance import device_name
    from .device import pick_device
    device = pick_device()
    value = device_name(device)
    if device.type == "cpu" and profile_name == "gpu":
        return Check("device", WARNING, value,
                     "the 'gpu' profile trains on 20,000 images for 5 epochs per run: hours on a "
                     "CPU. Set RESNET_NB_PROFILE=cpu, or use a GPU (in Colab: Runtime > Change "
                     "runtime type > GPU)")
    if device.type == "cpu":
        return Check("device", OK, value + " (no GPU: the cpu profile keeps every cell short)")
    return Check("device", OK, value)


def check_profile() -> Check:
    from .profiles import PROFILE_NAMES, get_profile
    try:
        profile = get_profile()
    except ValueError as e:
        return Check("profile", PROBLEM, os.environ.get("RESNET_NB_PROFILE", ""),
                     f"{e}. Unset it, or set e.g. RESNET_NB_PROFILE=cpu")
    how = ("from RESNET_NB_PROFILE" if os.environ.get("RESNET_NB_PROFILE")
           else "the default for this machine; set RESNET_NB_PROFILE to change it")
    return Check("profile", OK, f"{profile} ({how})")


def check_data(source: str | os.PathLike | None = None) -> Check:
    """Which CIFAR-10 source `load_cifar10(source)` will use, and whether it is there."""
    from .data import DataError
    from .sources import default_cache_dir, describe_source
    env = os.environ.get("RESNET_NB_DATA")
    spec = os.fspath(source) if source is not None else env
    try:
        described = describe_source(source)
    except DataError as e:
        return Check("data", PROBLEM, spec or "", str(e))
    if spec == "synthetic":
        return Check("data", WARNING, described,
                     "synthetic images are random patterns, not CIFAR-10: fine for tests, "
                     "meaningless for the course. Unset RESNET_NB_DATA or point it at CIFAR-10")
    if spec:   # a path
        if "MISSING" in described:
            return Check("data", PROBLEM, described.split(" (MISSING")[0] + " does not exist",
                         f"RESNET_NB_DATA names no file or folder. Point it at a CIFAR-10 copy, "
                         f"e.g. {EXAMPLE_DATA}, or unset it to download with torchvision")
        return Check("data", OK, described)
    downloaded = default_cache_dir() / "torchvision" / "cifar-10-batches-py"
    if downloaded.is_dir():
        return Check("data", OK, "torchvision (already downloaded to the cache)")
    return Check("data", WARNING, "torchvision (will download about 170 MB on first use)",
                 f"this needs the internet. Offline, point RESNET_NB_DATA at a local copy "
                 f"before starting Jupyter, or in the first cell with os.environ: "
                 f"{EXAMPLE_DATA}")


def check_environment(source: str | os.PathLike | None = None) -> list[Check]:
    """Every check, in the order a student fixes them: Python, packages, device, profile, data."""
    from .profiles import get_profile
    checks = [check_python(), check_package("torch"), check_package("torchvision"),
              check_numpy()] + [check_package(name) for name in
                                ("matplotlib", "ipywidgets", "tqdm")]
    try:
        profile_name = get_profile().name
    except ValueError:
        profile_name = None
    checks += [check_device(profile_name), check_profile(), check_data(source)]
    return checks


def format_checks(checks: list[Check]) -> str:
    """A short report: one line per check, the advice indented below what needs attention."""
    mark = {OK: "ok     ", WARNING: "WARNING", PROBLEM: "PROBLEM"}
    lines = []
    for c in checks:
        lines.append(f"{mark[c.status]}  {c.name:<12}{c.value}")
        if c.advice:
            lines.append(f"{'':>9}{'':<12}-> {c.advice}")
    bad = [c.name for c in checks if c.status == PROBLEM]
    lines.append("Ready." if not bad else f"Fix before going on: {', '.join(bad)}.")
    return "\n".join(lines)


# --- how long the notebooks will take here -------------------------------------------------

#: The step timed to compare machines: the course's training step for ResNet-20 at batch 128.
SPEED_DEPTH, SPEED_BATCH = 20, 128
#: The speed the notebooks' headers state their computer time at: ResNet-20 images/s.
REFERENCE_SPEED = 1_000


def normalised_seconds(seconds: float, images_per_second: float) -> float:
    """A time recorded on a machine that trained ResNet-20 at `images_per_second`, scaled to
    one that trains it at REFERENCE_SPEED (what the notebooks' headers and tools/budget.py
    state)."""
    return seconds * images_per_second / REFERENCE_SPEED


def machine_speed(device=None, steps: int = 4, repeats: int = 3) -> float:
    """Images per second of ResNet-20 training steps at batch 128 here (median of `repeats`).

    The same measurement is recorded beside the notebooks' times in notebooks/timings.json
    (by tools/run_notebooks.py), so the two machines can be compared.
    """
    import statistics

    import torch
    from .data import make_synthetic
    from .metrics import training_throughput
    from .models import cifar_resnet
    from .device import pick_device
    device = pick_device(None if device is None else str(device))
    data = make_synthetic((steps + 2) * SPEED_BATCH, 10).train
    rates = []
    for _ in range(repeats):
        torch.manual_seed(0)
        rates.append(training_throughput(cifar_resnet(SPEED_DEPTH), data, SPEED_BATCH,
                                         steps * SPEED_BATCH, device=device).images_per_second)
    return statistics.median(rates)


@dataclass(frozen=True)
class Prediction:
    """A notebook's recorded time under a profile, and that time scaled to this machine."""
    notebook: str
    profile: str
    recorded_seconds: float
    predicted_seconds: float
    note: str = ""            # how the time was measured, where that matters (e.g. a shared GPU)


def predicted_times(speed: float, timings: str | os.PathLike, on_gpu: bool) -> list[Prediction]:
    """Each notebook's recorded time, scaled by the speed recorded with it over `speed`.

    The speed is the one measured at the start of that notebook's run (its entry's
    "images_per_second"), else the one recorded for the profile.

    Only profiles recorded on the same kind of machine (a CPU, or a GPU when `on_gpu`) are
    scaled: a CPU's time says little about a GPU's. The scaling assumes that a notebook's
    time is mostly training steps, so it is an estimate; it is most accurate for the notebooks
    that train (01, 04, 05, 06).
    """
    import json
    from pathlib import Path
    recorded = json.loads(Path(timings).read_text())
    out = []
    for profile, entry in sorted(recorded.get("speed", {}).items()):
        if entry.get("gpu", False) != on_gpu or not entry.get("images_per_second"):
            continue
        for notebook, runs in sorted(recorded.get("notebooks", {}).items()):
            if profile in runs:
                # The speed measured with that notebook's run, else the profile's.
                then = runs[profile].get("images_per_second") or entry["images_per_second"]
                seconds = runs[profile]["seconds"]
                out.append(Prediction(notebook, profile, seconds, seconds * then / speed,
                                      runs[profile].get("note", "")))
    return out


def _duration(seconds: float) -> str:
    """ "45 s" below two minutes, else minutes with one decimal ("4.1 min"), as in the headers."""
    return f"{seconds:.0f} s" if round(seconds) < 120 else f"{seconds / 60:.1f} min"


def format_predictions(speed: float, predictions: list[Prediction],
                       timings: str | os.PathLike) -> str:
    """A table of the predicted times, with the machine they were recorded on."""
    import json
    from pathlib import Path
    if not predictions:
        return (f"this machine trains ResNet-20 at {speed:,.0f} images/s; no notebook times were "
                "recorded on this kind of machine, so none can be predicted")
    recorded = json.loads(Path(timings).read_text())
    profiles = sorted({p.profile for p in predictions})
    lines = [f"this machine trains ResNet-20 at {speed:,.0f} images/s (batch {SPEED_BATCH})"]
    for profile in profiles:
        ref = recorded["speed"][profile]
        runs = [r[profile] for r in recorded.get("notebooks", {}).values() if profile in r]
        then = [r.get("images_per_second") or ref["images_per_second"] for r in runs]
        low, high = min(then), max(then)
        at = f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f} to {high:,.0f}"
        machines = " and ".join(dict.fromkeys(r.get("machine", ref["machine"]) for r in runs))
        lines.append(f"'{profile}' profile: recorded on {machines}, which trained it at "
                     f"{at} images/s during the runs; predicted here (in brackets: at "
                     f"{REFERENCE_SPEED:,} images/s, as the notebooks' headers say):")
        mine = [p for p in predictions if p.profile == profile]
        notes = list(dict.fromkeys(p.note for p in mine if p.note))      # in order, once each
        for p in mine:
            mark = "*" * (notes.index(p.note) + 1) if p.note else ""
            lines.append(f"    {p.notebook:<30}{_duration(p.predicted_seconds):>9}"
                         f"   ({_duration(p.predicted_seconds * speed / REFERENCE_SPEED)})"
                         f"{mark}")
        total = sum(p.predicted_seconds for p in mine)
        timed = len(mine)
        missing = len(recorded.get("notebooks", {})) - timed
        label = "all notebooks" if missing <= 0 else f"the {timed} timed ({missing} not yet)"
        lines.append(f"    {label:<30}{_duration(total):>9}")
        lines += [f"    {'*' * (i + 1)} {note}" for i, note in enumerate(notes)]
    return "\n".join(lines)
