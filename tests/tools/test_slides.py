"""The slide decks: every notebook presents as reveal.js slides, offline, with all its slides
and figures.

- The committed notebooks carry the `slideshow` metadata that tools/mark_slides.py derives
  from them (so it stays in sync after an edit), and the script changes nothing else.
- tools/make_slides.py builds a deck of every committed notebook (stored outputs, nothing
  executed) into a temporary folder, and one headless chromium (Debian's, driven by
  Playwright as in tests/browser/test_jupyterlab.py) opens each deck from disk with no network. Each
  deck must load nothing that fails (reveal.js, MathJax and fonts come from the folder), start
  reveal.js with as many slides as the notebook's metadata asks for, show every image
  (naturalWidth > 0), and no slide with more than one cell may run past the 1280x720 canvas
  (a single cell taller than a slide cannot be split by metadata; the deck scrolls it).
- The same check fails on a deck with a broken image and a missing slide.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from browsers import ARTIFACTS, unavailable


ROOT = Path(__file__).resolve().parents[2]


from tools import make_slides, mark_slides  # noqa: E402

NOTEBOOKS = mark_slides.course_notebooks(ROOT)
# A slide may exceed the canvas by this much before it counts as overflowing (borders, rounding).
OVERFLOW_TOLERANCE = 1.05


# --- the metadata ------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_the_slide_metadata_of_mark_slides(path):
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    mark_slides.mark(nb)
    assert mark_slides.dumps(nb) == text, \
        f"{path.name}: slide metadata out of date; run: python -m tools.mark_slides"
    types = [c["metadata"]["slideshow"]["slide_type"] for c in nb["cells"]]
    assert set(types) <= set(mark_slides.SLIDE_TYPES)
    assert types[0] == "skip" and types[1] == "slide"           # the badge; the title
    # A deck a teacher can present: a few dozen slides, not one per line.
    assert 5 <= mark_slides.expected_slide_count(nb) <= 60


def test_marking_sets_only_the_slideshow_key_and_is_idempotent():
    nb = json.loads(NOTEBOOKS[-1].read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["metadata"].pop("slideshow", None)
    # Another branch edits exercise cells: a changed source and other metadata stay as they are.
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[-1]["source"] = "# an edited exercise cell\nprint(1)\n"
    code[-1]["metadata"]["tags"] = ["exercise"]
    before = copy.deepcopy(nb)
    assert mark_slides.mark(nb) is True
    for old, new in zip(before["cells"], nb["cells"]):
        assert {k: v for k, v in new["metadata"].items() if k != "slideshow"} == old["metadata"]
        assert {k: v for k, v in new.items() if k != "metadata"} == \
            {k: v for k, v in old.items() if k != "metadata"}
    assert nb["metadata"] == before["metadata"]
    assert mark_slides.mark(nb) is False


def test_slide_rules():
    md = lambda text: {"cell_type": "markdown", "metadata": {}, "source": text}
    code = lambda text: {"cell_type": "code", "metadata": {}, "source": text, "outputs": [],
                         "execution_count": 1}
    prose = "\n\n".join(["word " * 60] * 4)                      # ~ 12 lines of prose
    long_prose = "\n\n".join(["word " * 100] * 6)                 # ~ 30 lines: over a slide
    nb = {"cells": [md("# Title\n\nGoal: x."), code("import torch"),
                    md("## Section"), md("Some prose."), code("x = 1"),
                    md("### Sub"), md(prose), md("What this shows."), code("y = 2\n" * 5),
                    md("**Predict first.** Which?"), code("z = 3"),
                    md("<details><summary>Answer</summary>\n\n" + long_prose + "\n</details>"),
                    md("<details><summary>Short</summary>\nyes\n</details>")]}
    assert mark_slides.slide_types(nb) == [
        "slide", "-", "slide", "-", "-", "subslide", "-",
        "subslide", "-",          # the prose that explains a code cell moves with it
        "-", "fragment",          # the answer to a predict-first prompt on the next key press
        "notes", "-"]             # a long hidden answer goes to the speaker notes
    nb["cells"] = [md("# T")] + [code("\n".join(["a = 1"] * 20)) for _ in range(2)]
    assert mark_slides.slide_types(nb) == ["slide", "-", "subslide"]
    for cell, t in zip(nb["cells"], ("slide", "-", "subslide")):
        cell["metadata"]["slideshow"] = {"slide_type": t}
    assert mark_slides.expected_slide_count(nb) == 2
    nb["cells"][0]["metadata"]["slideshow"] = {"slide_type": "skip"}
    assert mark_slides.expected_slide_count(nb) == 2             # the first shown cell opens one


# --- the decks in a browser ----------------------------------------------------------

@pytest.fixture(scope="module")
def slide_tools():
    """make_slides.py's packages (the [dev] extra): skipped without them, as the browser tests
    are without chromium (e.g. in .ci/floors), and a failure in CI."""
    for module in ("nbconvert", "sphinx_revealjs", "jupyter_server_mathjax"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"the slide decks need {module}: pip install -e \".[dev]\"")


@pytest.fixture(scope="module")
def decks(slide_tools, tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    return {deck.name.split(".")[0]: deck for deck in make_slides.build(NOTEBOOKS, out)}


#: Every slide (inner <section>): its height, how many cells it holds; every image's state.
#: reveal.js shows only the slides near the current one; for one layout pass instead of one per
#: slide, a style shows them all at the deck's width, unscrolled, while they are measured.
_DECK_STATE = """async () => {
    const mathjaxIdle = () => !window.MathJax || !MathJax.Hub ||
        (MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running);
    for (let i = 0; i < 200 && !mathjaxIdle(); i++) {
        await new Promise(r => setTimeout(r, 50));
    }
    const measure = document.createElement('style');
    measure.textContent = `.reveal .slides section { display: block !important;
        position: static !important; transform: none !important; max-height: none !important;
        overflow: visible !important; }`;
    document.head.appendChild(measure);
    const slides = [...document.querySelectorAll('.reveal .slides > section > section')].map(
        (section, i) => ({index: i, height: section.scrollHeight,
                          cells: section.querySelectorAll(':scope > .jp-Cell').length,
                          text: section.innerText.trim().slice(0, 60)}));
    measure.remove();
    const images = [...document.images].map(img => ({
        src: img.src.slice(0, 60), complete: img.complete, width: img.naturalWidth}));
    return {total: Reveal.getTotalSlides(), slides, images,
            height: Reveal.getConfig().height,
            mathErrors: document.querySelectorAll('.MathJax_Error, .merror').length};
}"""


def _mathjax_font_probe(url: str) -> bool:
    """The two loads MathJax 2 tries and does without: a test @font-face at about:blank (no
    resource at all), and its TeX script font, which the jupyter-server-mathjax copy leaves out
    (it ships the STIX-Web fonts, which then draw \\mathcal: checked by eye in the decks and
    by the count of formulas that failed to typeset)."""
    return url == "about:blank" or "/mathjax/fonts/HTML-CSS/TeX/otf/" in url


def deck_problems(browser, deck: Path, expected_slides: int) -> tuple[list[str], dict]:
    """Open `deck` from disk in a new page; every problem found, as sentences, and the state."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    failed = []
    page.on("requestfailed", lambda r: _mathjax_font_probe(r.url) or
            failed.append(f"{r.url[:120]} ({r.failure})"))
    page.on("pageerror", lambda e: failed.append(f"script error: {e}"))
    try:
        page.goto(deck.as_uri())
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        state = page.evaluate(_DECK_STATE)
        Path(ARTIFACTS).mkdir(exist_ok=True)
        page.evaluate("Reveal.slide(0, 0)")
        page.screenshot(path=str(ARTIFACTS / f"{deck.name.split('.')[0]}-slides.png"))
    finally:
        page.close()
    problems = [f"request failed: {f}" for f in failed]
    if state["total"] != expected_slides:
        problems.append(f"{state['total']} slides, the metadata asks for {expected_slides}")
    problems += [f"broken image {img['src']}..." for img in state["images"]
                 if not img["complete"] or img["width"] == 0]
    limit = state["height"] * OVERFLOW_TOLERANCE
    problems += [f"slide {s['index']} ({s['text']!r}) is {s['height']} px tall for a "
                 f"{state['height']} px slide, with {s['cells']} cells"
                 for s in state["slides"] if s["height"] > limit and s["cells"] > 1]
    if state["mathErrors"]:
        problems.append(f"{state['mathErrors']} formulas failed to typeset")
    return problems, state


@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_deck_opens_offline_with_every_slide_and_image(path, decks, browser):
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems, state = deck_problems(browser, decks[path.stem], mark_slides.expected_slide_count(nb))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)
    figures = sum("image/png" in o.get("data", {}) for c in nb["cells"]
                  if c["metadata"]["slideshow"]["slide_type"] not in ("skip", "notes")
                  for o in c.get("outputs", []))
    assert len(state["images"]) >= figures, f"{path.name}: {figures} figures, " \
        f"{len(state['images'])} images in the deck"


@pytest.mark.browser
def test_the_deck_check_fires_on_a_broken_image_and_a_missing_slide(slide_tools, tmp_path,
                                                                    browser):
    """A copy of a notebook with figures: one figure's PNG corrupted and one slide's metadata
    dropped (the deck then has one slide fewer than the committed notebook's metadata says)."""
    source = next(p for p in NOTEBOOKS if "image/png" in p.read_text())
    nb = json.loads(source.read_text(encoding="utf-8"))
    expected = mark_slides.expected_slide_count(nb)
    figure = next(o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in
                  o.get("data", {}))
    figure["data"]["image/png"] = "bm90IGEgcG5n\n"                  # base64 of "not a png"
    later = [c for c in nb["cells"] if c["metadata"]["slideshow"]["slide_type"] == "subslide"]
    later[-1]["metadata"]["slideshow"]["slide_type"] = "-"
    broken = tmp_path / source.name
    broken.write_text(json.dumps(nb), encoding="utf-8")
    (deck,) = make_slides.build([broken], tmp_path / "slides")
    problems, _ = deck_problems(browser, deck, expected)
    assert any(p.startswith("broken image") for p in problems), problems
    assert any(f"{expected - 1} slides, the metadata asks for {expected}" in p
               for p in problems), problems
