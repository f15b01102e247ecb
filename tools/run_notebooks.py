"""Regenerate the committed outputs of the course notebooks.

    RESNET_NB_DATA=path/to/cifar10 flock /tmp/resnet_nb_heavy.lock \\
        .venv/bin/python -m tools.run_notebooks [notebooks/01_degradation.ipynb ...] \\
        [--profile cpu] [--timeout 1800]

Each notebook (default: all of notebooks/NN_*.ipynb) is executed top to bottom, in a fresh
kernel whose working folder is notebooks/, under the chosen profile (default cpu, what the
committed outputs show) on the real CIFAR-10 copy named by RESNET_NB_DATA. Progress bars are
switched off (TQDM_DISABLE=1) so that no widget is left in the saved file. A notebook is saved
in place only when every cell ran without an error; widget state and widget views are
stripped. The wall time of each notebook is printed and recorded, with the profile, the
machine and the date, in notebooks/timings.json (entries of notebooks not run are kept).
Notebook 00 prints the recorded times (its environment check predicts them for the student's
machine), its own included, so when 00 is among the notebooks run it is run once more at the
end, after every time has been recorded; that second run's time is not recorded.
Under the cpu profile, each notebook's header time line
    **Time:** about 40 minutes for you; 4.1 minutes for the computer at the `cpu` profile (1,000 ResNet-20 images/s).
gets its second number rewritten from the run just recorded: seconds x images/s / 1,000, the
time on a CPU that trains ResNet-20 at 1,000 images/s (a header still in the older form, "The
computer needs ... while it trained ResNet-20 at N images/s", gets the time and speed as
recorded). The README course map's times and speed range are rewritten too
(tests/test_notebook_claims.py checks both against timings.json).
Exit status: 0 when every notebook ran, 1 otherwise.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TIMINGS = NOTEBOOKS / "timings.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def machine() -> str:
    """A one-line description of the machine: CPU model and cores, or the GPU."""
    from resnet_nb.provenance import machine_description
    return machine_description()


def strip_widgets(nb) -> int:
    """Remove widget state from the metadata and widget outputs; return how many were removed.

    A widget output without its saved state shows 'model not found' (or, as text, a tqdm
    bar frozen at 0%), so the whole output goes; running the cell brings the widget back.
    (tqdm.notebook ignores TQDM_DISABLE, so progress bars arrive here as widgets too.)
    """
    removed = int(nb.metadata.pop("widgets", None) is not None)
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        keep = [out for out in outputs if WIDGET_VIEW not in out.get("data", {})]
        removed += len(outputs) - len(keep)
        if cell.cell_type == "code":
            cell.outputs = keep
        if cell.cell_type == "code":
            # Keep the notebook's own cell metadata but drop per-run noise.
            cell.metadata.pop("execution", None)
    return removed


def absolute_paths(nb) -> list[str]:
    """Lines of output that show an absolute path of this machine (they must not be committed)."""
    pattern = re.compile(r"(?<![\w.~])(/work\b|/root\b|/home/|/tmp/|/Users/)")
    found = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                               if k.startswith("text/") and isinstance(v, str)]
            for text in texts:
                found += [f"code cell {i + 1}: {line.strip()[:120]}" for line in text.splitlines()
                          if pattern.search(line)]
    return found


def run(path: Path, profile: str, timeout: int) -> tuple[float, str | None]:
    """Execute one notebook in place. Returns (seconds, None) or (seconds, error message)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        return time.perf_counter() - t0, str(e).strip().splitlines()[-1]
    except Exception as e:  # a timeout, a dead kernel
        return time.perf_counter() - t0, f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - t0
    strip_widgets(nb)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, path)
    paths = absolute_paths(nb)
    if paths:
        return seconds, ("saved, but outputs show absolute paths of this machine:\n    "
                         + "\n    ".join(paths))
    return seconds, None


def rerun_start(paths: list[Path], measured: dict) -> Path | None:
    """Notebook 00, if it ran without an error among `paths`: it is to run once more, last.

    Its environment check prints the times recorded in timings.json, its own among them, so
    its saved output is stale unless it runs after every time of this run has been recorded.
    """
    return next((q for q in paths if q.name.startswith("00_") and q.name in measured), None)


def record(path: Path, profile: str, measured: dict, speed: dict) -> None:
    """Write the times measured so far (and the machine's speed) into the timings file."""
    # Read the file only now, so that times written meanwhile by another run are kept.
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings["note"] = ("wall time of a top-to-bottom run of each notebook "
                       "(tools/run_notebooks.py), per profile")
    for name, entry in measured.items():
        timings.setdefault("notebooks", {}).setdefault(name, {})[profile] = entry
    if path.resolve() == TIMINGS.resolve():      # forget notebooks that were renamed or removed
        timings["notebooks"] = {name: runs for name, runs in timings.get("notebooks", {}).items()
                                if (NOTEBOOKS / name).exists()}
    timings.setdefault("speed", {})[profile] = speed
    timings["speed_note"] = ("images/s of ResNet-20 training steps at batch 128 "
                             "(resnet_nb.environment.machine_speed) on the machine that "
                             "recorded the profile's times")
    path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")


# The header's time line in the course's fixed form: the student's time, then the computer's
# at the reference speed (group 2), which this script writes.
REFERENCE_SPEED = 1_000          # ResNet-20 training images/s (tools/budget.py normalises so too)
TIME_LINE = re.compile(r"(\*\*Time:\*\* about \d+ minutes for you; )(\d+ s|\d+\.\d minutes)"
                       r"( for the computer at the `cpu` profile \(1,000 ResNet-20 images/s\)\.)")
# The older header sentence: the recorded cpu time and the speed it ran at.
HEADER_TIME = re.compile(r"(The computer needs )(\d+ (?:seconds|minutes))( at the `cpu` profile \(.*?"
                         r"while it trained ResNet-20 at )([\d,]+)( images/s)", re.S)


def duration_words(seconds: float) -> str:
    """How an older header states a recorded time: seconds below 90 s, whole minutes above."""
    return f"{seconds:.0f} seconds" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def normalised_words(entry: dict) -> str:
    """The time line's computer time: recorded seconds x recorded images/s / 1,000, as "45 s"
    below two minutes, else minutes with one decimal ("4.1 minutes")."""
    seconds = entry["seconds"] * entry["images_per_second"] / REFERENCE_SPEED
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def _rewrite_time(text: str, entry: dict) -> str:
    if TIME_LINE.search(text):
        return TIME_LINE.sub(lambda m: m.group(1) + normalised_words(entry) + m.group(3),
                             text, count=1)
    return HEADER_TIME.sub(lambda m: m.group(1) + duration_words(entry["seconds"])
                           + m.group(3) + f"{entry['images_per_second']:,.0f}" + m.group(5),
                           text, count=1)


def update_header(path: Path, entry: dict) -> bool:
    """Write a notebook's recorded cpu time into its header's time line, so the header never
    states an older run's time. Returns whether it changed."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (TIME_LINE.search(cell.source)
                                             or HEADER_TIME.search(cell.source)):
            new = _rewrite_time(cell.source, entry)
            if new == cell.source:
                return False
            cell.source = new
            nbformat.write(nb, path)
            return True
    return False


def map_duration(seconds: float) -> str:
    """How the README's course map states a recorded time."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def update_readme(timings: dict, readme: Path = ROOT / "README.md") -> bool:
    """Write the recorded cpu times into the README's course map (last column of each
    notebook's row) and the range of training speeds they were recorded at."""
    text = old = readme.read_text()
    runs = {name: entry["cpu"] for name, entry in timings.get("notebooks", {}).items()
            if "cpu" in entry}
    for name, entry in runs.items():
        row = re.compile(r"^(\| \[" + re.escape(name[:-len(".ipynb")]) + r"\]\(notebooks/"
                         + re.escape(name) + r"\) \|.*\| )([^|]+)( \|)$", re.M)
        text = row.sub(lambda m: m.group(1) + map_duration(entry["seconds"]) + m.group(3), text)
    speeds = [e["images_per_second"] for e in runs.values() if "images_per_second" in e]
    if speeds:
        text = re.sub(r"(while it trained ResNet-20 at\s+)[\d,]+ to [\d,]+( images/s)",
                      lambda m: f"{m.group(1)}{min(speeds):,.0f} to {max(speeds):,.0f}{m.group(2)}",
                      text)
    if text != old:
        readme.write_text(text)
    return text != old


def measure_speed(description: str) -> dict:
    """This machine's training speed (environment.machine_speed), with what it was measured on."""
    import torch
    from resnet_nb.environment import machine_speed
    return {"images_per_second": round(machine_speed(), 1), "machine": description,
            "gpu": torch.cuda.is_available(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="notebooks to run (default: every notebooks/NN_*.ipynb)")
    p.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    p.add_argument("--timings", type=Path, default=TIMINGS,
                   help="JSON file the wall times are recorded in")
    p.add_argument("--note", help="a remark stored with each time (e.g. that the device was shared)")
    p.add_argument("--speed-only", action="store_true",
                   help="only measure and record this machine's training speed for the profile")
    args = p.parse_args(argv)

    data = os.environ.get("RESNET_NB_DATA")
    if not data or not Path(data).expanduser().exists():
        p.error("RESNET_NB_DATA must name a CIFAR-10 copy (a torchvision folder, an image "
                "folder or a .tar.gz of one): the committed outputs show the real data, e.g.\n"
                "  export RESNET_NB_DATA=$PWD/../shared/data/cifar10-jpeg.tar.gz")
    paths = [q.resolve() for q in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(q) for q in paths if not q.exists()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")

    # The kernels inherit this environment.
    os.environ["RESNET_NB_PROFILE"] = args.profile
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.pop("MPLBACKEND", None)     # the kernel's inline backend draws the figures

    description = machine()
    # The machine's training speed, recorded beside the times: 00's environment check scales
    # the times by it to predict them on a student's machine (environment.predicted_times).
    speed = measure_speed(description)
    print(f"training speed: ResNet-20 at {speed['images_per_second']:,.0f} images/s", flush=True)
    failed = 0
    measured = {}
    for path in ([] if args.speed_only else paths):
        print(f"{path.name} ({args.profile}) ...", flush=True)
        seconds, error = run(path, args.profile, args.timeout)
        print(f"  {seconds:7.1f} s  {'ok' if error is None else 'FAILED: ' + error}", flush=True)
        if error is not None:
            failed += 1
        if error is None or error.startswith("saved"):
            measured[path.name] = {
                "seconds": round(seconds, 1), "machine": description,
                "images_per_second": speed["images_per_second"],
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **({"note": args.note} if args.note else {})}
            record(args.timings, args.profile, measured, speed)   # kept if a later one hangs
            if args.profile == "cpu" and args.timings.resolve() == TIMINGS.resolve():
                update_header(path, measured[path.name])
    record(args.timings, args.profile, measured, speed)
    if args.profile == "cpu" and args.timings.resolve() == TIMINGS.resolve():
        update_readme(json.loads(TIMINGS.read_text()))
    start = None if args.speed_only else rerun_start(paths, measured)
    if start is not None:
        print(f"{start.name} ({args.profile}) once more, to show the times just recorded ...",
              flush=True)
        seconds, error = run(start, args.profile, args.timeout)
        print(f"  {seconds:7.1f} s  {'ok' if error is None else 'FAILED: ' + error}", flush=True)
        if error is not None:
            failed += 1
    if args.speed_only:
        print(f"speed recorded in {args.timings}")
        return 0
    total = sum(e["seconds"] for e in measured.values())
    print(f"{len(paths) - failed} of {len(paths)} notebook(s) ran; {total:.0f} s in all; "
          f"times in {args.timings.relative_to(ROOT) if args.timings.is_relative_to(ROOT) else args.timings}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
