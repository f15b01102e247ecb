"""The course's size budgets, measured: words, cell sizes and compute per notebook.

    python -m tools.budget            # the table; exit 1 when a budget is broken
    python -m tools.budget --markdown # the same table as Markdown (the README's)

Budgets (all eight notebooks, notebooks/NN_*.ipynb):
- words of markdown: at most 14,000 in all, at most 2,500 in any one notebook, at most 300
  in any one markdown cell (a word is a run of letters, digits and underscores, `\\w+`,
  counted in the cell's source as written, folded cells included);
- code: no cell over 20 lines, not counting blank lines and comment lines;
- compute: each notebook's top-to-bottom run under the `cpu` profile at most 300 s, the
  course at most 900 s, normalised to the reference speed of 1,000 ResNet-20 training
  images/s: seconds x measured images/s / 1,000, both recorded in notebooks/timings.json by
  tools/run_notebooks.py.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from resnet_nb.environment import REFERENCE_SPEED, normalised_seconds

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TIMINGS = NOTEBOOKS / "timings.json"

MAX_WORDS_TOTAL = 14_000
MAX_WORDS_NOTEBOOK = 2_500
MAX_WORDS_CELL = 300
MAX_CODE_LINES = 20
MAX_SECONDS_NOTEBOOK = 300
MAX_SECONDS_TOTAL = 900
WORD = re.compile(r"\w+")


def words(text: str) -> int:
    return len(WORD.findall(text))


def code_lines(text: str) -> int:
    """Lines that are neither blank nor comments."""
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.strip().startswith("#"))


@dataclass
class NotebookSize:
    name: str
    words: int
    largest_cell: int            # words in its largest markdown cell
    cells_over: list             # (index, words) of markdown cells over MAX_WORDS_CELL
    longest_code: int            # lines in its longest code cell
    code_over: list              # (index, lines) of code cells over MAX_CODE_LINES
    seconds: float | None        # recorded cpu-profile wall time
    speed: float | None          # images/s recorded with it
    normalised: float | None     # seconds x speed / REFERENCE_SPEED


def measure(path: Path, timings: dict) -> NotebookSize:
    cells = json.loads(path.read_text())["cells"]
    md = [(i, words("".join(c["source"]))) for i, c in enumerate(cells)
          if c["cell_type"] == "markdown"]
    code = [(i, code_lines("".join(c["source"]))) for i, c in enumerate(cells)
            if c["cell_type"] == "code"]
    entry = timings.get("notebooks", {}).get(path.name, {}).get("cpu")
    seconds = entry["seconds"] if entry else None
    speed = entry.get("images_per_second") if entry else None
    return NotebookSize(
        path.name, sum(n for _, n in md), max((n for _, n in md), default=0),
        [(i, n) for i, n in md if n > MAX_WORDS_CELL], max((n for _, n in code), default=0),
        [(i, n) for i, n in code if n > MAX_CODE_LINES], seconds, speed,
        None if seconds is None or speed is None else normalised_seconds(seconds, speed))


def measure_course(notebooks: Path = NOTEBOOKS) -> list[NotebookSize]:
    timings = json.loads((notebooks / "timings.json").read_text()) \
        if (notebooks / "timings.json").exists() else {}
    return [measure(p, timings) for p in sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))]


def problems(sizes: list[NotebookSize]) -> list[str]:
    """Every broken budget, one line each; [] when the course is within all of them."""
    out = []
    total = sum(s.words for s in sizes)
    if total > MAX_WORDS_TOTAL:
        out.append(f"{total:,} words of markdown in all (at most {MAX_WORDS_TOTAL:,})")
    for s in sizes:
        if s.words > MAX_WORDS_NOTEBOOK:
            out.append(f"{s.name}: {s.words:,} words (at most {MAX_WORDS_NOTEBOOK:,})")
        out += [f"{s.name}: markdown cell {i} has {n} words (at most {MAX_WORDS_CELL})"
                for i, n in s.cells_over]
        out += [f"{s.name}: code cell {i} has {n} lines (at most {MAX_CODE_LINES})"
                for i, n in s.code_over]
        if s.normalised is None:
            out.append(f"{s.name}: no cpu time in notebooks/timings.json "
                       "(run tools/run_notebooks.py)")
        elif s.normalised > MAX_SECONDS_NOTEBOOK:
            out.append(f"{s.name}: {s.normalised:.0f} s of cpu-profile compute at "
                       f"{REFERENCE_SPEED:,} images/s (at most {MAX_SECONDS_NOTEBOOK})")
    compute = sum(s.normalised or 0 for s in sizes)
    if compute > MAX_SECONDS_TOTAL:
        out.append(f"{compute:.0f} s of cpu-profile compute in all at {REFERENCE_SPEED:,} "
                   f"images/s (at most {MAX_SECONDS_TOTAL})")
    return out


def table(sizes: list[NotebookSize]) -> str:
    """The figures as a Markdown table, with the budgets in its header and a total row."""
    def sec(x):
        return "-" if x is None else f"{x:.0f}"
    rows = [f"| notebook | words (≤ {MAX_WORDS_NOTEBOOK:,}) | largest markdown cell (≤ "
            f"{MAX_WORDS_CELL}) | longest code cell, lines (≤ {MAX_CODE_LINES}) | cpu "
            f"profile, s at {REFERENCE_SPEED:,} images/s (≤ {MAX_SECONDS_NOTEBOOK}) |",
            "|---|---|---|---|---|"]
    for s in sizes:
        rows.append(f"| {s.name.removesuffix('.ipynb')} | {s.words:,} | {s.largest_cell} | "
                    f"{s.longest_code} | {sec(s.normalised)} |")
    rows.append(f"| all (≤ {MAX_WORDS_TOTAL:,} words, ≤ {MAX_SECONDS_TOTAL} s) | "
                f"{sum(s.words for s in sizes):,} | {max(s.largest_cell for s in sizes)} | "
                f"{max(s.longest_code for s in sizes)} | "
                f"{sec(sum(s.normalised or 0 for s in sizes))} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS)
    a = p.parse_args(argv)
    sizes = measure_course(a.notebooks)
    print(table(sizes))
    if a.markdown:
        return 0
    broken = problems(sizes)
    print("\n".join(["", "over budget:"] + [f"  - {b}" for b in broken]) if broken
          else "\nevery budget is met")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
