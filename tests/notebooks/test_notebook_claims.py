"""What the notebooks' prose says about their own stored outputs is what those outputs show.

The committed notebooks carry the outputs of a `cpu`-profile run (tools/run_notebooks.py),
and nbval runs them under the `smoke` profile, whose numbers differ. Claims that hold at every
profile are asserted in the notebooks themselves. Claims about the stored run (numbers quoted
in the markdown, "X trains worse than Y") are checked here, against the stored outputs: a
regeneration whose numbers change, or an edit of the prose, cannot leave the two disagreeing
without a test failing. When one fails, rewrite the prose for the new outputs (or regenerate).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _notebook(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text())


def _cell(nb: dict, cell_id: str) -> dict:
    for cell in nb["cells"]:
        if cell.get("id") == cell_id:
            return cell
    raise AssertionError(f"no cell with id {cell_id!r}: the notebook changed; update this test")


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _printed(cell: dict) -> str:
    """Everything a code cell printed (its stream outputs)."""
    texts = [o["text"] for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def _oneline(text: str) -> str:
    """Markdown with its line breaks (and the two-space indents of list items) made spaces."""
    return re.sub(r"\s+", " ", text)


# --- notebook 01: the degradation problem -----------------------------------------------------

@pytest.fixture(scope="module")
def nb01():
    return _notebook("01_degradation.ipynb")


@pytest.fixture(scope="module")
def live01(nb01):
    """The stored live run's training errors (%) on the fixed images, as c15 prints them:
    {"plain-20": .., "plain-56": .., "ResNet-56 (A)": ..}; each equals what its training cell
    printed."""
    text = _printed(_cell(nb01, "c15"))
    plain = re.search(r"^Depth without shortcuts: plain-56 ([\d.]+)% against plain-20 ([\d.]+)% "
                      r"training error: (.*)$", text, re.M)
    res = re.search(r"^Shortcuts at depth 56: ResNet-56 ([\d.]+)% against plain-56 ([\d.]+)% "
                    r"\(([-+][\d.]+) points\)\.$", text, re.M)
    assert plain and res, text
    errors = {"plain-56": plain.group(1), "plain-20": plain.group(2), "ResNet-56 (A)": res.group(1)}
    assert res.group(2) == plain.group(1)
    for cell_id, name in (("c07", "plain-20"), ("c08", "plain-56"), ("c10", "ResNet-56 (A)")):
        assert (f"{name}: training error {errors[name]}% on the fixed images"
                in _printed(_cell(nb01, cell_id))), name
    assert plain.group(3).startswith("worse") == (float(plain.group(1)) > float(plain.group(2)))
    return errors


def test_01_the_live_run_shows_what_the_prose_says(nb01, live01):
    p20, p56, r56 = (float(live01[n]) for n in ("plain-20", "plain-56", "ResNet-56 (A)"))
    # "Plain-56 is worse than plain-20 on the very images it trains on ... With shortcuts, the
    #  same 56 layers train far better."
    assert p56 > p20 + 5 and r56 < p56 - 10
    prose = _oneline(_source(_cell(nb01, "c16")))
    assert "Plain-56 is worse than plain-20" in prose and "train far better" in prose
    # The live run does not show the deeper ResNet ahead; the prose must not claim it.
    assert "the converged ordering comes from the course's reference runs" in prose
    summary = _oneline(_source(_cell(nb01, "c22")))
    assert (f"plain-56 ended at {live01['plain-56']}% training error, plain-20 at "
            f"{live01['plain-20']}%" in summary)
    assert f"(ResNet-56: {live01['ResNet-56 (A)']}%)" in summary


def test_01_the_early_loss_jump_is_resnet56s_alone(nb01):
    """'ResNet-56's early jump in loss comes while the learning rate rises' (c16), from the
    losses c15 prints: only ResNet-56 rises well above its first loss."""
    losses = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(
        r"^(\S+(?: \(A\))?)\s+loss ([\d.]+) at the first step, at most ([\d.]+) while the "
        r"learning rate rises$", _printed(_cell(nb01, "c15")), re.M)}
    assert set(losses) == {"plain-20", "plain-56", "ResNet-56 (A)"}, losses
    first, highest = losses["ResNet-56 (A)"]
    assert highest > first + 0.5
    for name in ("plain-20", "plain-56"):
        assert losses[name][1] < losses[name][0] + 0.1, name
    assert "ResNet-56's early jump in loss" in _oneline(_source(_cell(nb01, "c16")))


def test_01_reference_runs_are_quoted_as_printed(nb01):
    """The folded notes on the reference runs (5c91680f) quote c1411baf and 68c81de7."""
    table = _printed(_cell(nb01, "c1411baf"))
    gaps = [float(m[1]) - float(m[2]) for m in re.findall(
        r"^(resnet-\d+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)$", table, re.M)]
    assert len(gaps) == 4 and all(6 <= g < 7 for g in gaps), gaps
    notes = _oneline(_source(_cell(nb01, "5c91680f")))
    assert "test errors are 6-7 points above the paper's" in notes
    steps = _printed(_cell(nb01, "68c81de7"))
    plain = re.search(r"^plain\s+training error, 20 -> 56 layers: ([\d.]+)% -> .* -> ([\d.]+)%   "
                      r"\(rises at every step in depth\)$", steps, re.M)
    assert f"from {plain.group(1)}% (plain-20) to {plain.group(2)}% (plain-56)" in notes
    res = [float(e) for e in re.search(r"^resnet\s+training error, 20 -> 56 layers: (.*)$", steps,
                                      re.M).group(1).replace("%", "").split(" -> ")]
    # "ResNet-32, 44 and 56 all train better than ResNet-20 ... within 0.35 points"
    assert all(e < res[0] for e in res[1:])
    train = {m[0]: float(m[1]) for m in re.findall(r"^(resnet-\d+)\s+([\d.]+)", table, re.M)}
    deeper = [train[f"resnet-{d}"] for d in (32, 44, 56)]
    assert max(deeper) - min(deeper) <= 0.35 and "within 0.35 points" in notes
    gap = re.search(r"training accuracy \(points\): ([-+][\d.]+), .*, ([-+][\d.]+)$", steps, re.M)
    assert (f"by {gap.group(1).lstrip('+')} points at 20 layers and {gap.group(2).lstrip('+')} "
            "at 56" in notes)


def test_01_prints_no_command_for_the_reference_runs(nb01):
    """set.json's command does not match the runs it holds: 01 prints the budget and device
    from the runs' own histories, and no "made by" command."""
    text = _printed(_cell(nb01, "05e98343"))
    assert "made by" not in text and "python -m" not in text
    assert re.search(r"^budget: 30 epochs of 50,000 training images", text, re.M)
    assert re.search(r"^trained on: cuda: NVIDIA ", text, re.M)


def test_01_signal_reading_quotes_the_stored_measurement(nb01):
    rms = re.search(r"activation RMS between ([\d.]+) and ([\d.]+) in every block",
                    _printed(_cell(nb01, "c21")))
    ratio = re.search(r"^plain-56\s+.*\s([\d.e+]+)$", _printed(_cell(nb01, "c19")), re.M).group(1)
    reading = _oneline(_source(_cell(nb01, "c20")))
    assert f"between {rms.group(1)} and {rms.group(2)}" in reading
    assert f"to {ratio} times the last block's at the first block of plain-56" in reading


def test_readme_degradation_row_matches_notebook_01(live01):
    """README's paper-against-measured row for 01 quotes the stored live run."""
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| degradation at the"))
    for name, label in (("plain-20", "plain-20"), ("plain-56", "plain-56"),
                        ("ResNet-56 (A)", "ResNet-56")):
        assert f"{label} {live01[name]}%" in row, (label, row)


def test_00_course_map_marks_the_core_path_and_the_deep_dives():
    """00's course map: every notebook, one line each, core (00-04, 06) or deep dive (05, 07)."""
    text = _source(_cell(_notebook("00_start_here.ipynb"), "c02"))
    rows = re.findall(r"^\| \[(\d\d)_\w+\]\((\d\d_\w+\.ipynb)\) \| [^|]+ \| (core|deep dive) \|$",
                      text, re.M)
    names = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert [r[1] for r in rows] == names
    assert {r[0] for r in rows if r[2] == "deep dive"} == {"05", "07"}


# --- notebook 00: the recorded times ---------------------------------------------------------

def _run_notebooks():
    from tools import run_notebooks
    return run_notebooks


def test_00_prints_the_times_recorded_in_timings_json():
    """00's environment check prints each notebook's recorded `cpu` time; the stored output must
    show what notebooks/timings.json holds (tools/run_notebooks.py runs 00 once more, last,
    after recording every time). Fails after a regeneration that left 00 out: run 00 again."""
    from resnet_nb.environment import _duration, normalised_seconds
    timings = json.loads((NOTEBOOKS / "timings.json").read_text())["notebooks"]
    nb = _notebook("00_start_here.ipynb")
    text = next(_printed(c) for c in nb["cells"] if "format_predictions(" in _source(c))
    shown = dict(re.findall(r"^\s+(\d\d_\w+\.ipynb)\s+\S+ \S+\s+\(([^)]+)\)$", text, re.M))
    # In brackets, each notebook's time at 1,000 images/s, as its header states it.
    recorded = {name: _duration(normalised_seconds(runs["cpu"]["seconds"],
                                                   runs["cpu"]["images_per_second"]))
                for name, runs in timings.items() if "cpu" in runs}
    assert shown == recorded


def test_run_notebooks_runs_00_again_after_recording(tmp_path, monkeypatch):
    """With 00 among the notebooks, 00 runs once more after every time is recorded, and that
    second run's time is not recorded (its output shows the first)."""
    rn = _run_notebooks()
    ran, recorded_when = [], []
    seconds = iter([20.0, 30.0, 99.0, 40.0])

    def fake_run(path, profile, timeout):
        recorded_when.append(json.loads(timings.read_text())["notebooks"] if timings.exists()
                             else {})
        ran.append(path.name)
        return next(seconds), None

    timings = tmp_path / "timings.json"
    monkeypatch.setattr(rn, "run", fake_run)
    monkeypatch.setattr(rn, "machine", lambda: "test machine")
    monkeypatch.setattr(rn, "measure_speed", lambda d: {"images_per_second": 100.0, "machine": d})
    monkeypatch.setenv("RESNET_NB_DATA", str(tmp_path))
    # main() sets these for the kernels it starts; restored after the test, or every notebook
    # nbval runs later in this process would run under the cpu profile (seen in CI).
    for name in ("RESNET_NB_PROFILE", "TQDM_DISABLE", "MPLBACKEND"):
        monkeypatch.setenv(name, os.environ.get(name, ""))     # recorded, so restored ...
        if not os.environ[name]:
            monkeypatch.delenv(name)                             # ... or removed again
    nbs = [NOTEBOOKS / "00_start_here.ipynb", NOTEBOOKS / "02_residual_formulation.ipynb"]
    assert rn.main([str(p) for p in nbs] + ["--timings", str(timings)]) == 0
    assert ran == ["00_start_here.ipynb", "02_residual_formulation.ipynb", "00_start_here.ipynb"]
    assert set(recorded_when[-1]) == {"00_start_here.ipynb", "02_residual_formulation.ipynb"}
    final = json.loads(timings.read_text())["notebooks"]
    assert final["00_start_here.ipynb"]["cpu"]["seconds"] == 20.0      # not the rerun's 99
    ran.clear()
    assert rn.main([str(nbs[1]), "--timings", str(timings)]) == 0
    assert ran == ["02_residual_formulation.ipynb"]                    # without 00, no rerun


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_each_header_has_the_fixed_format_and_the_recorded_cpu_time(path):
    """Every notebook's header (cell 1, after the badge) is `# NN · Title`, a blank line and at
    most three lines ending with the time line, whose computer time is the one recorded in
    notebooks/timings.json, normalised to 1,000 ResNet-20 images/s (run_notebooks writes it)."""
    rn = _run_notebooks()
    entry = json.loads((NOTEBOOKS / "timings.json").read_text())["notebooks"].get(
        path.name, {}).get("cpu")
    header = _source(_notebook(path.name)["cells"][1])
    assert rn.header_problems(header, path.name, entry) == []


GOOD_HEADER = ("# 04 · Training on CIFAR-10\n\nA ResNet-20, trained.\n**Time:** about 40 minutes "
               "for you; 4.1 minutes for the computer at the `cpu` profile (1,000 ResNet-20 "
               "images/s).")


def test_the_header_check_fails_on_a_wrong_header():
    rn = _run_notebooks()
    name, entry = "04_x.ipynb", {"seconds": 1025.0, "images_per_second": 240.0}   # 246 s
    assert rn.computer_time(**entry) == "4.1 minutes"
    assert rn.computer_time(100.0, 1000.0) == "100 s" and rn.computer_time(119.6, 1000) == "2.0 minutes"
    assert rn.header_problems(GOOD_HEADER, name, entry) == []
    wrong = {
        "time": GOOD_HEADER.replace("4.1 minutes for", "4.2 minutes for"),
        "unit": GOOD_HEADER.replace("4.1 minutes for", "246 s for"),
        "speed": GOOD_HEADER.replace("(1,000 ResNet", "(229 ResNet"),
        "old sentence": GOOD_HEADER.replace("**Time:**", "**Goal:** x. **Time:**"),
        "number": GOOD_HEADER.replace("# 04", "# 05"),
        "no blank line": GOOD_HEADER.replace("\n\n", "\n"),
        "four lines": GOOD_HEADER.replace("A ResNet-20", "A\nResNet-20\nhere"),
    }
    for what, header in wrong.items():
        assert rn.header_problems(header, name, entry), what
    assert rn.header_problems(GOOD_HEADER, name, None)            # no time recorded
    assert rn.computer_time(39.1, 242.0) == "9 s" and rn.computer_time(522.4, 190.2) == "99 s"
    assert rn.computer_time(1618.5, 242.0) == "6.5 minutes"


def test_run_notebooks_rewrites_the_header_it_records(tmp_path):
    import nbformat
    rn = _run_notebooks()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("badge"),
                                         nbformat.v4.new_markdown_cell(GOOD_HEADER)])
    path = tmp_path / "04_x.ipynb"
    nbformat.write(nb, path)
    assert rn.update_header(path, {"seconds": 754.0, "images_per_second": 1234.4})
    text = nbformat.read(path, as_version=4).cells[1].source
    assert "; 15.5 minutes for the computer at the `cpu` profile (1,000 ResNet-20" in text
    assert rn.header_problems(text, path.name, {"seconds": 754.0, "images_per_second": 1234.4}) == []
    assert not rn.update_header(path, {"seconds": 754.0, "images_per_second": 1234.4})
    assert rn.update_header(path, {"seconds": 30.0, "images_per_second": 1000.0})
    assert "; 30 s for the computer" in nbformat.read(path, as_version=4).cells[1].source


# --- notebook 02: the formulation -----------------------------------------------------------

def test_02_quotes_its_own_measurements():
    nb = _notebook("02_residual_formulation.ipynb")
    rel = re.search(r"relative difference ([\d.]+)", _printed(_cell(nb, "c12"))).group(1)
    summary = _oneline(_source(_cell(nb, "c23")))
    # "with a ReLU after it they do not (relative difference 0.56 above)."
    assert f"they do not (relative difference {rel} above)" in summary
    assert float(rel) > 0.1 and "only approximately" not in summary
    fit = {m[0]: (float(m[1]), m[2], m[3], m[4]) for m in re.findall(
        r"^(plain|residual) stack \(4 blocks\)\s+error at step 0: ([\d.]+), after \d+ steps: "
        r"([\d.]+) \((\d+)% of the constant predictor's ([\d.]+)\)", _printed(_cell(nb, "c08")),
        re.M)}
    # "The residual stack starts *worse*", and the plain one ends "near the grey line".
    assert fit["residual"][0] > fit["plain"][0]
    assert "The residual stack starts *worse*" in _source(_cell(nb, "c09"))
    assert 90 <= int(fit["plain"][2]) <= 110 and int(fit["residual"][2]) < 50
    answer = _oneline(_source(_cell(nb, "written-answer-3")))
    (_, plain, share, constant), (_, residual, _, _) = fit["plain"], fit["residual"]
    assert (f"plain stack ended at {plain}, {share}% of the constant predictor's {constant}"
            in answer)
    assert f"and the residual stack at {residual}." in answer
    # "a single path's term hardly shrinks when it passes one more branch", and paths of
    # medium length carry most at initialisation (the peak of the 9-block stage).
    printed = _printed(_cell(nb, "c16b"))
    shrink = float(re.search(r"multiplies a path's term by about ([\d.]+)", printed).group(1))
    peak = int(re.search(r"the paths of length (\d+) carry the largest sum", printed).group(1))
    assert 0.85 <= shrink < 1 and 3 <= peak <= 6
    assert "hardly shrinks" in _source(_cell(nb, "c16a"))


def test_03_quotes_its_own_measurements():
    nb = _notebook("03_building_blocks.ipynb")
    costs = {m[0].strip(): int(m[1].replace(",", "")) for m in re.findall(
        r"^(basic block, \d+ channels|bottleneck, 256 channels)\s+([\d,]+) multiply-adds",
        _printed(_cell(nb, "0baf85da")), re.M)}
    bottleneck = costs["bottleneck, 256 channels"]
    text = _oneline(_source(_cell(nb, "e656df9a")))
    # "about the cost of a basic block on 64, and about 1/17 of a basic block on 256"
    assert abs(bottleneck / costs["basic block, 64 channels"] - 1) < 0.1
    ratio = round(costs["basic block, 256 channels"] / bottleneck)
    assert f"about 1/{ratio} of a basic block on 256" in text
    # The hand count of option B in the folded answer is what the cell prints, at both depths.
    added = re.findall(r"option B:\s+[\d,]+ parameters \(\s*\+([\d,]+),",
                       _printed(_cell(nb, "b49d5b6c")))
    assert len(added) == 2 and len(set(added)) == 1
    assert f"so {added[0]} at any depth" in _oneline(_source(_cell(nb, "9c799080")))
    # "All six agree" with Table 6.
    rows = re.findall(r"^ResNet-\d+ .*\s(True|False)$", _printed(_cell(nb, "55b120eb")), re.M)
    assert rows == ["True"] * 6 and _source(_cell(nb, "be436ab4")).startswith("All six agree")
    # "Almost all parameters are convolution weights, most of them in stage 3".
    for conv, stage3 in re.findall(r"([\d.]+)% in convolution weights,\s+([\d.]+)% in stage 3",
                                   _printed(_cell(nb, "28dbac1a"))):
        assert float(conv) > 95 and float(stage3) > 50
    # The answer to exercise 3 quotes option C's cost at depth 110 as printed, and its counts
    # at depth 56 as the networks have them.
    c110 = re.search(r"ResNet-110\s+option C:.*?([\d.]+)%\)", _printed(_cell(nb, "b49d5b6c")))
    answer = _oneline(_source(_cell(nb, "written-answer-3")))
    assert f"({c110.group(1)}% at depth 110, printed in 03)" in answer
    from resnet_nb import cifar_resnet, count_parameters
    from resnet_nb.blocks import ProjectionShortcut
    c56, a56 = cifar_resnet(56, "C"), count_parameters(cifar_resnet(56, "A"))
    n = count_parameters(c56)
    projections = [m for m in c56.modules() if isinstance(m, ProjectionShortcut)]
    in_them = sum(count_parameters(m) for m in projections)
    assert in_them == n - a56
    assert (f"has {n:,} parameters, {n - a56:,} ({100 * (n - a56) / a56:.1f}%) more than option A, "
            f"in **{len(projections)} projections**, one per block: "
            f"**{100 * in_them / n:.1f}% of the network**") in answer


# --- notebook 05: the forensics -------------------------------------------------------------

@pytest.fixture(scope="module")
def nb05():
    return _notebook("05_tutorial_forensics.ipynb")


def _pct(text: str, pattern: str) -> str:
    m = re.search(pattern, text, re.M)
    assert m, pattern
    return m.group(1)


def _05_runs(nb05) -> dict:
    """The stored run's numbers that 05's prose quotes, parsed from the cells that print them."""
    out = lambda cid: _printed(_cell(nb05, cid))
    r = {"no_bn": _pct(out("f26"), r"^trained: train acc [\d.]+%, test acc ([\d.]+)%"),
         "repaired": _pct(out("f30"), r"^epoch 3: .* test acc ([\d.]+)%")}
    r["b4"], r["b128"] = (float(_pct(out("f34"), rf"^batch\s+{b}: prediction changes with the "
                                                rf"batch-mates for\s+([\d.]+)%")) for b in (4, 128))
    table = out("f53")
    r["broken"], r["rep1"] = re.search(
        r"runnable snippet ([\d.]+)% test accuracy, repaired ([\d.]+)%", table).groups()
    rows = {m[0]: m[1:] for m in re.findall(r"^(r[^\n]*?)\s+\d+\s+[\d,]+\s+([\d.]+)%"
                                           r"\s+([\d.]+)%$", table, re.M)}
    assert rows["repaired"][1] == r["repaired"]
    assert rows["runnable snippet (batch 4, lr 0.001)"][1] == r["broken"]
    r["slow"], r["no_aug"] = (rows[f"repaired, but {k}"][1] for k in ("lr 0.001 constant",
                                                                    "no augmentation"))
    return r


def test_05_quotes_its_stored_run(nb05):
    out = lambda cid: _printed(_cell(nb05, cid))
    md = lambda cid: _oneline(_source(_cell(nb05, cid)))
    r = _05_runs(nb05)
    # Problem 5: "It trained." ... "With BN: 58.5% test accuracy, against 45.3% without."
    assert md("f27").startswith("It trained;") and "diverged" not in out("f26")
    assert f"With BN: {r['repaired']}% test accuracy, against {r['no_bn']}% without." in md("f31")
    assert float(r["repaired"]) > float(r["no_bn"])
    # Problem 6: "At batch 4, 74% of the predictions changed with the batch-mates, against 11%"
    assert (f"At batch 4, {r['b4']:.0f}% of the predictions changed with the batch-mates, "
            f"against {r['b128']:.0f}% at batch 128") in md("f35")
    # Problem 7: "The test accuracy, 58.6% against 56.4%. The running figures trail the final
    # network (59.5% on the same training images in evaluation mode)"
    running = re.search(r"training loss \(running average\) ([\d.]+).*\n.*training accuracy "
                        r"\(running\) ([\d.]+)%, test accuracy ([\d.]+)%", out("f36")).groups()
    final = re.search(r"no augmentation: loss ([\d.]+), accuracy ([\d.]+)%", out("f36")).groups()
    assert float(running[0]) > float(final[0]) and float(running[1]) < float(final[1])
    assert float(running[2]) > float(running[1])
    assert (f"The test accuracy, {running[2]}% against {running[1]}%. The running figures trail "
            f"the final network ({final[1]}% on the same training images") in md("f37")
    assert "label_smoothing=0.1" in out("f26") and "label smoothing (0.1)" in md("f37")
    # Problem 10: "The cost is small: 52 µs per image with `Resize`, 46 µs without."
    with_r, without = re.search(r"best of 5: with Resize (\d+) µs, without (\d+) µs",
                                out("f44")).groups()
    assert f"The cost is small: {with_r} µs per image with `Resize`, {without} µs without" in md("f45")
    assert abs(int(with_r) - int(without)) <= 0.25 * int(without)
    # Problem 8: "3.3 times as many images per second at batch 128" (ResNet-20); "0.9 times"
    snippet_ratio, resnet_ratio = re.findall(r"at batch 128: ratio ([\d.]+)", out("f38"))
    assert (f"For the narrow ResNet-20 it dominates: {resnet_ratio} times as many images per "
            f"second at batch 128") in md("f39")
    assert f"a sizeable step: {snippet_ratio} times as many on this CPU" in md("f39")
    assert float(resnet_ratio) > 2 and float(snippet_ratio) < float(resnet_ratio) / 2
    # Problem 11: "standard deviation is about 0.25", "half as large"; ratios and differences
    stds = [float(v) for v in re.search(r"statistics: mean .*, std \(([^)]*)\)",
                                        out("f46")).group(1).split(", ")]
    snip = [float(v) for v in re.search(r"snippet's Normalize: +mean .*, std \(([^)]*)\)",
                                        out("f46")).group(1).split(", ")]
    assert all(0.24 <= v <= 0.27 for v in stds) and all(0.45 <= v <= 0.55 for v in snip)
    (bn_r, bn_d), (raw_r, raw_d) = re.findall(
        r"proper ones: ([\d., ]+); class scores differ by (\d+)%", out("f48"))
    bn_r, raw_r = [float(v) for v in bn_r.split(", ")], [float(v) for v in raw_r.split(", ")]
    assert (f"With BN the ratios are {min(bn_r):.2f} to {max(bn_r):.2f} and the class scores "
            f"differ by {bn_d}%") in md("f49")
    assert (f"Without BN the signal is halved ({min(raw_r):.2f} to {max(raw_r):.2f} times in the "
            f"stored run), and the class scores differ by {raw_d}%") in md("f49")
    assert all(0.45 <= v <= 0.55 for v in raw_r)
    # Problem 12: "training 56.6% to 61.7%, test 58.5% to 63.1%; ... (−1.8 to −1.4 points)"
    (tr1, te1, g1), (tr2, te2, g2) = re.findall(
        r"augmentation: train acc ([\d.]+)%, test acc ([\d.]+)%, gap (-?[\d.]+) points", out("f50"))
    assert f"training {tr1}% to {tr2}%, test {te1}% to {te2}%" in md("f51")
    assert f"(−{g1.lstrip('-')} to −{g2.lstrip('-')} points)" in md("f51")
    rise_train, rise_test = float(tr2) - float(tr1), float(te2) - float(te1)
    assert md("f51").startswith("Both rose by about as much") and rise_train > 0 and rise_test > 0
    assert abs(rise_train - rise_test) < 2 and abs(float(g2) - float(g1)) < 2   # "hardly moved"


def test_05_reading_the_table_and_summary(nb05):
    out = lambda cid: _printed(_cell(nb05, cid))
    text = _oneline(_source(_cell(nb05, "f54")))
    r = _05_runs(nb05)
    assert (f"the runnable snippet reached {r['broken']}% test accuracy, the repaired network "
            f"{r['rep1']}%, and {r['repaired']}% after 3 epochs") in text
    assert float(r["broken"]) < float(r["rep1"])
    slow, no_bn, no_aug, rep = (float(r[k]) for k in ("slow", "no_bn", "no_aug", "repaired"))
    assert f"the constant learning rate the most ({r['slow']}%)" in text and slow < min(no_bn, no_aug)
    assert f"BN {rep - no_bn:.0f} points ({r['no_bn']}%)" in text
    assert f"augmentation nothing in so short a run ({r['no_aug']}%)" in text and no_aug >= rep
    growth = re.search(r"\(the snippet\) ([\d.]+)x, F\(x\) \+ x ([\d.]+)x", out("f24b")).groups()
    assert (f"grew the signal faster ({growth[0]} against {growth[1]} times from block 1 to "
            f"block 3)") in text and float(growth[0]) > float(growth[1])
    resnet_ratio = re.findall(r"at batch 128: ratio ([\d.]+)", out("f38"))[1]
    assert f"batch 4 cost ResNet-20 a factor {resnet_ratio} in speed on the CPU" in text
    answer = _oneline(_source(_cell(nb05, "written-answer-3")))
    assert f"the repaired network's {r['repaired']}%" in answer


def test_05_answer_key_table_quotes_the_stored_run(nb05):
    """teaching/answer_key.md's table of 05's numbers is the stored run's."""
    key = (ROOT / "teaching" / "answer_key.md").read_text()
    key = _oneline(key[key.index("## 05 Tutorial forensics"):key.index("### 05.1")])
    r = _05_runs(nb05)
    no_bn_train = _pct(_printed(_cell(nb05, "f26")), r"train acc ([\d.]+)%")
    assert f"**trained** (train {no_bn_train}%, test {r['no_bn']}%)" in key
    assert f"batch 4: predictions change with the batch-mates for {r['b4']:.1f}% of images; " \
           f"batch 128: {r['b128']:.1f}%" in key
    assert f"lr 0.001 constant {r['slow']}%, one-cycle to 0.2 {r['repaired']}%" in key
    assert (f"the runnable snippet, 1 epoch at batch 4: test {r['broken']}%; the repaired "
            f"network after the same 10,000 images: {r['rep1']}%") in key
    no_bn, rep = float(r["no_bn"]), float(r["repaired"])
    assert (f"it trained to {r['no_bn']}% test accuracy, {rep - no_bn:.0f} points below the "
            f"repaired network's {r['repaired']}%") in key


# --- notebook 06: the lab -------------------------------------------------------------------

def test_06_the_lab_answers_as_fast_as_its_summary_says():
    nb = _notebook("06_interactive_lab.ipynb")
    summary = _oneline(_source(_cell(nb, "bbe34c02")))
    assert ("The lab answers in about a second at depth 20 and within a few seconds at depth "
            "110 on a CPU (timed above)") in summary
    text = _printed(_cell(nb, "lab-latency")) + _printed(_cell(nb, "5afcd7b0"))
    medians = {m[0].strip(): float(m[1]) for m in re.findall(
        r"^(view \d, depth \d+|Stop, ResNet-56)\s+([\d.]+) s", text, re.M)}
    assert set(medians) == {"view 2, depth 20", "view 2, depth 56", "view 2, depth 110",
                            "view 1, depth 110", "Stop, ResNet-56"}, medians
    # "about a second" at depth 20 and for Stop; "a few seconds" at depth 110.
    assert medians["view 2, depth 20"] <= 1.5 and medians["Stop, ResNet-56"] <= 1.5, medians
    assert max(medians.values()) <= 6, medians
    assert "ends the run within about a second" in _oneline(_source(_cell(nb, "59ecced4")))


def test_06_lesions_start_from_the_reference_networks_accuracy():
    """View 4 evaluates the stored reference plain-56 and ResNet-56: with every block on,
    each must score about what its own history says (a damaged weight file did not)."""
    from resnet_nb import reference
    nb = _notebook("06_interactive_lab.ipynb")
    text = _printed(_cell(nb, "169afbf8"))
    found = dict(re.findall(r"^(plain-56|ResNet-56 \(A\)): test accuracy ([\d.]+)% with every block",
                            text, re.M))
    for label, network in (("plain-56", "plain-56"), ("ResNet-56 (A)", "resnet-56")):
        stored = 100 * reference.load_history(network).last("test_acc")   # all 10,000 images
        assert abs(float(found[label]) - stored) < 5, (label, found[label], stored)


def test_06_quotes_the_reference_runs_training_error():
    from resnet_nb import reference
    text = _oneline(_source(_cell(_notebook("06_interactive_lab.ipynb"), "ae9e3eae")))
    error = {n: f"{100 * (1 - reference.load_history(n).last('train_acc')):.1f}%"
             for n in ("plain-56", "resnet-56")}
    assert (f"ended at {error['plain-56']} training error for plain-56 and {error['resnet-56']} "
            "for ResNet-56") in text


def test_06_compares_the_gradient_ratio_of_01_like_with_like():
    """View 2's plain call prints 01's statistic (first block over last), and the text says
    which batch each notebook measured it on."""
    nb06, nb01 = _notebook("06_interactive_lab.ipynb"), _notebook("01_degradation.ipynb")
    assert "v.reference.grad_ratio" in _source(_cell(nb06, "74f3ca26"))
    text = _oneline(_source(_cell(nb06, "94d24a7e")))
    assert "the gradient at the first block over the last" in text
    probe = re.search(r"on (\d+) random training images, the lab on its (\d+) fixed test images",
                      text)
    from resnet_nb.profiles import PROFILES
    assert probe and int(probe[1]) == PROFILES["cpu"].probe_batch, text
    assert int(probe[2]) == PROFILES["cpu"].lab_probe_batch
    assert "profile.probe_batch" in "".join(_source(c) for c in nb01["cells"])


def _lesion_drops(nb) -> tuple[float, dict]:
    """The reference ResNet-56's accuracy and {block: points lost alone} as 06 prints them."""
    text = _printed(_cell(nb, "d1f9d8c4"))
    base = float(re.search(r"^ResNet-56 \(A\): all blocks ([\d.]+)%", text, re.M)[1])
    row = text.split("points lost per block removed alone (block:points):")[1]
    drops = {int(b): float(d) for b, d in re.findall(r"(\d+):(-?\d+\.\d\d)\b", row)}
    assert sorted(drops) == list(range(1, 28)), drops
    return base, drops


def test_06_worked_answers_quote_the_stored_output():
    nb = _notebook("06_interactive_lab.ipynb")
    base, drops = _lesion_drops(nb)
    together = _printed(_cell(nb, "lesion-together")) or "".join(
        "".join(o["data"]["text/plain"]) for o in _cell(nb, "lesion-together")["outputs"]
        if "data" in o)
    assert "blocks switched off: 2, 3, 4, 5, 6, 7, 8, 9" in together
    now = dict(re.findall(r"^(plain-56|ResNet-56 \(A\)): test accuracy [\d.]+% with every "
                          r"block, ([\d.]+)% now", together, re.M))
    cost = sum(drops[b] for b in range(2, 10))          # the printout's drops are exact (2,000 images)
    answer = _oneline(_source(_cell(nb, "de5bdf3d-answer")))
    quoted = re.search(r"blocks 2 to 9 cost ([\d.]+) points alone, so the additive prediction "
                       r"is about (\d+)%; measured together, ResNet-56 keeps ([\d.]+)%", answer)
    assert quoted, answer
    assert quoted[1] == f"{cost:.1f}" and abs(int(quoted[2]) - (base - cost)) <= 0.6
    assert quoted[3] == now["ResNet-56 (A)"] and float(quoted[3]) < int(quoted[2]) - 5
    plain_all = re.search(r"^plain-56: all blocks ([\d.]+)%", _printed(_cell(nb, "d1f9d8c4")), re.M)[1]
    assert f"below plain-56's {plain_all}%" in answer and float(quoted[3]) < float(plain_all)
    key = _oneline((ROOT / "teaching" / "answer_key.md").read_text())
    assert _oneline(answer.split("first</summary>")[1].split("</details>")[0]).strip() in key
    ratios = _printed(_cell(nb, "74f3ca26"))
    at = dict(re.findall(r"^depth\s+(\d+): gradient at the first block / at the last: plain\s+(\S+)",
                         ratios, re.M))
    key = _oneline(_source(_cell(nb, "written-answer-1")))
    assert f"| original blocks | {at['20']} |" in key, (at, key)


# --- notebook 04: training ------------------------------------------------------------------

def test_04_converged_resnet20_is_quoted_as_printed():
    """04 evaluates the reference ResNet-20 on the live run's test images; the prose, the
    lesson plan and the 3-hour lab quote that printout, and 04 says the paper trained
    5.5 times as many iterations (64k against the reference run's 30 epochs)."""
    nb = _notebook("04_training_cifar10.ipynb")
    printed = _printed(_cell(nb, "5635c8f9"))
    live, converged = re.search(r"live run (\d+\.\d)%, reference ResNet-20 (\d+\.\d)%",
                                printed).groups()
    history = re.search(r"\(its stored history\): (\d+\.\d\d)%", printed).group(1)
    worst = re.search(r"worst class (\w+) \(", printed).group(1)
    lesson = (ROOT / "teaching" / "lesson_90min.md").read_text()
    assert f"| {live}% / {converged}% |" in lesson
    assert f"| {history}% ({100 - float(history):.2f}% error) |" in lesson
    lab = _oneline((ROOT / "teaching" / "lab_3h.md").read_text())
    assert f"{converged}% against the live run's {live}%, {worst} still the worst" in lab
    from resnet_nb import reference
    h = reference.load_history("resnet-20")
    ratio = 64_000 / len(h.step_loss)              # the history holds every step's loss
    assert f"{ratio:.1f} times as many iterations" in _oneline(_source(_cell(nb, "220bc858")))


def test_04_quotes_its_own_run():
    """The data section's image counts, the loop's 'difference is 0' and the loss quoted in
    the answer to exercise 3 are what the stored run printed."""
    nb = _notebook("04_training_cifar10.ipynb")
    train, test = re.search(r"train (\d[\d,]*\d) images, test (\d[\d,]*\d)",
                            _printed(_cell(nb, "32421ce2"))).groups()
    assert (f"a random {train} training and {test} test images under `cpu`"
            in _oneline(_source(_cell(nb, "d32cc481"))))
    assert "largest difference in the per-step losses: 0\n" in _printed(_cell(nb, "9f09618d"))
    assert _source(_cell(nb, "011e7737")).startswith("On a CPU the difference is 0")
    losses = re.findall(r"epoch \d+: train loss ([\d.]+)",
                        _printed(_cell(nb, "3a4a8dae")).split("plain-20")[0])
    # "on 2,000 test images the standard error of an accuracy near 50% is already 1.1 points"
    acc = float(re.search(r"ResNet-20 ([\d.]+)%, plain-20", _printed(_cell(nb, "e0478d1e")))
                .group(1)) / 100
    n = int(test.replace(",", ""))
    assert abs(acc - 0.5) < 0.1
    assert (f"on {test} test images the standard error of an accuracy near 50% is already "
            f"{100 * (acc * (1 - acc) / n) ** 0.5:.1f} points"
            in _oneline(_source(_cell(nb, "66ea12e3"))))
    key = _oneline((ROOT / "teaching" / "answer_key.md").read_text())
    floor = 0.500
    assert (f"ended its last epoch at a training loss of {losses[-1]} (stored in 04), so "
            f"about {float(losses[-1]) - floor:.2f} of it is left to learn") in key


def test_04_asserts_what_its_prose_says_bit_for_bit():
    """The resume cell and the hand-written loop assert (on a CPU) what the text claims."""
    nb = _notebook("04_training_cifar10.ipynb")
    resume = _source(_cell(nb, "f379cb17"))
    assert "assert h_resumed.step_loss == h_resnet.step_loss and weights_diff == 0" in resume
    printed = _printed(_cell(nb, "f379cb17"))
    assert "same per-step losses as the uninterrupted run: True" in printed
    assert "largest difference in any weight: 0\n" in printed
    restored = next(c for c in nb["cells"] if "restored.load_state_dict" in _source(c))
    assert "assert same" in _source(restored)
    assert "restored weights equal the trained network's: True" in _printed(restored)


def test_the_instructor_guide_lists_the_recorded_times():
    """teaching/README.md's table of computer times is notebooks/timings.json's."""
    timings = json.loads((NOTEBOOKS / "timings.json").read_text())["notebooks"]
    rows = dict((n, (float(s.replace(",", "")), float(v))) for n, s, v in re.findall(
        r"^\| (\d\d) \| ([\d,]+\.\d) s[^|]*\| ([\d.]+) images/s \|$",
        (ROOT / "teaching" / "README.md").read_text(), re.M))
    assert set(rows) == {name[:2] for name in timings}
    for name, runs in timings.items():
        assert rows[name[:2]] == (runs["cpu"]["seconds"], runs["cpu"]["images_per_second"]), name
