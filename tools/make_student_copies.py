"""Make the students' copies of the notebooks: the worked solutions taken out.

    python -m tools.make_student_copies --out student/

The notebooks in notebooks/ are the instructor's: each code exercise holds a worked solution
between nbgrader's markers (`### BEGIN SOLUTION` / `### END SOLUTION`), followed by the
exercise's checker call, and each question asked in prose beside a code exercise has a
written answer between the same markers in a markdown cell. This script writes a copy of
every notebooks/NN_*.ipynb into the output folder, in which:

  - nbgrader's `ClearSolutions` preprocessor replaces every solution region with a stub: in
    code, a comment and `raise NotImplementedError(...)` under the line that says what to
    write (a docstring), so the checker call below it stops with that message until the
    student has written the answer; in markdown, a line asking for the student's answer;
  - the exercise cells lose their stored outputs, are unfolded (the `jupyter.source_hidden`
    and Colab `cellView: form` metadata and the `#@title` line are removed) and are tagged
    `raises-exception`, so that nbval (`python -m pytest`) runs a copy top to bottom without
    failing on the exercises left for the student;
  - the note above each exercise that says "the folded cell below is a worked solution" is
    replaced by one that says where the student's answer goes;
  - widget state (metadata.widgets) and widget views in outputs are removed;
  - every other cell, and its stored output, is kept as it is.

The other files of notebooks/ that the notebooks read (notebooks/timings.json, read by 00's
environment check) are copied beside them, so that the folder runs on its own. The output
folder gets a marker file, `.student-copies`, that holds the sha256 of every file written; a
folder that exists without it (and is not empty) is never written into. Rerunning the script
into its own folder replaces the copies only where they are as it wrote them: a copy that has
changed since (answers written into it, say) stops the run with the names of the changed
files, unless --force is given.

nbgrader comes with the `[teach]` extra (`pip install -e ".[teach]"`, also in `[dev]`).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
MARKER_FILE = ".student-copies"
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"       # nbgrader's delimiters, matched in a line
TITLE = "#@title Worked solution: try the exercise before you unfold this cell"
# What the instructor notebooks say just above each folded solution, and what a student copy
# says there instead (tests/notebooks/test_student_copies.py checks both).
SOLUTION_NOTE = "*A worked solution is folded below: try the exercise first.*"
STUDENT_NOTE = ("*Your answer goes in the cell below, at `YOUR CODE HERE`; running the cell "
                "checks it.*")
CODE_STUB = ("# YOUR CODE HERE: replace these two lines with your answer\n"
             "raise NotImplementedError(\"exercise not done yet: write your answer in place of "
             "this line, then run the cell again\")")
TEXT_STUB = "*Your answer (double-click this cell to write it here):*"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NBVAL_RAISES = "raises-exception"


class CopyError(Exception):
    """A user mistake (folder, notebooks, nbgrader): the message is one line saying what to do."""


def course_notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def is_solution_cell(cell: dict) -> bool:
    return BEGIN in _text(cell.get("source", ""))


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def solution_regions(cell: dict) -> list[list[str]]:
    """The lines inside each solution region of one cell (markers excluded), in order."""
    regions, current = [], None
    for line in _text(cell["source"]).split("\n"):
        if BEGIN in line:
            current = []
        elif END in line and current is not None:
            regions.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return regions


def _clear_solutions():
    try:
        from nbgrader.preprocessors import ClearSolutions
    except ImportError:
        raise CopyError("nbgrader is not installed: pip install -e \".[teach]\" (or "
                        "pip install nbgrader)") from None
    # enforce_metadata=False: the notebooks mark solutions with the delimiters only, not with
    # nbgrader's cell metadata (there is no grading database here, only the student copies).
    return ClearSolutions(enforce_metadata=False, code_stub={"python": CODE_STUB},
                          text_stub=TEXT_STUB)


def student_copy(nb, clear=None):
    """The student copy of one notebook (an nbformat NotebookNode), the original unchanged."""
    import nbformat

    clear = clear or _clear_solutions()
    nb = copy.deepcopy(nb)
    exercise = [c.cell_type == "code" and is_solution_cell(c) for c in nb.cells]
    try:
        nb, _ = clear.preprocess(nb, {})
    except RuntimeError as e:          # unbalanced markers: nbgrader says which
        raise CopyError(f"a solution region is not closed properly: {e}") from None
    nb.metadata.pop("widgets", None)
    for cell, is_exercise in zip(nb.cells, exercise):
        if cell.cell_type == "markdown" and SOLUTION_NOTE in cell.source:
            cell.source = cell.source.replace(SOLUTION_NOTE, STUDENT_NOTE)
        if cell.cell_type != "code":
            continue
        if is_exercise:
            cell.source = "\n".join(l for l in cell.source.split("\n") if l != TITLE)
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("cellView", None)
            jupyter = cell.metadata.get("jupyter", {})
            jupyter.pop("source_hidden", None)
            if not jupyter:
                cell.metadata.pop("jupyter", None)
            tags = cell.metadata.setdefault("tags", [])
            if NBVAL_RAISES not in tags:
                tags.append(NBVAL_RAISES)
        outputs = []
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_VIEW, None)
            if out.get("output_type") in ("display_data", "execute_result") and not out.data:
                continue                                  # it was only a widget view
            outputs.append(out)
        if "outputs" in cell:
            cell.outputs = outputs
    left = [i for i, c in enumerate(nb.cells) if BEGIN in c.source or END in c.source]
    if left:
        raise CopyError(f"solution markers left in cells {left}: check their spelling")
    nbformat.validate(nb)
    return nb


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_since_made(out: Path) -> list[str]:
    """Files of a student folder that differ from what this script wrote there last."""
    try:
        made = json.loads((out / MARKER_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        made = {}               # a marker from before the sums: compare nothing, as before
    return sorted(name for name, digest in made.items()
                  if (out / name).is_file() and _sha256(out / name) != digest)


def make_student_folder(out: Path, notebooks: Path = ROOT / "notebooks",
                        force: bool = False) -> list[Path]:
    """Write the student copies of every notebook in `notebooks` into `out`; return their paths.

    Copies changed since the last run into `out` are not overwritten unless `force`.
    """
    import nbformat

    out, notebooks = Path(out), Path(notebooks)
    paths = course_notebooks(notebooks) if notebooks.is_dir() else []
    if not paths:
        raise CopyError(f"no notebooks (NN_topic.ipynb) in {notebooks}: run this from the "
                        "course's folder, or name the folder with --notebooks")
    if out.resolve() == notebooks.resolve() or notebooks.resolve() in out.resolve().parents:
        raise CopyError(f"--out {out} is inside {notebooks}: choose a folder outside it, "
                        "e.g. --out student/")
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                             and not (out / MARKER_FILE).exists())):
        raise CopyError(f"{out} exists and is not a folder of student copies (no "
                        f"{MARKER_FILE} in it): choose another --out, or remove it")
    changed = changed_since_made(out) if out.is_dir() else []
    if changed and not force:
        raise CopyError(f"{', '.join(changed)} in {out} changed since they were made (answers "
                        "written in them?): copy them elsewhere, or rerun with --force to "
                        "replace them")
    clear = _clear_solutions()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_copy(nb, clear), target)
        written.append(target)
    written_extra = []
    for extra in sorted(notebooks.iterdir()):      # what the notebooks read beside them
        if extra.is_file() and extra.suffix != ".ipynb" and not extra.name.startswith("."):
            shutil.copy2(extra, out / extra.name)
            written_extra.append(out / extra.name)
    (out / MARKER_FILE).write_text(json.dumps({
        "made_by": "tools/make_student_copies.py: the student copies of the course's "
                   "notebooks; rerunning it replaces those unchanged since (sha256 below)",
        "sha256": {q.name: _sha256(q) for q in written + written_extra}}, indent=1) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Make the students' copies of the notebooks: the "
                                            "worked solutions replaced by stubs.")
    p.add_argument("--out", required=True, type=Path, help="the folder to write, e.g. student/")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                   help="the instructor notebooks (default: this course's notebooks/)")
    p.add_argument("--force", action="store_true",
                   help="replace copies that changed since they were made (their edits are lost)")
    args = p.parse_args(argv)
    try:
        written = make_student_folder(args.out, args.notebooks, force=args.force)
    except CopyError as e:
        print(f"make_student_copies: {e}", file=sys.stderr)
        return 2
    for path in written:
        nb = json.loads(path.read_text(encoding="utf-8"))
        n = sum(NBVAL_RAISES in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
        print(f"{path}: {n} exercise cell(s) left for the student")
    print(f"{len(written)} student copies in {args.out}; hand out the whole folder")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
