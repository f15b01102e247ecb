"""The 90-minute lesson's slide deck: notebook cells chosen by id, each slide with speaker notes.

    python -m tools.make_slides                      # every deck, the lesson's included
    python -m tools.lesson_deck --check              # check the slide list; build nothing

teaching/lesson_slides.md lists the slides. Each `## ` heading opens a segment of the lesson,
each `### ` heading a slide; under a slide's heading, one line names the cells it shows,

    Cells: 01/c02, 01/c13 (output), 01/c12 (fragment)

(notebook number / cell id; `output` shows a code cell's stored output without its source,
`fragment` shows the cell at the next key press), and the text after that line, up to the next
heading, is the slide's speaker notes. A cell that holds a worked solution is refused. The deck is a notebook assembled in memory from copies
of those cells with their stored outputs (nothing is executed) and one markdown cell of notes
per slide (slide type `notes`: nbconvert puts it in the slide's `<aside class="notes">`, which
reveal.js shows in its speaker view, key S). The notes never enter the course's notebooks, so
they count in no word budget and never reach the students' copies.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLIDE_LIST = ROOT / "teaching" / "lesson_slides.md"
DECK_NAME = "lesson_90min"
CELL = re.compile(r"^(\d\d)/([\w-]+)(?: \((output|fragment|output, fragment)\))?$")


@dataclass(frozen=True)
class Slide:
    number: int
    segment: str
    title: str
    cells: tuple[tuple[str, str, str], ...]     # (notebook number, cell id, options)
    notes: str


class SlideListError(ValueError):
    """A mistake in the slide list, said in one line with the slide it is in."""


def _slide(number: int, segment: str, title: str, body: list[str]) -> Slide:
    where = f"slide {number} ({title!r})"
    lines = [line for line in body if line.strip()]
    if not lines or not lines[0].startswith("Cells: "):
        raise SlideListError(f"{where}: its first line must be 'Cells: NN/cell-id, ...'")
    cells = []
    for item in re.split(r",\s*(?=\d\d/)", lines[0][len("Cells: "):]):
        m = CELL.match(item.strip())
        if not m:
            raise SlideListError(f"{where}: {item!r} is not NN/cell-id, optionally followed "
                                 "by (output), (fragment) or (output, fragment)")
        cells.append((m[1], m[2], m[3] or ""))
    start = body.index(lines[0]) + 1
    notes = "\n".join(body[start:]).strip()
    if not notes:
        raise SlideListError(f"{where}: no speaker notes under its 'Cells:' line")
    return Slide(number, segment, title, tuple(cells), notes)


def read_slides(path: Path = SLIDE_LIST) -> list[Slide]:
    """The slides of the list at `path`, in order, numbered from 1."""
    slides, segment, title, body = [], "", None, []
    for line in path.read_text(encoding="utf-8").splitlines() + ["## (end)"]:
        if line.startswith("## ") or line.startswith("### "):
            if title is not None:
                slides.append(_slide(len(slides) + 1, segment, title, body))
            title, body = (line[4:].strip(), []) if line.startswith("### ") else (None, [])
            if line.startswith("## "):
                segment = line[3:].strip()
        elif title is not None:
            body.append(line)
    if not slides:
        raise SlideListError(f"{path}: no slides (a slide is a '### ' heading)")
    return slides


def course_notebooks(root: Path = ROOT) -> dict[str, dict]:
    """{'01': notebook} for every notebooks/NN_*.ipynb."""
    return {p.name[:2]: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def _shown_cell(notebooks: dict[str, dict], slide: Slide, nb: str, cid: str, options: str):
    where = f"slide {slide.number} ({slide.title!r})"
    if nb not in notebooks:
        raise SlideListError(f"{where}: there is no notebook {nb}_*.ipynb")
    found = [c for c in notebooks[nb]["cells"] if c.get("id") == cid]
    if not found:
        raise SlideListError(f"{where}: notebook {nb} has no cell with id {cid!r}")
    source = "".join(found[0]["source"])
    if "BEGIN SOLUTION" in source or source.startswith("#@title Worked solution"):
        raise SlideListError(f"{where}: {nb}/{cid} holds a worked solution, which a deck "
                             "shown to the class must not")
    cell = copy.deepcopy(found[0])
    cell["id"] = f"n{nb}-{cid}"                   # ids repeat across notebooks
    if "output" in options:
        if cell["cell_type"] != "code" or not cell.get("outputs"):
            raise SlideListError(f"{where}: {nb}/{cid} has no stored output to show alone")
        cell["metadata"].setdefault("transient", {})["remove_source"] = True
    return cell


def lesson_notebook(slides: list[Slide], notebooks: dict[str, dict] | None = None) -> dict:
    """The deck as a notebook: each slide's cells (copies, stored outputs), its notes after
    its first cell, slide types set for nbconvert."""
    notebooks = course_notebooks() if notebooks is None else notebooks
    cells = []
    for slide in slides:
        for k, (nb, cid, options) in enumerate(slide.cells):
            cell = _shown_cell(notebooks, slide, nb, cid, options)
            kind = "slide" if k == 0 else "fragment" if "fragment" in options else "-"
            cell["metadata"]["slideshow"] = {"slide_type": kind}
            cells.append(cell)
            if k == 0:
                cells.append({"cell_type": "markdown", "id": f"notes-{slide.number}",
                              "metadata": {"slideshow": {"slide_type": "notes"}},
                              "source": slide.notes})
    first = next(iter(notebooks.values()))
    return {"cells": cells, "metadata": {"kernelspec": first["metadata"].get("kernelspec", {}),
                                         "language_info": first["metadata"].get("language_info",
                                                                                {}),
                                         "title": "Residual networks: a 90-minute lesson"},
            "nbformat": 4, "nbformat_minor": 5}


def segments(slides: list[Slide]) -> list[tuple[str, int, int]]:
    """(segment, first slide, last slide) for each segment, in order."""
    out = []
    for s in slides:
        if out and out[-1][0] == s.segment:
            out[-1] = (s.segment, out[-1][1], s.number)
        else:
            out.append((s.segment, s.number, s.number))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="read the slide list and find every cell; build nothing")
    parser.add_argument("--list", type=Path, default=SLIDE_LIST, help="the slide list")
    args = parser.parse_args(argv)
    try:
        slides = read_slides(args.list)
        lesson_notebook(slides)
    except SlideListError as error:
        print(f"{args.list.name}: {error}", file=sys.stderr)
        return 1
    for name, first, last in segments(slides):
        print(f"slides {first:>2}-{last:<2} {name}")
    print(f"{len(slides)} slides, each with speaker notes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
