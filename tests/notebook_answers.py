"""The instructor notebooks' worked answers, read from the notebooks themselves.

The code exercises' solutions live in one place: the exercise cells of notebooks/NN_*.ipynb,
between nbgrader's `### BEGIN SOLUTION` / `### END SOLUTION` markers. The tests take the right
answers from here, so that what they check is what the notebooks (and the answer key) show.

An exercise cell is run the way the notebook runs it: first every import statement of the
notebook's earlier code cells (the only state an exercise cell uses: `nn`, `F`, `torch`, ...),
then the cell itself, which defines the answer and calls its checker.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
TITLE_PREFIX = "#@title"


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def exercise_cells(nb: dict) -> list[int]:
    """Indices of the code cells that hold a solution region."""
    return [i for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and BEGIN in source(c)]


def imports_before(nb: dict, index: int) -> str:
    """Every top-level import statement of the code cells before cell `index`, in order."""
    lines = []
    for cell in nb["cells"][:index]:
        if cell["cell_type"] != "code":
            continue
        text = source(cell)
        try:
            tree = ast.parse(text)
        except SyntaxError:          # IPython magics: not a plain Python cell
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                lines.append(ast.get_source_segment(text, node))
    return "\n".join(lines)


def run_exercise(nb: dict, index: int) -> tuple[dict, str]:
    """Run exercise cell `index` after the notebook's imports; return its namespace and stdout."""
    namespace: dict = {"__name__": "__main__"}
    exec(compile(imports_before(nb, index), "<notebook imports>", "exec"), namespace)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source(nb["cells"][index]), f"<exercise cell {index}>", "exec"), namespace)
    return namespace, out.getvalue()


def answer_code(cell: dict, name: str) -> str:
    """The worked answer `name` (a function or class) as the answer key shows it: its
    definition in the cell, without the solution markers."""
    text = "\n".join(line for line in source(cell).split("\n")
                     if BEGIN not in line and END not in line)
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return "\n".join(text.split("\n")[node.lineno - 1:node.end_lineno])
    raise KeyError(f"the cell does not define {name}")


_RUNS: dict = {}


def exercises() -> list[tuple[str, int]]:
    """(notebook name, cell index) of every exercise cell of every notebook, in order."""
    return [(path.name, index) for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
            for index in exercise_cells(read(path))]


def run(notebook: str, index: int) -> tuple[dict, str]:
    """run_exercise for one exercise cell, once per test session."""
    if (notebook, index) not in _RUNS:
        _RUNS[notebook, index] = run_exercise(read(NOTEBOOKS / notebook), index)
    return _RUNS[notebook, index]


def defined_names(cell: dict) -> list[str]:
    """The functions and classes that a cell defines at its top level."""
    return [node.name for node in ast.parse(source(cell)).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


def answer(name: str):
    """The instructor notebook's worked answer called `name` (a function or a class), taken
    from the namespace of its exercise cell after the cell ran (and its checker accepted it:
    a checker that rejects the answer raises here)."""
    for notebook, index in exercises():
        if name in defined_names(read(NOTEBOOKS / notebook)["cells"][index]):
            return run(notebook, index)[0][name]
    raise KeyError(f"no exercise cell in notebooks/ defines {name}")
