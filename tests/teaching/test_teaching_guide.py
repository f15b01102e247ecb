"""The instructor's guide (teaching/*.md) against the notebooks as they are stored.

Every number the guide quotes from a stored output is read from that output here, so a
regenerated notebook that prints another number fails this test until the guide follows:
the 90-minute plan's tables (01, 02, 04, 06, 07), its table of computer times (the headers'
normalised times and timings.json's recorded ones), every "N s at M images/s" in the guide,
the notebook decks' slide counts, the students' minutes from the headers, and the homework
table's exercises and checkers (the ones the notebooks' solution cells call). The guide also
tells nothing of how the course was developed (commit hashes, issue numbers, DESIGN.md).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEACHING = ROOT / "teaching"
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def _nb(number: str) -> dict:
    return json.loads(NOTEBOOKS[number].read_text(encoding="utf-8"))


def _cell(nb: dict, cell_id: str) -> dict:
    found = [c for c in nb["cells"] if c.get("id") == cell_id]
    assert found, f"no cell {cell_id!r}: the notebook changed; update this test and the guide"
    return found[0]


def _printed(nb: dict, cell_id: str) -> str:
    return "".join("".join(o["text"]) for o in _cell(nb, cell_id).get("outputs", [])
                   if o.get("output_type") == "stream")


def _guide(name: str) -> str:
    return re.sub(r"\s+", " ", (TEACHING / name).read_text(encoding="utf-8"))


def _row(text: str, label: str) -> str:
    """The rest of the table row of the guide's text (one line) that starts with `label`."""
    m = re.search(r"\| " + re.escape(label) + r" \| ([^\n]*?) \| (?:\| )?", text)
    assert m, f"no table row {label!r}"
    return m[1]


LESSON = "lesson_90min.md"


def test_the_lesson_plan_quotes_01s_stored_run():
    nb, plan = _nb("01"), _guide(LESSON)
    errors = [re.search(r"training error ([\d.]+%)", _printed(nb, c))[1]
              for c in ("c07", "c08", "c10")]
    assert (f"| training error on the fixed images after 3 epochs: plain-20 / plain-56 / "
            f"ResNet-56 | {' / '.join(errors)} |") in plan
    ratios = _printed(nb, "c21")
    plain = re.search(r"plain:\s+20 layers (\S+), 56 layers (\S+), 110 layers (\S+)", ratios)
    res = re.search(r"residual: 20 layers (\S+), 56 layers (\S+), 110 layers (\S+)", ratios)
    assert f"plain-20 / 56 / 110 | {' / '.join(plain.groups())} |" in plan
    assert f"ResNet-20 / 56 / 110 (option A) | {' / '.join(res.groups())} |" in plan
    low, high = re.search(r"activation RMS between ([\d.]+) and ([\d.]+)", ratios).groups()
    assert f"between {low} and {high} in every block" in plan
    assert f"(ratio {plain[2]})" in plan


def test_the_lesson_plan_quotes_02s_stored_run():
    nb, plan = _nb("02"), _guide(LESSON)
    fit = _printed(nb, "c08")
    (p0, p300, pct_p, const), (r0, r300, pct_r, _) = re.findall(
        r"error at step 0: ([\d.]+), after 300 steps: ([\d.]+) \((\d+)% of the constant "
        r"predictor's ([\d.]+)\)", fit)
    assert f"plain / residual stack | {p0} / {r0} |" in plan
    assert (f"| {p300} ({pct_p}% of the constant predictor's {const}) / {r300} ({pct_r}%) |"
            in plan)
    closer = re.search(r"ends ([\d.]+) times closer", fit)[1]
    assert f"| {closer} times |" in plan
    eqs = _printed(nb, "c10")
    eq4, size = re.search(r"eq. 4: .* = (\S+)\s+\(values of size ([\d.]+)\)", eqs).groups()
    assert f"| {eq4} (values of size {size}) |" in plan
    eq5 = re.search(r"eq. 5: relative difference of the two sides = (\S+)", eqs)[1]
    original = re.search(r"relative difference (\S+)", _printed(nb, "c12"))[1]
    paths = re.search(r"/ \|\| full \|\| = (\S+)", _printed(nb, "c14"))[1]
    assert f"| {eq5} |" in plan and f"| {original} (fails" in plan and f"| {paths} |" in plan


def test_the_lesson_plan_quotes_04s_stored_run():
    nb, plan = _nb("04"), _guide(LESSON)
    res, plain, gap = re.search(r"ResNet-20 ([\d.]+)%, plain-20 ([\d.]+)% test accuracy "
                                r"\(difference \+([\d.]+)", _printed(nb, "e0478d1e")).groups()
    assert f"| {res}% / {plain}% (+{gap} points) |" in plan
    classes = _printed(nb, "ad4036a2")
    best, best_acc, worst, worst_acc = re.search(
        r"best (\w+) \((\d+%)\), worst (\w+) \((\d+%)\)", classes).groups()
    assert f"| {best} {best_acc} / {worst} {worst_acc} |" in plan
    conf = re.search(r"most frequent confusion: (.+) \((\d+) of (\d+) ", classes).groups()
    assert f"| {conf[0]}, {conf[1]} of {conf[2]} cat images |" in plan
    converged = _printed(nb, "5635c8f9")
    ref_worst, ref_acc = re.search(r"worst class (\w+) \((\d+%)\)", converged).groups()
    assert ref_worst == worst
    assert f"now at {ref_acc} instead of {worst_acc}" in plan


def test_the_lesson_plan_quotes_06s_stored_run():
    nb, plan = _nb("06"), _guide(LESSON)
    at = dict((d, (p, r)) for d, p, r in re.findall(
        r"depth\s+(\d+): gradient at the first block / at the last: plain\s+(\S+)\s+"
        r"ResNet \(A\)\s+(\S+)", _printed(nb, "74f3ca26")))
    assert (f"plain {at['20'][0]} / {at['56'][0]} / {at['110'][0]} at depths 20 / 56 / 110; "
            f"ResNet (A) {at['20'][1]} / {at['56'][1]} / {at['110'][1]}") in plan
    latency = dict(re.findall(r"^(view 2, depth \d+|Stop, ResNet-56)\s+([\d.]+) s",
                              _printed(nb, "lab-latency") + _printed(nb, "5afcd7b0"), re.M))
    assert (f"took {latency['view 2, depth 20']} / {latency['view 2, depth 56']} / "
            f"{latency['view 2, depth 110']} s at depths 20 / 56 / 110") in plan
    assert f"({latency['Stop, ResNet-56']} s in 06's timing cell)" in plan
    lesions = _printed(nb, "d1f9d8c4")
    found = {name: m for name, *m in re.findall(
        r"^(plain-56|ResNet-56 \(A\)): all blocks ([\d.]+)%; removing one block costs ([\d.]+) "
        r"points \(median\), ([\d.]+) at most outside the downsampling blocks, ([\d.]+) at "
        r"most overall \(block (\d+)", lesions, re.M)}
    res, pl = found["ResNet-56 (A)"], found["plain-56"]
    assert f"| test accuracy with every block | {res[0]}% | {pl[0]}% |" in plan
    assert f"| drop when one block is removed, median | {res[1]} points | {pl[1]} points |" in plan
    assert (f"| largest drop outside the downsampling blocks | {res[2]} points | {pl[2]} points "
            f"(block {pl[4]}) |") in plan
    assert (f"| largest drop overall | {res[3]} points (block {res[4]}, downsampling) | "
            f"{pl[3]} points (block {pl[4]}) |") in plan
    median_left = float(pl[0]) - float(pl[1])
    assert f"plain-56 falls to about {median_left:.0f}% at the median drop" in plan
    params = dict(re.findall(r"^(\S+(?: \([AB]\))?)\s+([\d,]+) parameters",
                             _printed(nb, "529874f0"), re.M))
    assert (f"plain-56 and ResNet-56 (A) have {params['plain-56']} parameters each, ResNet-56 "
            f"(B) {params['ResNet-56 (B)']}") in plan


def test_the_lesson_plan_quotes_07s_stored_run():
    nb, plan = _nb("07"), _guide(LESSON)
    slices = dict((n, g) for n, *g in re.findall(
        r"^(plain-56|ResNet-56 \(A\))\s+loss at alpha = 0: ([\d.]+), at -0.5 / \+0.5: ([\d.]+) / "
        r"([\d.]+),.*local minima along the line: (\d+)", _printed(nb, "w17"), re.M))
    grid = dict(re.findall(r"^(plain-56|ResNet-56 \(A\)).*local minima on the grid: (\d+)",
                           _printed(nb, "w20"), re.M))
    p, r = slices["plain-56"], slices["ResNet-56 (A)"]
    assert (f"| {p[0]} / {p[1]} and {p[2]} | {r[0]} / {r[1]} and {r[2]} |") in plan
    assert (f"| local minima on the line / on the 7×7 plane | {p[3]} / {grid['plain-56']} | "
            f"{r[3]} / {grid['ResNet-56 (A)']} |") in plan
    corr = re.search(r"depth 110: plain\s+([\d.-]+)\s+ResNet\s+([\d.-]+)", _printed(nb, "w29"))
    assert f"(initialisation) | {corr[1]} | {corr[2]} |" in plan
    medians = dict(re.findall(r"^(\S+(?: \(A\))?)\s+\d+ layers\s+median std ([\d.]+)",
                              _printed(nb, "w07"), re.M))
    assert (f"| median layer-response std (ResNet-20: {medians['ResNet-20 (A)']}) | "
            f"{medians['plain-56']} | {medians['ResNet-56 (A)']} |") in plan
    paths = _printed(nb, "w35")
    r_trained, peak = re.search(r"trained\s+r = ([\d.]+): most gradient at length\s+(\d+)",
                                paths).groups()
    blocks, most = re.search(r"(\d+) blocks; most paths pass about (\d+)", paths).groups()
    assert (f"paths of length {peak} (of {blocks} blocks; most paths pass about {most}), with "
            f"r = {r_trained}") in plan
    score = _printed(nb, "w38").splitlines()
    assert len(score) == 5 and all(line.startswith("agrees") for line in score)
    assert "All five scorecard lines say \"agrees\"" in plan


def test_the_lesson_plan_gives_the_headers_and_the_recorded_times():
    from tools.run_notebooks import computer_time
    timings = json.loads((ROOT / "notebooks" / "timings.json").read_text())["notebooks"]
    rows = re.findall(r"^\| (\d\d) \| [^|]+ \| ([^|]+) \| ([\d,]+\.\d) s at ([\d.]+) images/s \|$",
                      (TEACHING / LESSON).read_text(encoding="utf-8"), re.M)
    assert {r[0] for r in rows} == {"01", "02", "03", "04", "06", "07"}
    for number, header, seconds, speed in rows:
        name = NOTEBOOKS[number].name
        run = timings[name]["cpu"]
        assert (float(seconds.replace(",", "")), float(speed)) == \
            (run["seconds"], run["images_per_second"]), name
        assert header.strip() == computer_time(run["seconds"], run["images_per_second"]), name
        assert f"; {header.strip()} for the computer" in NOTEBOOKS[number].read_text(), name


def test_every_recorded_time_the_guide_quotes_is_in_timings_json():
    """Any "925.5 s at 242.0 images/s" or "records 884.9 s ... for 05" in teaching/."""
    timings = json.loads((ROOT / "notebooks" / "timings.json").read_text())["notebooks"]
    pairs = {(r["cpu"]["seconds"], r["cpu"]["images_per_second"]) for r in timings.values()}
    by_number = {name[:2]: r["cpu"]["seconds"] for name, r in timings.items()}
    found = 0
    for path in TEACHING.glob("*.md"):
        text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))
        for s, v in re.findall(r"(\d[\d,]*\.\d) s at (\d+\.\d) images/s", text):
            assert (float(s.replace(",", "")), float(v)) in pairs, (path.name, s, v)
            found += 1
        for s, n in re.findall(r"records (\d[\d,]*\.\d) s (?:\([^)]*\) )?for (\d\d)\b", text):
            assert float(s.replace(",", "")) == by_number[n], (path.name, s, n)
            found += 1
    assert found >= 8


def test_the_guide_gives_each_notebook_decks_slide_count():
    from tools import mark_slides
    text = _guide("README.md")
    counts = dict(re.findall(r"(\d\d): (\d+)", text.split("Slide counts of the notebooks' own "
                                                         "decks:")[1].split(".")[0]))
    assert set(counts) == set(NOTEBOOKS)
    for number, path in NOTEBOOKS.items():
        assert int(counts[number]) == mark_slides.expected_slide_count(_nb(number)), number


def _student_minutes() -> dict:
    return {n: int(re.search(r"\*\*Time:\*\* about (\d+) minutes for you",
                             p.read_text(encoding="utf-8"))[1]) for n, p in NOTEBOOKS.items()}


def test_the_students_minutes_are_the_headers():
    m = _student_minutes()
    lab = _guide("lab_3h.md")
    assert (f"about {m['05']} and {m['07']} minutes of student work, by their headers" in lab)
    assert (f"00 {m['00']} minutes, 01 {m['01']}, 02 {m['02']}, 03 {m['03']}, 04 {m['04']} "
            f"and 06 {m['06']}") in lab
    total = sum(m[n] for n in ("00", "01", "02", "03", "04", "06"))
    assert f"about {total // 60} h {total % 60} min" in lab
    homework = _guide("homework.md")
    assert f"Its header gives about {m['05']} minutes of the student's own work" in homework
    assert f"(its header gives about {m['07']} minutes)" in homework


def test_the_homework_table_names_each_exercise_and_its_checker():
    from resnet_nb import exercises
    table = {n: (kind, checker) for n, kind, checker in re.findall(
        r"^\| (\d\d\.\d) [^|]+ \| ([^|]+) \| ([^|]+) \|",
        (TEACHING / "homework.md").read_text(encoding="utf-8"), re.M)}
    called = {}
    for number, path in NOTEBOOKS.items():
        code_cells = [c for c in _nb(number)["cells"] if c["cell_type"] == "code"
                      and "".join(c["source"]).startswith("#@title Worked solution")]
        called[number] = [name for cell in code_cells for name in re.findall(
            r"print\((check_\w+)\(", "".join(cell["source"]))]
    code = {n: c.strip(" `") for n, (kind, c) in table.items() if kind.startswith("code")}
    assert len(table) == 25 and len(code) == 12
    for number, checkers in called.items():
        listed = [c for n, c in sorted(code.items()) if n.startswith(number)]
        assert listed == checkers, (number, listed, checkers)
    named = set(re.findall(r"\bcheck_\w+", "".join(p.read_text() for p in TEACHING.glob("*.md"))))
    assert named <= {n for n in dir(exercises) if n.startswith("check_")}, named


@pytest.mark.parametrize("path", sorted(TEACHING.glob("*.md")), ids=lambda p: p.name)
def test_the_guide_tells_nothing_of_how_the_course_was_developed(path):
    text = path.read_text(encoding="utf-8")
    for pattern in (r"DESIGN\.md", r"\bissue \d+", r"\bcommit `?[0-9a-f]{7,40}\b",
                    r"`[0-9a-f]{7}`", r"\bsession", r"\bsitting"):
        assert not re.search(pattern, text, re.I), (path.name, pattern)
