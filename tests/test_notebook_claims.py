"""What the notebooks' prose says about their own stored outputs is what those outputs show.

The committed notebooks carry the outputs of a `cpu`-profile run (scripts/run_notebooks.py),
and nbval runs them under the `smoke` profile, whose numbers differ. Claims that hold at every
profile are asserted in the notebooks themselves. Claims about the stored run (numbers quoted
in the markdown, "X trains worse than Y") are checked here, against the stored outputs: a
regeneration whose numbers change, or an edit of the prose, cannot leave the two disagreeing
without a test failing. When one fails, rewrite the prose for the new outputs (or regenerate).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
def table01(nb01):
    """{network: (train acc last epoch, train acc fixed sample, test acc)} from the stored table."""
    rows = {}
    for line in _printed(_cell(nb01, "c13")).splitlines():
        m = re.match(r"^(plain-\d+|ResNet-\d+ \(A\))\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m:
            rows[m.group(1)] = tuple(float(v) for v in m.groups()[1:])
    assert len(rows) == 4, rows
    return rows


def test_01_summary_quotes_the_stored_run(nb01, table01):
    summary = _oneline(_source(_cell(nb01, "c22")).split("## Summary")[1].split("## Exercises")[0])
    p20, p56 = table01["plain-20"][0], table01["plain-56"][0]
    r20, r56 = table01["ResNet-20 (A)"][0], table01["ResNet-56 (A)"][0]
    # "plain-56 ended at a training accuracy of 0.203, plain-20 at 0.380": degradation.
    assert f"plain-56 ended at a training accuracy of {p56:.3f}, plain-20 at {p20:.3f}" in summary
    assert p56 < p20
    # "ResNet-56 (0.376) trains far better than its plain twin, yet behind ResNet-20 (0.491)
    #  and only about level with plain-20."
    assert f"ResNet-56 ({r56:.3f}) trains far better than its plain twin" in summary
    assert r56 - p56 > 0.1
    assert f"yet behind ResNet-20 ({r20:.3f})" in summary and r56 < r20
    assert "about level with plain-20" in summary and abs(r56 - p20) < 0.02
    # The summary must not claim what the run does not show.
    assert "does not suffer" not in summary


def test_01_what_this_run_shows_is_printed_from_the_table(nb01, table01):
    text = _printed(_cell(nb01, "c15"))
    p20, p56 = table01["plain-20"][0], table01["plain-56"][0]
    assert f"Degradation: plain-56 trains worse than plain-20 (training accuracy {p56:.3f}" in text


def test_01_warm_up_jump_is_as_described(nb01):
    peaks = {}
    for line in _printed(_cell(nb01, "c16b")).splitlines():
        m = re.match(r"^(\S+(?: \(A\))?)\s+loss at iteration 1: ([\d.]+); highest in the first "
                     r"(\d+): ([\d.]+), at iteration (\d+) \(learning rate ([\d.]+)\)", line)
        if m:
            peaks[m.group(1)] = (float(m.group(2)), float(m.group(4)), float(m.group(6)))
    assert len(peaks) == 4, peaks
    # "Only ResNet-56's loss rises, well above where it started, while the learning rate is
    #  about halfway up."
    first, highest, lr = peaks["ResNet-56 (A)"]
    assert highest > first + 1.0 and 0.03 <= lr <= 0.07
    for name in ("plain-20", "plain-56", "ResNet-20 (A)"):
        assert peaks[name][1] < peaks[name][0] + 0.1, name
    replay = _printed(_cell(nb01, "c16d"))
    rms = dict(re.findall(r"^(plain-56|ResNet-56 \(A\))\s+at initialisation, the classifier's "
                          r"input has RMS ([\d.]+)", replay, re.M))
    # "ResNet-56's classifier receives inputs about six times as large as plain-56's."
    assert 5 <= float(rms["ResNet-56 (A)"]) / float(rms["plain-56"]) < 7
    runs = re.findall(r"learning rate (one-cycle|held at 0.01).*highest loss ([\d.]+); logits' RMS "
                      r"([\d.]+) at first, up to ([\d.]+)", replay)
    (_, loss_up, l0, l_up), (_, loss_held, h0, h_up) = runs
    # "its logits grow about threefold ... held at 0.01, the logits stay small and the loss
    #  never rises above its first value."
    assert 2.5 <= float(l_up) / float(l0) <= 3.5 and float(h_up) / float(h0) < 1.3
    assert float(loss_held) == pytest.approx(first, abs=0.005) and float(loss_up) == highest


def test_01_timing_claims(nb01):
    count = _printed(_cell(nb01, "c16f"))
    shares = [float(s) for s in re.findall(r"\(([\d.]+)% of that\)", count)]
    assert len(shares) == 3 and all(0.15 <= s < 0.25 for s in shares)   # "about 0.2%"
    text = _printed(_cell(nb01, "c16h"))
    speeds = {m[0]: (float(m[1]), float(m[2]), float(m[3])) for m in re.findall(
        r"^(\S+(?: \(A\))?)\s+(\d+) images/s \(median of 3; (\d+) to (\d+)\)", text, re.M)}
    assert len(speeds) == 4, speeds
    # "each ResNet trains as fast as its plain twin, within the spread of the three repeats"
    for depth in (20, 56):
        _, plo, phi = speeds[f"plain-{depth}"]
        _, rlo, rhi = speeds[f"ResNet-{depth} (A)"]
        assert rlo <= phi and plo <= rhi, depth              # the ranges overlap
    assert "within the spread of the three repeats" in _oneline(_source(_cell(nb01, "c16i")))


def test_readme_degradation_row_matches_notebook_01(table01):
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| degradation at the"))
    for name, label in (("plain-20", "plain-20"), ("plain-56", "plain-56"),
                        ("ResNet-20 (A)", "ResNet-20"), ("ResNet-56 (A)", "ResNet-56")):
        assert f"{label} {table01[name][0]:.3f}" in row, (label, row)


# --- notebook 06: the lab -------------------------------------------------------------------

def test_06_the_lab_answers_as_fast_as_its_header_says():
    nb = _notebook("06_interactive_lab.ipynb")
    header = _oneline(next(_source(c) for c in nb["cells"] if "**Time:**" in _source(c)))
    assert ("answers a change of setting in about a second at depth 20 and within a few "
            "seconds at depth 110 on a CPU") in header
    text = _printed(_cell(nb, "5afcd7b0"))
    medians = {m[0].strip(): float(m[1]) for m in re.findall(
        r"^(view \d, depth \d+|Stop, ResNet-56)\s+([\d.]+) s", text, re.M)}
    assert set(medians) >= {"view 2, depth 20", "view 2, depth 110", "view 1, depth 110",
                            "Stop, ResNet-56"}, medians
    # "about a second" at depth 20 and for Stop; "a few seconds" at depth 110.
    assert medians["view 2, depth 20"] <= 1.5 and medians["Stop, ResNet-56"] <= 1.5, medians
    assert max(medians.values()) <= 6, medians
    assert "ends the run within about a second" in _oneline(_source(_cell(nb, "59ecced4")))


def test_06_lesions_start_from_the_reference_networks_accuracy():
    """View 4 evaluates the stored reference plain-56 and ResNet-56: with every block on,
    each must score about what its own history says (a damaged weight file did not)."""
    from resnet_nb import reference
    nb = _notebook("06_interactive_lab.ipynb")
    text = next(_printed(c) for c in nb["cells"] if "lesion_view(nets" in _source(c))
    found = dict(re.findall(r"^(plain-56|ResNet-56 \(A\)): test accuracy ([\d.]+)% with every block",
                            text, re.M))
    for label, network in (("plain-56", "plain-56"), ("ResNet-56 (A)", "resnet-56")):
        stored = 100 * reference.load_history(network).last("test_acc")   # all 10,000 images
        assert abs(float(found[label]) - stored) < 5, (label, found[label], stored)
