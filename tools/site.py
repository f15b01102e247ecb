"""Build the course's website: every notebook with its stored outputs, readable without a kernel.

    python -m tools site [--out build/site] [--no-widgets]

needs the `[site]` extra (`pip install -e ".[site]"`: Sphinx with myst-nb and the book theme)
and, the first time, npm (the scripts below). The result is a static folder (default
build/site/, git-ignored): open build/site/index.html, or put the folder on any static host
(.github/workflows/site.yml publishes it on GitHub Pages). The pages:

- the landing page: the README's opening and its course map;
- the eight notebooks with their stored outputs (nothing is executed for them), as the students
  get them (tools/make_student_copies.py): the worked solutions and the written answers are left
  out, not folded. Each page links "open in Colab" (the repository of pyproject.toml's
  [project.urls], at the class release branch, [tool.resnet_nb] release-branch), "open in the
  class hub" (an nbgitpuller link, where [tool.resnet_nb] hub-url is set) and "download the
  notebook" (the student copy, served beside the pages in downloads/). The Colab badge and the
  Colab install cell are left out of the pages;
- the first views of the widgets of the notebooks that have them, from one run of each under
  the smoke profile (tools/site_widgets.py; cached), with one line saying where the controls
  work; `--no-widgets` leaves them out (no run, no data needed);
- the instructor's guide: teaching/, without the answer key;
- the reference runs: reference/README.md, or, while there is none, a page made from what
  resnet_nb.reference loads (the sets, how they were made, the paper-against-measured table).

Links between these files point to the pages; links to other files of the repository point to
it on GitHub. Nothing is loaded from a third party when a page is read: MathJax and the widget
manager are served from the site itself (tools/site_assets.py).
"""
from __future__ import annotations

import argparse
import copy
import json
import posixpath
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools import site_assets, site_widgets
from tools.make_student_copies import TEXT_STUB, course_notebooks, make_student_folder
from tools.sync_repo_url import Repository, is_badge_cell, is_install_cell, read_repository

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "site"
SOURCE = ROOT / "build" / "site-source"      # the Sphinx project the build writes, then builds
DOWNLOADS = "downloads"                      # the student copies, beside the pages
SITE_TEXT_STUB = "*Your answer goes here, in your copy of the notebook.*"
ANSWER_KEY = "answer_key.md"
LINK = re.compile(r"(?<!!)(\[[^\]]*\])\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")
BADGE_LINE = re.compile(r"^\s*\[!\[.*$\n?", re.M)


MARKER = ".resnet-nb-site"                   # in every folder this command writes and replaces


class SiteError(RuntimeError):
    """The site cannot be built as asked; the message says what to do."""


def replace_folder(path: Path, remove: bool = True) -> None:
    """Remove `path` to write it anew, if this command wrote it (or it is empty); else refuse
    (with remove=False, only check)."""
    if path.exists():
        if not path.is_dir() or (any(path.iterdir()) and not (path / MARKER).exists()):
            raise SiteError(f"{path} exists and is not a folder this command wrote (no {MARKER} "
                            "in it): choose another --out, or remove it")
        if remove:
            shutil.rmtree(path)


@dataclass(frozen=True)
class Links:
    """Where the pages' links point: the repository (one configured address) and the hub."""

    repo: Repository
    release_branch: str
    hub_url: str

    def colab(self, notebook: str) -> str:
        branch = self.release_branch or self.repo.branch
        return Repository(self.repo.owner, self.repo.name, branch).colab_url(notebook)

    def hub(self, notebook: str) -> str | None:
        if not self.hub_url:
            return None
        from resnet_nb.hub import nbgitpuller_link
        return nbgitpuller_link(self.hub_url, self.repo.url,
                                self.release_branch or self.repo.branch, f"notebooks/{notebook}")

    def github(self, path: str, anchor: str = "") -> str:
        kind = "tree" if (ROOT / path).is_dir() else "blob"
        return f"{self.repo.url}/{kind}/{self.repo.branch}/{path}".rstrip("/") + anchor


def read_links(pyproject: Path = ROOT / "pyproject.toml") -> Links:
    repo = read_repository(pyproject)
    return Links(repo, repo.release_branch, repo.hub_url)


# --- links between the pages ------------------------------------------------------------------

def slug(heading: str) -> str:
    """A heading's anchor as GitHub and MyST (myst_heading_anchors) make it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def rewrite_links(text: str, page: str, pages: dict[str, str], links: Links,
                  anchors: dict[str, set] | None = None) -> str:
    """Markdown `text` of the repository file `page`, its relative links made to work on the site.

    `pages` maps the repository paths that are pages to their source paths on the site; a link
    to one of them points to the page (to its anchor where the page has it, `anchors`), a link
    to any other file of the repository points to it on GitHub.
    """
    anchors = anchors or {}
    here = posixpath.dirname(page)

    def fix(m):
        label, target, title = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or \
                (target.startswith("#") and target[1:] in anchors.get(page, {target[1:]})):
            return m[0]
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(here, path)) if path else page
        if resolved.startswith(".."):
            return m[0]
        if resolved + "/README.md" in pages:
            resolved += "/README.md"
        anchor = f"#{anchor}" if anchor else ""
        site = pages.get(resolved)
        if site and (not anchor or resolved not in anchors or anchor[1:] in anchors[resolved]):
            new = posixpath.relpath(site, posixpath.dirname(pages[page]))
            return f"{label}({new}{anchor}{title})"
        return f"{label}({links.github(resolved, anchor)}{title})"

    return LINK.sub(fix, text)


# --- the pages ----------------------------------------------------------------------------------

def section(text: str, pattern: str) -> str:
    """The `## ` section of markdown `text` whose heading matches `pattern`, heading included."""
    m = re.search(rf"^## +{pattern}.*$", text, re.M | re.I)
    if not m:
        return ""
    end = re.search(r"^## ", text[m.end():], re.M)
    return text[m.start():m.end() + end.start() if end else len(text)].rstrip() + "\n"


def landing_page(readme: str, links: Links, notebooks: list[Path]) -> str:
    """The README's title and opening paragraphs (no badges), its course map, how to run it."""
    opening = readme.split("\n## ", 1)[0]
    opening = BADGE_LINE.sub("", opening).rstrip() + "\n"
    course_map = section(readme, "course map")
    if not course_map:
        course_map = "## Course map\n\n" + "".join(
            f"- [{p.stem}](notebooks/{p.name})\n" for p in notebooks)
    hub = (f", on [the class hub]({links.hub(notebooks[0].name)})" if links.hub_url else "")
    run = ("## Running the notebooks\n\nEach page shows a notebook with the outputs of its last "
           "full run. To run one, open it in Colab from its page" + hub + ", or install the "
           f"course and open it in JupyterLab ([set up]({links.github('README.md', '#set-up')})"
           ").\n")
    return "\n".join([opening, course_map, run])


def reference_page(links: Links, readme: Path = ROOT / "reference" / "README.md") -> str:
    """reference/README.md, or a page made from the stored runs while there is none."""
    if readme.exists():
        return readme.read_text(encoding="utf-8")
    from resnet_nb import reference
    from tools.reproduce import summary_table

    root = reference.reference_dir()
    files = json.loads((root / "MANIFEST.json").read_text())["files"]
    sets = sorted({name.split("/")[0] for name in files if name.endswith("/set.json")})
    weights = sum(name.endswith(".pt") for name in files)
    lines = ["# Reference runs", "",
             "The course's own converged runs, stored in the repository's "
             f"[reference/]({links.github('reference')}) folder: each run's history, and the "
             f"trained weights of {weights} networks. `resnet_nb.reference` loads them, after "
             "checking each file against its sha256 in reference/MANIFEST.json.", "",
             "## The paper against what this course measured", "", summary_table(root), ""]
    for name in sets:
        info = reference.set_info(name)
        lines += [f"## {name}: {info.get('title', '')}", "", f"{info.get('budget', '')}.", "",
                  "Made with", "", "```bash", info.get("command", ""), "```", ""]
        for s in info.get("sittings", []):
            lines.append(f"- {s.get('started', '')[:10]}: {s.get('wall_seconds', 0) / 60:.0f} "
                         f"min on {s.get('device', '?')}")
        lines.append("")
    return "\n".join(lines)


def links_cell(notebook: str, links: Links, widgets: bool, stored: bool = True) -> str:
    """The line under a notebook's title: where to run it, and what its frozen widgets are."""
    colab, hub = links.colab(notebook), links.hub(notebook)
    parts = [f"[Open in Colab]({colab})"] + ([f"[open in the class hub]({hub})"] if hub else [])
    parts.append(f'<a href="../{DOWNLOADS}/{notebook}" download>download the notebook</a>')
    text = " · ".join(parts)
    if widgets:
        lab = links.github("README.md", "#set-up")
        where = [f"[JupyterLab]({lab})", f"[Colab]({colab})"] + \
            ([f"[the class hub]({hub})"] if hub else [])
        frozen = ("frozen where the stored run left them" if stored else
                  "frozen at their first view, drawn by a short run on few images (the `smoke` "
                  "profile), so their numbers differ from the printed outputs")
        text += (f"\n\n*The controls on this page are {frozen}; they respond in "
                 + (", ".join(where[:-1]) + " or " + where[-1]) + ".*")
    return text


def notebook_page(student, name: str, links: Links, pages: dict, widgets: dict | None,
                  anchors: dict | None = None):
    """The site's copy of a notebook: its student copy, without the Colab badge and install
    cell, with the links line under its title and the first views of its widgets."""
    import nbformat

    nb = copy.deepcopy(student)
    nb.cells = [c for c in nb.cells if not (is_badge_cell(c) or is_install_cell(c))]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source.replace(TEXT_STUB, SITE_TEXT_STUB),
                                        f"notebooks/{name}", pages, links, anchors)
        elif widgets and cell.get("id") in widgets["views"]:
            cell.outputs = [nbformat.from_dict(out) for out in widgets["views"][cell.id]]
    if widgets and widgets["views"]:
        nb.metadata["widgets"] = {site_widgets.WIDGET_STATE: widgets["state"]}
    title = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and re.search(r"^# ", c.source, re.M)), -1)
    line = nbformat.v4.new_markdown_cell(links_cell(
        name, links, bool(widgets and widgets["views"]),
        stored=bool(widgets) and widgets.get("profile") != site_widgets.PROFILE))
    line.id = "site-links"
    nb.cells.insert(title + 1, line)
    return nb


def site_pages(notebooks: list[Path]) -> dict[str, str]:
    """{repository path: source path on the site} of every page."""
    pages = {"README.md": "index.md", "reference/README.md": "reference/README.md"}
    pages.update({f"notebooks/{p.name}": f"notebooks/{p.name}" for p in notebooks})
    pages.update({f"teaching/{p.name}": f"teaching/{p.name}" for p in teaching_files()})
    return pages


def teaching_files() -> list[Path]:
    """The instructor's guide, its README first, without the answer key."""
    files = sorted((ROOT / "teaching").glob("*.md"), key=lambda p: (p.name != "README.md", p.name))
    return [p for p in files if p.name != ANSWER_KEY]


def toctree(caption: str, entries: list[str]) -> str:
    return "\n".join(["", "```{toctree}", ":hidden:", f":caption: {caption}", ""]
                     + [posixpath.splitext(e)[0] for e in entries] + ["```", ""])


CONF = '''# The website's Sphinx configuration, written by tools/site.py (build it with
# `python -m tools site`).
project = "resnet-nb"
html_title = "resnet-nb"
extensions = ["myst_nb"]
exclude_patterns = ["_static", "_extra", "_doctrees", "html", "jupyter_execute",
                    "**.ipynb_checkpoints", "{marker}"]
nb_execution_mode = "off"            # the notebooks' stored outputs, as committed
nb_merge_streams = True
nb_ipywidgets_js = {{{widgets!r}: {{}}}}    # served from _static/, no require.js needed
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
mathjax_path = {mathjax!r}           # served from _static/
mathjax3_config = {{"options": {{}}}}     # myst-nb fills in the classes to typeset
html_theme = "sphinx_book_theme"
html_theme_options = {{"repository_url": {repo!r}, "repository_branch": {branch!r},
                      "use_repository_button": True, "home_page_in_toc": True,
                      "use_download_button": False,   # each notebook page links its own
                      "show_toc_level": 2}}
html_static_path = ["_static"]
html_extra_path = ["_extra"]
html_copy_source = False
html_show_sourcelink = False
'''


def write_source(source: Path, links: Links, widgets: bool, say=print) -> None:
    """The Sphinx project of the site, in `source` (replaced)."""
    import nbformat

    notebooks = course_notebooks(ROOT / "notebooks")
    if not notebooks:
        raise SiteError("no notebooks (NN_topic.ipynb) in notebooks/: run this from the course")
    replace_folder(source)
    source.mkdir(parents=True)
    (source / MARKER).touch()
    downloads = source / "_extra" / DOWNLOADS
    make_student_folder(downloads, ROOT / "notebooks", force=True)
    (downloads / ".student-copies").unlink()      # the copies' own marker: not for the site
    site_assets.install(source / "_static")
    views = site_widgets.widget_views(notebooks, say=say) if widgets else {}
    pages = site_pages(notebooks)
    landing = landing_page((ROOT / "README.md").read_text(encoding="utf-8"), links, notebooks)
    # Links into the README reach the landing page only for the sections it shows.
    anchors = {"README.md": {slug(h) for h in re.findall(r"^#+ +(.*)$", landing, re.M)}}
    (source / "notebooks").mkdir()
    for path in notebooks:
        student = nbformat.read(downloads / path.name, as_version=4)
        page = notebook_page(student, path.name, links, pages, views.get(path.name), anchors)
        nbformat.write(page, source / "notebooks" / path.name)
    (source / "teaching").mkdir()
    for path in teaching_files():
        text = rewrite_links(path.read_text(encoding="utf-8"), f"teaching/{path.name}",
                             pages, links, anchors)
        (source / "teaching" / path.name).write_text(text, encoding="utf-8")
    (source / "reference").mkdir()
    (source / "reference" / "README.md").write_text(
        rewrite_links(reference_page(links), "reference/README.md", pages, links, anchors),
        encoding="utf-8")
    landing = rewrite_links(landing, "README.md", pages, links, anchors)
    landing += toctree("Notebooks", [f"notebooks/{p.name}" for p in notebooks])
    landing += toctree("Teaching", [f"teaching/{p.name}" for p in teaching_files()])
    landing += toctree("Reference", ["reference/README.md"])
    (source / "index.md").write_text(landing, encoding="utf-8")
    (source / "conf.py").write_text(CONF.format(
        widgets=site_assets.WIDGETS_SCRIPT, mathjax=site_assets.MATHJAX_SCRIPT,
        repo=links.repo.url, branch=links.repo.branch, marker=MARKER), encoding="utf-8")


def sphinx_build(source: Path, out: Path) -> list[str]:
    """Build the html into `out` (replaced); the warnings, one per line.

    Sphinx writes into source/html/ (myst-nb keeps the notebooks' images beside its output
    folder, in source/jupyter_execute/), which then moves to `out`."""
    import io

    try:
        from sphinx.application import Sphinx
        import myst_nb  # noqa: F401  (the extension conf.py names)
    except ImportError:
        raise SiteError('the site is built with Sphinx and myst-nb: pip install -e ".[site]"') \
            from None
    from sphinx.util.console import nocolor
    nocolor()
    warnings = io.StringIO()
    app = Sphinx(str(source), str(source), str(source / "html"), str(source / "_doctrees"),
                 "html", status=None, warning=warnings, freshenv=True)
    app.build()
    if app.statuscode:
        raise SiteError(f"Sphinx failed (exit {app.statuscode}): {warnings.getvalue()[-500:]}")
    replace_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source / "html", out)
    (out / MARKER).touch()
    return [line for line in warnings.getvalue().splitlines() if line.strip()]


def build(out: Path = OUT, widgets: bool = True, source: Path = SOURCE, say=print) -> Path:
    """Build the site into `out`; the path of its index.html."""
    t0 = time.perf_counter()
    links = read_links()
    replace_folder(out, remove=False)    # refuse before any work if `out` is not an earlier site
    write_source(source, links, widgets, say=say)
    t1 = time.perf_counter()
    warnings = sphinx_build(source, out)
    for line in warnings:
        say(line)
    say(f"site built in {time.perf_counter() - t0:.1f} s (pages written in {t1 - t0:.1f} s, "
        f"Sphinx {time.perf_counter() - t1:.1f} s), {len(warnings)} warning(s): "
        f"{out / 'index.html'}")
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools site",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT,
                        help="the folder to write (replaced; default build/site/)")
    parser.add_argument("--no-widgets", action="store_true",
                        help="leave the widgets' first views out (no notebook is run)")
    args = parser.parse_args(argv)
    try:
        build(args.out.resolve(), widgets=not args.no_widgets)
    except (SiteError, site_assets.AssetError, site_widgets.WidgetRunError) as e:
        print(f"site: {e}", file=sys.stderr)
        return 2
    print(f"open {args.out / 'index.html'} in a browser, or put {args.out} on any static host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
