"""How much does a class of 30 ask of a JupyterHub? A simulated class on 127.0.0.1.

    python benchmarks/class_hub.py [--students 30] [--notebooks-at-once 8] [--json out.json]

Runs tools/class_hub.py's class (a real JupyterHub and configurable-http-proxy; each student
logs in with a token of their own, spawns a server, pulls the class release with nbgitpuller,
runs the smoke profile of notebook 03 through their own kernel and submits an nbgrader
assignment that the teacher collects and grades) and prints what deploy/README.md quotes:

  - the hub's start, and each student's spawn (all started at once: median and worst);
  - each student's notebook time, and how it compares with one student alone on the machine
    (the first wave's median over the single-student run: the cost of sharing the CPUs);
  - memory per student (peak resident set of server and kernel; proportional set size, which
    counts shared libraries once), and the memory that many students running at once need.

All servers start at once; at most --notebooks-at-once notebooks run at a time (each kernel
is shut down after its notebook), so that a class larger than this machine's memory can be
measured. Needs configurable-http-proxy (`bash .ci/hub_proxy.sh`), the [hub] extra and
RESNET_NB_DATA. Run it alone: it loads every core (wrap it in the heavy-work lock).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import class_hub as C  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--notebooks-at-once", type=int, default=8)
    p.add_argument("--notebook", default="03_building_blocks.ipynb")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    args = p.parse_args(argv)
    results = {}
    tmp = C.scratch_folder("class-hub-bench-")
    try:
        shared = C.prepare_data(tmp / "shared")[:2]
        for name, n, at_once in (("alone", 1, 1),
                                 ("class", args.students, args.notebooks_at_once)):
            t0 = time.perf_counter()
            settings = C.ClassSettings(students=n, notebook=args.notebook,
                                       notebooks_at_once=at_once, total_timeout_s=3000,
                                       notebook_timeout_s=1800)
            results[name] = C.run_class(settings, tmp / name, shared)
            print(f"{name}: {n} student(s) in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    alone, cls = results["alone"], results["class"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(alone, cls))
    return 0 if not cls["errors"] and len(cls["collected"]) == args.students else 1


def report(alone: dict, cls: dict) -> str:
    n, waves = cls["students"], cls["notebooks_at_once"]
    pss = cls["pss_mb_after_notebook"]
    lines = [
        f"machine: {cls['cpus']} CPUs; servers run as: {cls['run_as']}; "
        f"torch threads per kernel: {cls['torch_threads_per_kernel']}",
        f"hub start: {cls['hub_start_s']} s",
        f"spawn, {n} at once: median {cls['spawn_s']['median']} s, worst {cls['spawn_s']['max']} s"
        f" (one alone: {alone['spawn_s']['median']} s)",
        f"pull with nbgitpuller: median {cls['pull_s']['median']} s, "
        f"worst {cls['pull_s']['max']} s",
        f"notebook {cls['notebook']} ({waves} at a time): median {cls['notebook_s']['median']} s,"
        f" worst {cls['notebook_s']['max']} s; alone {alone['notebook_s']['median']} s "
        f"(x{cls['notebook_s']['median'] / alone['notebook_s']['median']:.1f})",
        f"memory per student: peak resident {cls['peak_rss_mb']['median']:.0f} MB (worst "
        f"{cls['peak_rss_mb']['max']:.0f}), proportional {pss['median']:.0f} MB",
        f"memory for {n} running at once: {n * pss['median'] / 1024:.1f} GB (proportional), "
        f"{n * cls['peak_rss_mb']['max'] / 1024:.1f} GB (worst resident)",
        f"collected and graded: {len(cls['collected'])} of {n} "
        f"(scores {sorted(set(cls['scores'].values()))}); processes left: "
        f"{cls['processes_left']}",
        f"wall: {cls['wall_s']} s for the class, {cls['class_s']} s from the first spawn to the "
        "last submission",
    ]
    if cls["errors"]:
        lines.append(f"errors: {json.dumps(cls['errors'])[:2000]}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
