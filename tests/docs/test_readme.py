"""The README is short and true: its budget table is the budget script's, its course map
gives the times the notebooks' headers give, and its links and layout point at what exists."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import budget

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HEADER = re.compile(r"\*\*Time:\*\* about (\d+) minutes for you; (.+?) for the computer at the "
                    r"`cpu` profile")


def _readme() -> str:
    return README.read_text()


def test_the_readme_is_short():
    assert len(_readme().splitlines()) <= 150


def test_the_course_is_within_its_budgets():
    assert budget.problems(budget.measure_course()) == []


def test_a_broken_budget_is_reported(tmp_path):
    """The budget script can fail: a notebook with a long cell and no recorded time."""
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("word " * (budget.MAX_WORDS_CELL + 1)),
        nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(21)))])
    nbformat.write(nb, tmp_path / "00_x.ipynb")
    (tmp_path / "timings.json").write_text(json.dumps({"notebooks": {"00_x.ipynb": {"cpu": {
        "seconds": 400.0, "images_per_second": 1000.0}}}}))
    found = budget.problems(budget.measure_course(tmp_path))
    assert any("markdown cell 0 has 301 words" in p for p in found), found
    assert any("code cell 1 has 21 lines" in p for p in found), found
    assert any("400 s of cpu-profile compute" in p for p in found), found


def test_the_readme_budget_table_is_the_budget_scripts():
    """`python -m tools budget --markdown` prints the table the README shows."""
    assert budget.table(budget.measure_course()) in _readme(), \
        "the README's budget table is stale: paste `python -m tools budget --markdown` into it"


def _course_map() -> dict[str, tuple[str, str, str]]:
    rows = re.findall(r"^\| \[(\d\d_\w+)\]\(notebooks/\1\.ipynb\) \| [^|]+ \| (core|deep dive) \| "
                      r"(\d+) min \| ([^|]+) \|$", _readme(), re.M)
    return {name: (path, you, computer.strip()) for name, path, you, computer in rows}


def test_the_course_map_lists_every_notebook_with_its_headers_times():
    rows = _course_map()
    assert sorted(rows) == [p.stem for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        first = json.loads(path.read_text())["cells"]
        header = next(m for c in first[:3] if (m := HEADER.search("".join(c["source"]))))
        _, you, computer = rows[path.stem]
        assert (you, computer) == (header.group(1), header.group(2).replace(" minutes", " min")), \
            path.name
    assert {n[:2] for n, (p, _, _) in rows.items() if p == "deep dive"} == {"05", "07"}


@pytest.mark.parametrize("target", sorted(set(re.findall(
    r"\]\(((?!https?:|#)[^)#\s]+)", README.read_text()))))
def test_every_relative_link_of_the_readme_exists(target):
    assert (ROOT / target).exists(), target


def test_the_layout_names_the_folders_that_exist():
    layout = _readme().split("## Layout", 1)[1]
    named = set(re.findall(r"^    (\.?[\w-]+)/", layout, re.M))
    assert {"notebooks", "resnet_nb", "reference", "teaching", "tools", "deploy", "docs",
            "benchmarks", "tests", ".ci"} <= named
    assert all((ROOT / name).is_dir() for name in named), named


def test_the_papers_table_quotes_the_stored_reference_runs():
    """Each measured figure of the README's short table is the summary's (tools/reproduce)."""
    from tools.reproduce import summary_table
    rows = {tuple(r.split(" | ")[:2]): r.split(" | ")[3] for r in
            summary_table(ROOT / "reference").splitlines()[2:]}
    err = {(s.lstrip("| "), n): v.split(" (")[0] for (s, n), v in rows.items()}
    n = {(s.lstrip("| "), net): v.split(" (")[1].rstrip(")") for (s, net), v in rows.items()
         if "(" in v}
    readme = _readme()
    t20 = ("table6", "ResNet-20")
    assert f"| ResNet-20, the paper's recipe (Table 6) | 8.75 | {err[t20]} ({n[t20]}) |" in readme
    for a, b in (("plain-20", "plain-56"), ("ResNet-20", "ResNet-56")):
        x, y = ("fig6", a), ("fig6", b)
        assert n[x] == n[y] and f"| {err[x]} / {err[y]} ({n[x]}) |" in readme, (a, b)
    missing = [net for (s, net), v in err.items() if s == "table6" and v == "not run"]
    label = "ResNet-" + " / ".join(m.split("-")[1] for m in missing) + ", the paper's recipe"
    row = next(line for line in readme.splitlines() if line.startswith(f"| {label} |"))
    assert "| not run |" in row


def test_the_jpeg_comparison_quotes_the_kept_runs():
    """The README's JPEG table is what `benchmarks/jpeg_gap.py report --saved` prints."""
    import subprocess
    import sys
    printed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "jpeg_gap.py"), "report",
                              "--saved", str(ROOT / "benchmarks" / "jpeg_gap.json")],
                             capture_output=True, text=True, check=True).stdout
    tables = ["\n".join(line for line in block.splitlines() if line.startswith("|"))
              for block in printed.split("\n\n")]
    tables = [t for t in tables if t]
    assert tables and all(t in _readme() for t in tables)


def test_the_reference_readme_holds_the_whole_summary_table():
    from tools.reproduce import summary_table
    assert summary_table(ROOT / "reference") in (ROOT / "reference" / "README.md").read_text(), \
        "paste `python -m tools reproduce --summary --out reference/` into reference/README.md"


def test_the_hub_figures_are_the_deploy_guides_class_of_30():
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[3].rstrip(" |") for r in
            (ROOT / "deploy" / "README.md").read_text().splitlines() if r.count(" | ") == 3}
    start, spawn, memory = (rows["hub start"], rows["spawn, all at once (median / worst)"],
                            rows["memory per student, peak resident (median / worst)"])
    median, worst = spawn.removesuffix(" s").split(" / ")
    text = " ".join(_readme().split())
    assert f"hub start {start}, spawn {median} s median ({worst} s worst" in text
    assert f"{memory.split(' / ')[0]} GB resident per student" in text
