"""Build a reveal.js slide deck of every notebook, to present without the internet.

    python -m tools.make_slides                     # slides/NN_topic.slides.html, one per notebook,
                                                    # and slides/lesson_90min.slides.html
    python -m tools.make_slides --out DIR notebooks/02_residual_formulation.ipynb
    python -m tools.make_slides --check             # the lesson's slide list; builds nothing

Each deck is `jupyter nbconvert --to slides` of the committed notebook with its stored outputs
(nothing is executed), cut into slides by the cells' `slideshow` metadata
(tools/mark_slides.py writes it). The 90-minute lesson's deck shows the cells that
teaching/lesson_slides.md lists, with its speaker notes (tools/lesson_deck.py). Figures are
embedded in the HTML. What a deck loads
besides itself is copied into the output folder, so the folder works when copied to a
machine without internet (open a deck in a browser; S opens the speaker notes):

- reveal.js (5.x) from the sphinx-revealjs package, which ships reveal.js's dist/ and plugin/
  folders unchanged (into DIR/reveal.js/);
- MathJax 2.7 from the jupyter-server-mathjax package (into DIR/mathjax/).

nbconvert's stock reveal template also loads jQuery, require.js and Mermaid from a CDN; the
template in tools/slide_templates/ extends it without them. The canvas is 1280x720, the
size mark_slides.py fits the slides to; reveal.js scales it to the screen.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "slide_templates"
REVEAL_DIR, MATHJAX_DIR = "reveal.js", "mathjax"
WIDTH, HEIGHT = 1280, 720


def reveal_source() -> Path:
    """The folder holding reveal.js's dist/ and plugin/ (from the sphinx-revealjs package)."""
    try:
        import sphinx_revealjs
    except ImportError:
        raise SystemExit("reveal.js comes from the sphinx-revealjs package: "
                         'pip install -e ".[dev]" (or pip install sphinx-revealjs)') from None
    path = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
    if not (path / "dist" / "reveal.js").is_file():
        raise SystemExit(f"no reveal.js in {path}: this sphinx-revealjs has another layout")
    return path


def mathjax_source() -> Path:
    """The folder holding MathJax.js (from the jupyter-server-mathjax package)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise SystemExit("MathJax comes from the jupyter-server-mathjax package: "
                         'pip install -e ".[dev]" (or pip install jupyter-server-mathjax)') \
            from None
    path = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (path / "MathJax.js").is_file():
        raise SystemExit(f"no MathJax.js in {path}")
    return path


def exporter():
    """nbconvert's SlidesExporter, set up for the offline copies beside the decks."""
    from nbconvert import SlidesExporter
    return SlidesExporter(
        template_name="resnet_nb_reveal", extra_template_basedirs=[str(TEMPLATES)],
        reveal_url_prefix=REVEAL_DIR, reveal_theme="white",
        reveal_width=str(WIDTH), reveal_height=str(HEIGHT), reveal_number="c/t",
        mathjax_url=f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe")


def copy_assets(out: Path) -> None:
    """reveal.js and MathJax into `out`, replacing older copies."""
    for source, name in ((reveal_source(), REVEAL_DIR), (mathjax_source(), MATHJAX_DIR)):
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)


def build(notebooks: list[Path], out: Path) -> list[Path]:
    """Write one deck per notebook into `out` (with its reveal.js and MathJax); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    slides = exporter()
    decks = []
    for path in notebooks:
        body, _ = slides.from_filename(str(path))
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(body, encoding="utf-8")
        decks.append(deck)
    return decks


def build_lesson(out: Path, slide_list: Path | None = None) -> Path:
    """Write the lesson's deck into `out` (beside the assets `build` copies there); its path."""
    import nbformat

    from tools import lesson_deck
    slides = lesson_deck.read_slides(slide_list or lesson_deck.SLIDE_LIST)
    nb = nbformat.reads(json.dumps(lesson_deck.lesson_notebook(slides)), as_version=4)
    body, _ = exporter().from_notebook_node(nb, resources={"metadata": {"name": "lesson"}})
    deck = out / f"{lesson_deck.DECK_NAME}.slides.html"
    deck.write_text(body, encoding="utf-8")
    return deck


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to convert (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "slides",
                        help="folder for the decks and their reveal.js (default: slides/)")
    parser.add_argument("--check", action="store_true",
                        help="check the lesson's slide list against the notebooks; build nothing")
    args = parser.parse_args(argv)
    if args.check:
        from tools import lesson_deck
        return lesson_deck.main([])
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    decks = build(notebooks, args.out)
    if not args.notebooks:
        from tools.lesson_deck import SlideListError
        try:
            decks.append(build_lesson(args.out))
        except SlideListError as error:
            raise SystemExit(f"teaching/lesson_slides.md: {error}") from None
    for deck in decks:
        print(deck)
    print(f"open one in a browser; the folder {args.out} can be copied to a machine without "
          "internet as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
