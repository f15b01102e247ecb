"""The committed notebooks are clean: what a student opens is what a top-to-bottom run gave.

For every notebooks/NN_topic.ipynb:
  - code cells were executed once each, in order (execution counts 1, 2, 3, ...);
  - no cell output is an error, and no output shows an absolute path of the machine that
    ran it (/work, /root, /home/, /tmp/, /Users/);
  - the kernelspec is `python3`; no widget state is saved in the metadata and no widget
    view is left in an output (both render as "model not found");
  - the file is under 2 MB;
  - the first cell after the "Open in Colab" badge is the header in the course's fixed form:
    `# NN · Title`, a blank line, at most three lines of what you will see, ending with the
    time line (tools/run_notebooks.py's header_format_problems; tests/notebooks/test_notebook_claims.py
    checks its time against timings.json, tests/tools/test_repo_links.py the badge and install cell);
and the course's notebooks are numbered 00, 01, 02, ... with no gap or duplicate.

Each check is a function returning a list of problems, so the tests at the end can show
that it fires on a broken notebook.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MAX_BYTES = 2_000_000
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])(/work\b|/root\b|/home/|/tmp/|/Users/)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb"))


def _output_texts(output: dict) -> list[str]:
    """The text of one output (streams, text/plain, html, tracebacks); images are skipped."""
    texts = []
    if "text" in output:
        texts.append("".join(output["text"]) if isinstance(output["text"], list)
                     else output["text"])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json"):
            texts.append("".join(value) if isinstance(value, list) else json.dumps(value)
                         if not isinstance(value, str) else value)
    texts.extend(output.get("traceback", []))
    return texts


def execution_problems(nb: dict) -> list[str]:
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    for i, c in enumerate(code):
        if not "".join(c["source"]).strip():
            problems.append(f"code cell {i + 1} is empty: remove it")
    if counts != list(range(1, len(code) + 1)):
        problems.append(f"code cells were not executed once each, in order: execution counts "
                        f"{counts}, expected 1..{len(code)}")
    return problems


def output_problems(nb: dict) -> list[str]:
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, c in enumerate(code, 1):
        for out in c.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"code cell {i} has an error output: {out.get('ename')}: "
                                f"{out.get('evalue')}")
            if WIDGET_VIEW in out.get("data", {}):
                problems.append(f"code cell {i} holds a widget view (no state is saved: it "
                                "shows 'model not found'); strip it")
            for text in _output_texts(out):
                m = ABSOLUTE_PATH.search(text)
                if m:
                    line = next(l for l in text.splitlines() if m.group(1) in l)
                    problems.append(f"code cell {i} shows an absolute path of this machine: "
                                    f"{line.strip()[:120]!r}")
    return problems


def metadata_problems(nb: dict) -> list[str]:
    problems = []
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, not 'python3'")
    if "widgets" in nb.get("metadata", {}):
        problems.append("metadata holds widget state ('widgets'): strip it")
    return problems


def opening_problems(nb: dict) -> list[str]:
    from tools.run_notebooks import header_format_problems
    cells = nb["cells"]
    if cells and cells[0]["cell_type"] == "markdown" and COLAB_BADGE in "".join(cells[0]["source"]):
        cells = cells[1:]
    if not cells or cells[0]["cell_type"] != "markdown":
        return ["the first cell is not a markdown cell with the header"]
    return header_format_problems("".join(cells[0]["source"]))


def numbering_problems(paths: list[Path]) -> list[str]:
    problems = [f"{p.name} is not named NN_topic.ipynb (lower case)" for p in paths
                if not NAME.match(p.name)]
    numbers = sorted(int(NAME.match(p.name).group(1)) for p in paths if NAME.match(p.name))
    if numbers != list(range(len(numbers))):
        problems.append(f"notebooks are numbered {numbers}, expected 00..{len(numbers) - 1:02d} "
                        "without gaps or duplicates")
    return problems


def notebook_problems(path: Path) -> list[str]:
    """Every problem of one notebook file, as readable sentences."""
    problems = []
    size = path.stat().st_size
    if size >= MAX_BYTES:
        problems.append(f"{size / 1e6:.1f} MB, over the 2 MB limit (save figures at a lower dpi)")
    nb = json.loads(path.read_text(encoding="utf-8"))
    for check in (execution_problems, output_problems, metadata_problems, opening_problems):
        problems += check(nb)
    return problems


# --- the committed notebooks ---------------------------------------------------------

@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    problems = notebook_problems(path)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_notebooks_are_numbered_contiguously():
    paths = course_notebooks()
    assert paths, "no notebooks in notebooks/"
    problems = numbering_problems(paths)
    assert not problems, "\n".join(problems)


# --- the checks fire on broken notebooks ---------------------------------------------

def _nb(cells, **metadata):
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    meta.update(metadata)
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(source, count, outputs=()):
    return {"cell_type": "code", "metadata": {}, "source": source, "execution_count": count,
            "outputs": list(outputs)}


GOOD_OPENING = _md("# 00 · Title\n\nWhat you will see.\n**Time:** about 20 minutes for you; 45 s "
                   "for the computer at the `cpu` profile (1,000 ResNet-20 images/s).")


def test_a_clean_notebook_passes(tmp_path):
    nb = _nb([GOOD_OPENING, _code("x = 1", 1), _code("print(x)", 2, [
        {"output_type": "stream", "name": "stdout", "text": "1\n"}])])
    path = tmp_path / "00_a.ipynb"
    path.write_text(json.dumps(nb))
    assert notebook_problems(path) == []


def test_each_check_fires():
    assert execution_problems(_nb([GOOD_OPENING, _code("a", 2), _code("b", 1)]))
    assert execution_problems(_nb([GOOD_OPENING, _code("a", None)]))
    assert execution_problems(_nb([GOOD_OPENING, _code("  ", 1)]))
    err = {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}
    assert output_problems(_nb([_code("a", 1, [err])]))
    for text in ("data: archive /work/shared/x.tar.gz", "saved to /tmp/abc/f.png",
                 "File /home/me/x.py", "/root/.cache/resnet_nb"):
        out = {"output_type": "stream", "name": "stdout", "text": text}
        assert output_problems(_nb([_code("a", 1, [out])])), text
    html = {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": "x", "text/html": "<p>/home/me</p>"}}
    assert output_problems(_nb([_code("a", 1, [html])]))
    ok = {"output_type": "stream", "name": "stdout", "text": "data: archive .../data/x.tar.gz"}
    assert not output_problems(_nb([_code("a", 1, [ok])]))
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"text/plain": "w", WIDGET_VIEW: {"model_id": "1"}}}
    assert output_problems(_nb([_code("a", 1, [widget])]))
    assert metadata_problems(_nb([], kernelspec={"name": "venv"}))
    assert metadata_problems(_nb([], widgets={"application/vnd.jupyter.widget-state+json": {}}))
    assert opening_problems(_nb([_code("a", 1)]))
    good = GOOD_OPENING["source"]
    for wrong in (good.replace("# 00 · Title", "# Title"),                   # no number
                  good.replace("\n\n", "\n"),                                # no blank line
                  good.replace("What you will see.", "What\nyou\nwill see."),  # four lines
                  good.replace("**Time:** about 20 minutes for you; 45 s", "**Time:** 45 s"),
                  good.replace("(1,000 ResNet-20 images/s)", "(229 images/s)"),
                  "# 00 · Title\n\n**Goal:** X. The computer needs 2 minutes on a CPU."):
        assert opening_problems(_nb([_md(wrong)])), wrong
    assert not opening_problems(_nb([GOOD_OPENING]))
    badge = _md(f"[![Open In Colab]({COLAB_BADGE})](https://colab.research.google.com/github/o/n)")
    assert not opening_problems(_nb([badge, GOOD_OPENING]))
    assert opening_problems(_nb([badge, _code("a", 1)]))
    for computer in ("45 s", "4.1 minutes", "12.0 minutes"):
        assert not opening_problems(_nb([_md(good.replace("45 s", computer))])), computer


def test_the_fixed_header_check_fires():
    time = ("**Time:** about 40 minutes for you; 4.1 minutes for the computer at the `cpu` "
            "profile (1,000 ResNet-20 images/s).")
    good = f"# 02 · A title\n\nWhat you will see, in one sentence.\n{time}"
    assert not opening_problems(_nb([_md(good)]))
    assert not opening_problems(_nb([_md(good.replace("4.1 minutes", "45 s"))]))
    for bad in (good.replace("# 02 · ", "# "),                                 # no number
                good.replace("\n\n", "\n"),                                    # no blank line
                good.replace("sentence.\n", "sentence.\n**Goal:** x.\n"),     # a goal block
                good.replace("sentence.\n", "a\nb\nc\n"),                     # four lines
                good.replace("4.1 minutes", "4 minutes"),                       # not the form
                f"# 02 · A title\n\n{time}\nMore text."):                     # not last
        assert opening_problems(_nb([_md(bad)])), bad


def test_numbering_fires():
    names = lambda *n: [Path(x) for x in n]
    assert not numbering_problems(names("00_a.ipynb", "01_b.ipynb", "02_c.ipynb"))
    assert numbering_problems(names("00_a.ipynb", "02_c.ipynb"))           # a gap
    assert numbering_problems(names("01_a.ipynb"))                         # no 00
    assert numbering_problems(names("00_a.ipynb", "00_b.ipynb"))           # a duplicate
    assert numbering_problems(names("00_a.ipynb", "1_b.ipynb"))            # bad name


def test_size_limit_fires(tmp_path):
    nb = _nb([GOOD_OPENING, _code("x", 1, [{"output_type": "stream", "name": "stdout",
                                            "text": "x" * MAX_BYTES}])])
    path = tmp_path / "00_big.ipynb"
    path.write_text(json.dumps(nb))
    assert any("MB" in p for p in notebook_problems(path))
