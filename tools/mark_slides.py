"""Mark every notebook's cells for a slide show (RISE in JupyterLab, or `nbconvert --to slides`).

    python -m tools.mark_slides            # write cell.metadata.slideshow in notebooks/
    python -m tools.mark_slides --check    # change nothing; exit 1 if a notebook differs

The script sets one key per cell, `metadata.slideshow = {"slide_type": ...}`, and touches
nothing else (sources, outputs, other metadata and the file's formatting stay as they are).
It derives the slide types from the notebook's structure alone, so it can be run again after
any edit and gives the same answer for the same notebook (tests/tools/test_slides.py checks that the
committed notebooks agree with it). The rules, in order:

1. The "Open in Colab" badge and the Colab install cell are `skip`: they mean nothing on a
   projector.
2. A markdown cell that opens with a `#` or `##` heading starts a new `slide` (the title, each
   section); one that opens with `###` starts a `subslide` (a slide below its section's).
3. Everything else joins the slide above it (`-`), as long as the slide still fits a 1280x720
   screen. The height of each cell is estimated from its text and outputs: about 100
   characters per line of prose, a line of code, a table row, a heading, and each figure at
   the size the deck shows it (scaled to the slide's width, at most 3/4 of its height). A cell
   that would push the slide past SLIDE_BUDGET_PX starts a `subslide` of its own; when that
   cell is code, the markdown cell right above it (its explanation) moves down with it, if
   the two fit on one slide, so that a figure or a printed table stays with its prose.
4. A markdown cell that is only a `<details>` block (a hidden answer) stays on its slide to be
   opened there, but it is counted open: if it alone would not fit on a slide it goes to the
   speaker `notes` instead (press S in the deck; RISE shows notes in its speaker view).
5. A code cell right after a markdown cell that says "Predict first" is a `fragment`: the
   question shows first, the code and its answer on the next key press.
6. A single cell taller than a slide (a few long texts) cannot be split without changing the
   notebook: it gets a slide of its own, and the deck lets that slide scroll.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_repo_url import course_notebooks, is_badge_cell, is_install_cell  # noqa: E402

# The deck's canvas (tools/make_slides.py builds it at this size) and the part of its height
# the estimate may fill: reveal.js centres a slide and keeps a margin, and the estimate is rough.
SLIDE_WIDTH_PX, SLIDE_HEIGHT_PX = 1280, 720
SLIDE_BUDGET_PX = 620
# What one rendered line takes, measured in the built decks (nbconvert's reveal CSS: 20 px
# prose, 19 px code, both at their line heights) and the width a cell's content gets.
PROSE_LINE_PX, CODE_LINE_PX, OUTPUT_LINE_PX = 25, 24, 24
PROSE_CHARS_PER_LINE, CODE_CHARS_PER_LINE = 100, 90
CONTENT_WIDTH_PX = 1060
CELL_PADDING_PX = 30
FIGURE_MAX_PX = int(SLIDE_HEIGHT_PX * 0.75)      # the deck's CSS caps a figure at this height
HEADING_PX = {1: 75, 2: 60, 3: 50, 4: 40}
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _heading_level(cell) -> int:
    """1 for '# ...', 2 for '## ...', and so on, of a markdown cell's first line; 0 otherwise."""
    if cell["cell_type"] != "markdown":
        return 0
    m = re.match(r"(#{1,6})\s", _text(cell["source"]).lstrip())
    return len(m.group(1)) if m else 0


def _is_details(cell) -> bool:
    return cell["cell_type"] == "markdown" and \
        _text(cell["source"]).lstrip().lower().startswith("<details")


def _wrapped(line: str, chars: int) -> int:
    return max(1, math.ceil(len(line) / chars))


def markdown_height(source: str) -> int:
    """Estimated height in px of a markdown cell on the slide (every <details> open)."""
    px, in_fence = CELL_PADDING_PX, False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            px += 10
        elif in_fence:
            px += CODE_LINE_PX * _wrapped(line, CODE_CHARS_PER_LINE)
        elif not stripped:
            px += PROSE_LINE_PX // 2                   # the gap between paragraphs
        elif re.match(r"#{1,6}\s", stripped):
            px += HEADING_PX.get(len(stripped) - len(stripped.lstrip("#")), 40)
        elif re.fullmatch(r"\|?[\s:|-]+\|?", stripped):
            continue                                   # a table's separator row
        elif stripped.startswith("|"):
            cells = [c for c in stripped.strip("|").split("|")]
            widest = max(len(c) for c in cells) if cells else 0
            # A table row wraps inside its widest column.
            lines = max(1, math.ceil(widest / max(12, PROSE_CHARS_PER_LINE // len(cells))))
            px += int(PROSE_LINE_PX * 1.3 * lines)
        else:
            # Markup that does not show: links' addresses, HTML tags, emphasis.
            shown = re.sub(r"\]\([^)]*\)", "]", stripped)
            shown = re.sub(r"<[^>]+>", "", shown)
            shown = re.sub(r"[*`]", "", shown)
            px += PROSE_LINE_PX * _wrapped(shown, PROSE_CHARS_PER_LINE)
    return px


def _png_size(data: str) -> tuple[int, int]:
    head = base64.b64decode(_text(data).strip()[:64])
    return struct.unpack(">II", head[16:24])


def code_height(cell) -> int:
    """Estimated height in px of a code cell: its source and its stored outputs."""
    px = CELL_PADDING_PX + CODE_LINE_PX * sum(
        _wrapped(line, CODE_CHARS_PER_LINE) for line in _text(cell["source"]).splitlines() or [""])
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "image/png" in data:
            width, height = _png_size(data["image/png"])
            scale = min(1.0, CONTENT_WIDTH_PX / width)
            px += min(FIGURE_MAX_PX, int(height * scale)) + 10
            continue
        text = _text(out.get("text")) or _text(data.get("text/plain")) or \
            "\n".join(out.get("traceback", []))
        if text:
            px += 10 + OUTPUT_LINE_PX * sum(_wrapped(line, CODE_CHARS_PER_LINE)
                                            for line in text.rstrip("\n").splitlines())
    return px


def cell_height(cell) -> int:
    if cell["cell_type"] == "markdown":
        return markdown_height(_text(cell["source"]))
    if cell["cell_type"] == "code":
        return code_height(cell)
    return PROSE_LINE_PX


def slide_types(nb: dict) -> list[str]:
    """The slide type of each cell of `nb`, by the rules of this module's docstring."""
    cells = nb["cells"]
    types = ["-"] * len(cells)
    heights = [cell_height(c) for c in cells]
    used = 0            # px filled on the current (sub)slide
    first = None        # index of the current (sub)slide's first cell
    previous = None     # index of the last cell shown before this one
    for i, cell in enumerate(cells):
        if is_badge_cell(cell) or is_install_cell(cell):
            types[i] = "skip"
            continue
        level = _heading_level(cell)
        if first is None or level in (1, 2, 3):
            types[i] = "slide" if first is None or level < 3 else "subslide"
            used, first, previous = heights[i], i, i
            continue
        if _is_details(cell) and heights[i] > SLIDE_BUDGET_PX:
            types[i] = "notes"
            continue
        if used + heights[i] > SLIDE_BUDGET_PX:
            prose = previous
            if (cell["cell_type"] == "code" and prose is not None and prose != first
                    and cells[prose]["cell_type"] == "markdown" and types[prose] == "-"
                    and heights[prose] + heights[i] <= SLIDE_BUDGET_PX):
                types[prose] = "subslide"              # the explanation moves with its code
                used, first = heights[prose] + heights[i], prose
            else:
                types[i] = "subslide"
                used, first = heights[i], i
            previous = i
            continue
        if (cell["cell_type"] == "code" and previous == i - 1
                and cells[previous]["cell_type"] == "markdown"
                and "predict first" in _text(cells[previous]["source"]).lower()):
            types[i] = "fragment"
        used += heights[i]
        previous = i
    return types


def mark(nb: dict) -> bool:
    """Set every cell's metadata.slideshow; True when something changed."""
    changed = False
    for cell, slide_type in zip(nb["cells"], slide_types(nb)):
        wanted = {"slide_type": slide_type}
        if cell.setdefault("metadata", {}).get("slideshow") != wanted:
            cell["metadata"]["slideshow"] = wanted
            changed = True
    return changed


def dumps(nb: dict) -> str:
    """The notebook as nbformat writes it (the committed files' exact format)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def expected_slide_count(nb: dict) -> int:
    """How many slides a deck of `nb` has: nbconvert and RISE start a slide at the first cell
    shown, whatever its type, and at every later `slide` or `subslide` cell."""
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-")
             for c in nb["cells"]]
    shown = [i for i, t in enumerate(types) if t not in ("skip", "notes")]
    if not shown:
        return 0
    return 1 + sum(t in ("slide", "subslide") for t in types[shown[0] + 1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to mark (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook's slide types differ")
    args = parser.parse_args(argv)
    paths = args.notebooks or course_notebooks(ROOT)
    differ = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        mark(nb)
        new = dumps(nb)
        if new != text:
            differ.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
        types = slide_types(nb)
        print(f"{path.name}: {expected_slide_count(nb)} slides "
              f"({types.count('slide')} slide, {types.count('subslide')} subslide, "
              f"{types.count('fragment')} fragment, {types.count('notes')} notes, "
              f"{types.count('skip')} skip)" + (" - differs" if path in differ else ""))
    if args.check and differ:
        print("run: python -m tools.mark_slides", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
