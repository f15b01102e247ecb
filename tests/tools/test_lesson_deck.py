"""The 90-minute lesson's deck (tools/lesson_deck.py, teaching/lesson_slides.md).

- The slide list reads: at most 60 slides, each with speaker notes of some substance, each
  showing cells that exist; the reader refuses a slide without a `Cells:` line, without notes,
  with a cell that does not exist or that holds a worked solution.
- Every number in a slide's notes is one that the notebooks it shows print or say, so a
  regenerated notebook cannot leave a stale number in the notes.
- teaching/lesson_90min.md gives each segment the slides the list gives it.
- The deck, built by make_slides into a temporary folder, opens from disk in headless chromium
  with no network (the checks of tests/tools/test_slides.py: every request answered, every slide and
  image there, no slide with several cells past the canvas, formulas typeset), with reveal.js's
  notes plugin and non-empty notes on every slide, and shows no run of words from a worked
  solution or the answer key (tests/site/test_site.py's check, with the slide list's own text not
  counted as published); the same check finds a solution quoted in the notes.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from browsers import unavailable
from solutions import plain, secret_runs, shown_secrets
from tools import lesson_deck

ROOT = Path(__file__).resolve().parents[2]
MAX_SLIDES = 60
SLIDES = lesson_deck.read_slides()
NOTEBOOKS = lesson_deck.course_notebooks()
# A number as the notes quote one: 6.27e+03, 0.35, 85.7%, 2,752, 50,000.
EXERCISE = re.compile(r"\b(?:exercises?|answer) \d\d\.\d\b")   # exercise 06.1 is a name
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?%|\d+\.\d+(?:e[+-]?\d+)?|\d{1,3}(?:,\d{3})+")


def test_the_lesson_has_at_most_60_slides_each_with_notes():
    assert 20 <= len(SLIDES) <= MAX_SLIDES, len(SLIDES)
    for slide in SLIDES:
        assert len(re.findall(r"\w+", slide.notes)) >= 25, (slide.number, slide.title)
    deck = lesson_deck.lesson_notebook(SLIDES)
    types = [c["metadata"]["slideshow"]["slide_type"] for c in deck["cells"]]
    assert types.count("slide") == len(SLIDES) == types.count("notes")
    # every slide's notes come right after its first cell, so nbconvert puts them in its section
    assert all(types[i + 1] == "notes" for i, t in enumerate(types) if t == "slide")


def test_no_slide_shows_a_worked_solution_cell():
    for slide in SLIDES:
        for nb, cid, _ in slide.cells:
            cell = next(c for c in NOTEBOOKS[nb]["cells"] if c.get("id") == cid)
            source = "".join(cell["source"])
            assert "SOLUTION" not in source and "Worked solution" not in source, (nb, cid)


@pytest.mark.parametrize("text, message", [
    ("### A\n\nsome notes without cells\n", "its first line must be 'Cells:"),
    ("### A\n\nCells: 01/c02\n\n", "no speaker notes"),
    ("### A\n\nCells: 01/no-such-cell\n\nnotes\n", "no cell with id 'no-such-cell'"),
    ("### A\n\nCells: 01/c23\n\nnotes\n", "holds a worked solution"),
    ("### A\n\nCells: 01/c02 (output)\n\nnotes\n", "no stored output"),
    ("### A\n\nCells: 01/c02 (sideways)\n\nnotes\n", "is not NN/cell-id"),
])
def test_the_reader_refuses_a_broken_slide_list(tmp_path, text, message):
    path = tmp_path / "slides.md"
    path.write_text("## 1. Segment\n\n" + text, encoding="utf-8")
    with pytest.raises(lesson_deck.SlideListError, match=re.escape(message)):
        lesson_deck.lesson_notebook(lesson_deck.read_slides(path), NOTEBOOKS)


def _notebook_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def stale_numbers(slides, notebooks) -> list[str]:
    """Each number in a slide's notes that no notebook the slide shows prints or says."""
    found = []
    for slide in slides:
        text = "\n".join(_notebook_text(notebooks[nb]) for nb in {c[0] for c in slide.cells})
        found += [f"slide {slide.number} ({slide.title}): {n}"
                  for n in NUMBER.findall(EXERCISE.sub("", slide.notes)) if n not in text]
    return found


def test_every_number_in_the_notes_is_in_the_notebooks_the_slide_shows():
    assert not stale_numbers(SLIDES, NOTEBOOKS)
    # The check itself: a number the stored output no longer prints is found.
    stale = [lesson_deck.Slide(1, "s", "t", (("04", "e0478d1e", "output"),),
                               "ResNet-20 ended at 53.4% test accuracy.")]
    assert stale_numbers(stale, NOTEBOOKS) == ["slide 1 (t): 53.4%"]


def test_the_lesson_plan_gives_each_segment_its_slides():
    plan = (ROOT / "teaching" / "lesson_90min.md").read_text(encoding="utf-8")
    for name, first, last in lesson_deck.segments(SLIDES):
        heading = re.escape(name)
        m = re.search(rf"^## {heading}\n+\*\*Slides:\*\* (\d+)-(\d+)\b", plan, re.M)
        assert m, f"lesson_90min.md has no '## {name}' followed by '**Slides:** N-M'"
        assert (int(m[1]), int(m[2])) == (first, last), name
    assert f"{len(SLIDES)} slides" in plan and f"| **{len(SLIDES)}** |" in plan
    guide = (ROOT / "teaching" / "README.md").read_text(encoding="utf-8")
    assert f"{len(SLIDES)} slides" in guide


# --- the deck in a browser ----------------------------------------------------------------

@pytest.fixture(scope="module")
def deck(tmp_path_factory):
    for module in ("nbconvert", "sphinx_revealjs", "jupyter_server_mathjax"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"the slide decks need {module}: pip install -e \".[dev]\"")
    from tools import make_slides
    out = tmp_path_factory.mktemp("slides")
    make_slides.copy_assets(out)
    return make_slides.build_lesson(out)


_NOTES = """() => ({plugin: Reveal.hasPlugin('notes'),
    notes: Reveal.getSlides().map(s => (Reveal.getSlideNotes(s) || '').replace(/<[^>]+>/g, ' ')
                                       .trim())})"""


@pytest.mark.browser
def test_the_deck_opens_offline_with_notes_on_every_slide(deck, browser):
    from test_slides import deck_problems
    problems, state = deck_problems(browser, deck, len(SLIDES))
    assert not problems, "\n  ".join(problems)
    figures = sum("image/png" in o.get("data", {}) for s in SLIDES for nb, cid, _ in s.cells
                  for c in NOTEBOOKS[nb]["cells"] if c.get("id") == cid
                  for o in c.get("outputs", []))
    assert len(state["images"]) >= figures > 0
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(deck.as_uri())
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        notes = page.evaluate(_NOTES)
    finally:
        page.close()
    assert notes["plugin"], "no speaker-notes plugin: S would open nothing"
    assert len(notes["notes"]) == len(SLIDES)
    for slide, text in zip(SLIDES, notes["notes"]):
        assert len(text.split()) >= 20, (slide.number, slide.title, text[:80])


def test_the_deck_shows_no_worked_solution(deck, tmp_path):
    secret = secret_runs(leave_out=(lesson_deck.SLIDE_LIST.name,))
    assert not shown_secrets(plain(deck.read_text(encoding="utf-8")), secret)
    # The check itself: notes that quote the answer to exercise 06.3 are found.
    answer = next(c for c in NOTEBOOKS["06"]["cells"] if c["id"] == "de5bdf3d-answer")
    quoted = "".join(answer["source"]).split("<summary>")[1]
    slide = lesson_deck.Slide(1, "s", "t", (("06", "5956ac4b", ""),), quoted)
    nb = lesson_deck.lesson_notebook([slide], NOTEBOOKS)
    assert shown_secrets(plain(json.dumps(nb)), secret)
