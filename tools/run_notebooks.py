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
Under the cpu profile, each notebook's header time line ("**Time:** about N minutes for you;
4.1 minutes for the computer at the `cpu` profile (1,000 ResNet-20 images/s).") is rewritten
with the time just recorded, normalised to 1,000 ResNet-20 images/s (seconds x the mean of
the images/s measured just before and just after the run / 1,000: a shared machine's load
changes during a long run). `--headers` rewrites every header from timings.json without
running anything (`--headers --check` only compares;
tests/notebooks/test_notebook_claims.py checks the same).
Exit status: 0 when every notebook ran, 1 otherwise.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

from resnet_nb.environment import REFERENCE_SPEED, normalised_seconds

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

    from tools import site_widgets

    nb = nbformat.read(path, as_version=4)
    widgets = site_widgets.uses_widgets(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            record_timing=False, store_widget_state=widgets,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        return time.perf_counter() - t0, str(e).strip().splitlines()[-1]
    except Exception as e:  # a timeout, a dead kernel
        return time.perf_counter() - t0, f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - t0
    keep_views = widgets and path.parent.resolve() == NOTEBOOKS.resolve()
    executed = copy.deepcopy(nb) if keep_views else None    # with its widget state
    strip_widgets(nb)
    if keep_views:
        # The website shows these views with the stored outputs (tools/site_widgets.py).
        site_widgets.store_views(executed, nb, site_widgets.stored_views_path(path.name))
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


# The header's time line (the same in every notebook, cell 1 after the badge):
#   **Time:** about 40 minutes for you; 4.1 minutes for the computer at the `cpu` profile
#   (1,000 ResNet-20 images/s).
# The second number is the notebook's recorded cpu-profile time, normalised to a machine that
# trains ResNet-20 at 1,000 images/s (environment.normalised_seconds).
HEADER_TIME = re.compile(r"^(\*\*Time:\*\* about \d+ minutes for you; )(\d+ s|\d+\.\d minutes)"
                         r"( for the computer at the `cpu` profile \("
                         + re.escape(f"{REFERENCE_SPEED:,}") + r" ResNet-20 images/s\)\.)$", re.M)
HEADER_TITLE = re.compile(r"^# (\d\d) · \S.*$")


def computer_time(seconds: float, images_per_second: float) -> str:
    """How a header states a recorded time: normalised, "45 s" below two minutes, else
    minutes with one decimal ("4.1 minutes")."""
    normalised = normalised_seconds(seconds, images_per_second)
    return f"{normalised:.0f} s" if round(normalised) < 120 else f"{normalised / 60:.1f} minutes"


def header_format_problems(source: str, number: str | None = None) -> list[str]:
    """What is wrong with the form of a header cell (its markdown source), as sentences: a
    `# NN · Title` line (NN = `number`, if given), a blank line, then at most three lines,
    the last of them the time line."""
    lines = source.strip("\n").split("\n")
    title = HEADER_TITLE.match(lines[0])
    problems = []
    if not title or number not in (None, title.group(1)):
        problems.append(f"the header's first line is not `# {number or 'NN'} · Title`")
    if len(lines) < 3 or lines[1] != "" or "" in lines[2:] or len(lines) > 5:
        problems.append("the header is not a title, a blank line and at most three lines "
                        "(what you will see; the time line)")
    if re.search(r"\*\*(Goal|After this notebook)", source):
        problems.append("the header holds a 'Goal:' or 'After this notebook' block")
    if not HEADER_TIME.match(lines[-1]):
        problems.append("the header's last line is not the time line (**Time:** about N "
                        "minutes for you; ... for the computer at the `cpu` profile "
                        f"({REFERENCE_SPEED:,} ResNet-20 images/s).)")
    return problems


def header_problems(source: str, name: str, entry: dict | None) -> list[str]:
    """header_format_problems, and whether the computer's time is the one recorded in
    `entry` (notebooks/timings.json's cpu entry of notebook `name`)."""
    problems = [f"{name}: {p}" for p in header_format_problems(source, name[:2])]
    m = HEADER_TIME.search(source)
    if entry is None:
        problems.append(f"{name}: no cpu time recorded in notebooks/timings.json")
    elif m and m.group(2) != computer_time(entry["seconds"], entry["images_per_second"]):
        problems.append(f"{name}: the header says {m.group(2)} for the computer, timings.json "
                        f"{computer_time(entry['seconds'], entry['images_per_second'])}: run "
                        "python -m tools.run_notebooks --headers")
    return problems


def update_header(path: Path, entry: dict) -> bool:
    """Write a notebook's recorded cpu time (normalised) into its header's time line, so the
    header never states an older run's time. Returns whether it changed."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    header = nb.cells[1] if len(nb.cells) > 1 else None      # cell 0 is the Colab badge
    if header is None or header.cell_type != "markdown" or not HEADER_TIME.search(header.source):
        return False
    new = HEADER_TIME.sub(lambda m: m.group(1) + computer_time(entry["seconds"],
                                                               entry["images_per_second"])
                          + m.group(3), header.source, count=1)
    if new == header.source:
        return False
    header.source = new
    nbformat.write(nb, path)
    return True


def update_headers(timings: dict, check: bool = False) -> list[str]:
    """Every notebook's header time line from `timings` (written, or with `check` only
    compared); returns the problems left (check) or the notebooks rewritten."""
    import nbformat
    out = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        entry = timings.get("notebooks", {}).get(path.name, {}).get("cpu")
        if not check and entry is not None and update_header(path, entry):
            out.append(f"{path.name}: header time rewritten")
        if check:
            cells = nbformat.read(path, as_version=4).cells
            out += header_problems(cells[1].source if len(cells) > 1 else "", path.name, entry)
    return out


def measure_speed(description: str) -> dict:
    """This machine's training speed (environment.machine_speed), with what it was measured on."""
    import torch
    from resnet_nb.environment import machine_speed
    return {"images_per_second": round(machine_speed(), 1), "machine": description,
            "gpu": torch.cuda.is_available(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def headers_main(check: bool) -> int:
    """--headers: every header's time line from notebooks/timings.json (--check: compare)."""
    said = update_headers(json.loads(TIMINGS.read_text()), check=check)
    print("\n".join(said) or ("every header agrees with notebooks/timings.json" if check
                              else "every header was already up to date"))
    return 1 if check and said else 0


def parser() -> argparse.ArgumentParser:
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
    p.add_argument("--headers", action="store_true",
                   help="run nothing: write each notebook's header time line from timings.json")
    p.add_argument("--check", action="store_true",
                   help="with --headers: change nothing; exit 1 if a header is wrong")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.headers:
        return headers_main(args.check)

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
        before = speed["images_per_second"]
        seconds, error = run(path, args.profile, args.timeout)
        print(f"  {seconds:7.1f} s  {'ok' if error is None else 'FAILED: ' + error}", flush=True)
        # The speed again after the run: a shared machine's load changes during a long run, and
        # the time is normalised by the mean of the speeds on either side of it.
        speed = measure_speed(description)
        print(f"training speed: ResNet-20 at {speed['images_per_second']:,.0f} images/s",
              flush=True)
        if error is not None:
            failed += 1
        if error is None or error.startswith("saved"):
            measured[path.name] = {
                "seconds": round(seconds, 1), "machine": description,
                "images_per_second": round((before + speed["images_per_second"]) / 2, 1),
                "images_per_second_before_and_after": [before, speed["images_per_second"]],
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **({"note": args.note} if args.note else {})}
            record(args.timings, args.profile, measured, speed)   # kept if a later one hangs
            if args.profile == "cpu" and args.timings.resolve() == TIMINGS.resolve():
                update_header(path, measured[path.name])
    record(args.timings, args.profile, measured, speed)
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
