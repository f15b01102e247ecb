"""The course's website (tools/site.py), read in a real browser with the network cut off.

The site is built once for this module, by `python -m tools site`'s build function into a
temporary folder, or taken from the folder that RESNET_NB_SITE names (.ci/run builds it first).
Python's http.server serves it on 127.0.0.1, and Debian's chromium, driven by Playwright for
Python as in tests/browser/test_jupyterlab.py, crawls it from index.html by the links of every page, with
every request to anything but that server blocked. Whatever the notebooks say, for every page:

- no request fails, and none leaves the local server;
- the navigation reaches every notebook, the instructor's guide and the reference runs, and
  never the answer key;
- every figure stored in a notebook (as its student copy holds it: the worked solutions' outputs
  are cleared) is on its page, loaded, with the same bytes;
- formulas are typeset: MathJax ran, showed no error, and left no $...$, \\(...\\) or $$ in the
  text;
- the widgets' first views render (on the pages of the notebooks that use widgets);
- each notebook page links Colab at the configured repository and the student copy to download;
- no text of a worked solution, of a written answer or of the answer key is on any page, nor in
  any file of the site: worked solutions are left out of the site, not folded.

The build's time and each page's load time go to test-artifacts/site-timings.json.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import http.server
import json
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from browsers import ARTIFACTS, CHROMIUM_ARGS, chromium, unavailable
from solutions import SHINGLE, plain, secret_runs, shown_secrets, word_list


ROOT = Path(__file__).resolve().parents[2]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_a_quoted_solution_is_found():
    """The check itself: a page quoting one line of a worked solution, or of the answer key,
    fails it; the student copies' own text does not."""
    import nbformat

    from tools.make_student_copies import course_notebooks, solution_regions, student_copy

    secret = secret_runs()
    path = course_notebooks(ROOT / "notebooks")[0]
    nb = nbformat.read(path, as_version=4)
    region = next(r for c in nb.cells for r in solution_regions(c)
                  if len(word_list("\n".join(r))) >= SHINGLE)
    quoted = f"<p>Some page</p><pre><code>{html.escape(chr(10).join(region))}</code></pre>"
    assert shown_secrets(plain(quoted), secret)
    key = (ROOT / "teaching" / "answer_key.md").read_text()
    assert shown_secrets(key, secret)
    assert not shown_secrets("\n".join(c.source for c in student_copy(nb).cells), secret)


# --- links: between pages on the site, to the repository elsewhere --------------------------------

def test_links_between_repository_files_become_links_between_pages():
    from tools.site import Links, rewrite_links
    from tools.sync_repo_url import Repository

    links = Links(Repository("owner", "course", "main"), "class", "")
    pages = {"README.md": "index.md", "teaching/README.md": "teaching/README.md",
             "notebooks/01_x.ipynb": "notebooks/01_x.ipynb"}
    anchors = {"README.md": {"course-map"}}
    text = ("[a](../README.md#course-map) [b](../README.md#data) [c](answer_key.md) "
            "[d](../notebooks/01_x.ipynb) [e](https://example.org/x.md) [f](#here) "
            '[g](README.md "title") ![h](figure.png)')
    out = rewrite_links(text, "teaching/README.md", pages, links, anchors)
    github = "https://github.com/owner/course/blob/main"
    assert "[a](../index.md#course-map)" in out                 # a section the landing page has
    assert f"[b]({github}/README.md#data)" in out               # one it has not: on GitHub
    assert f"[c]({github}/teaching/answer_key.md)" in out       # not a page of the site
    assert "[d](../notebooks/01_x.ipynb)" in out
    assert "[e](https://example.org/x.md)" in out and "[f](#here)" in out
    assert '[g](README.md "title")' in out and "![h](figure.png)" in out
    landing = rewrite_links("[m](#course-map) [n](#data)", "README.md", pages, links, anchors)
    assert landing == f"[m](#course-map) [n]({github}/README.md#data)"


def test_run_links_point_at_the_class_release():
    from tools.site import Links
    from tools.sync_repo_url import Repository

    repo = Repository("owner", "course", "main")
    links = Links(repo, "class", "https://hub.example.org/")
    assert links.colab("06_lab.ipynb") == ("https://colab.research.google.com/github/owner/"
                                           "course/blob/class/notebooks/06_lab.ipynb")
    hub = links.hub("06_lab.ipynb")
    assert hub.startswith("https://hub.example.org/hub/user-redirect/git-pull?")
    assert "branch=class" in hub and "06_lab.ipynb" in hub
    assert Links(repo, "", "").hub("06_lab.ipynb") is None
    assert "/blob/main/" in Links(repo, "", "").colab("06_lab.ipynb")


def test_the_reference_page_falls_back_to_the_stored_runs(tmp_path):
    """Without reference/README.md, the page is made from what resnet_nb.reference loads: the
    paper-against-measured table and every set, with the command that made it."""
    from resnet_nb import reference
    from tools.site import read_links, reference_page

    page = reference_page(read_links(), readme=tmp_path / "no-README.md")
    assert "| set | network | paper: test error (%) | measured: test error (%)" in page
    for name in ("fig6", "table6"):
        assert reference.set_info(name)["command"] in page
    assert page.count("\n| fig6 | ") == len(reference.histories("fig6"))


def test_each_widget_notebook_stores_the_views_of_its_regeneration(tmp_path):
    """The site shows the widget views of the run whose outputs the notebook stores (cpu
    profile, written by tools/run_notebooks.py), as long as they came from its code as it is;
    a notebook whose code changed falls back to a smoke run, and says so on its page."""
    import nbformat

    from tools import site_widgets
    from tools.site import links_cell, read_links

    paths = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             if site_widgets.uses_widgets(nbformat.read(p, as_version=4))]
    assert paths, "no notebook uses widgets: the check would prove nothing"
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        stored = site_widgets.stored_views(nb, path.name)
        assert stored is not None, f"{path.name}: no views stored for its code: regenerate it"
        assert stored["profile"] == "cpu" and stored["views"] and stored["state"]
        shown = {out["data"][site_widgets.WIDGET_VIEW]["model_id"]
                 for outs in stored["views"].values() for out in outs}
        assert shown and shown <= set(stored["state"]["state"])
        # One changed code cell and the views no longer count as this notebook's.
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.source += "\nx = 1"
        assert site_widgets.stored_views(nb, path.name) is None
    links = read_links()
    assert "stored run" in links_cell(paths[0].name, links, widgets=True, stored=True)
    assert "`smoke`" in links_cell(paths[0].name, links, widgets=True, stored=False)


# --- the site, served, and crawled ----------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("RESNET_NB_SITE")
    if given:
        if not (Path(given) / "index.html").is_file():
            pytest.fail(f"RESNET_NB_SITE={given} holds no index.html: build it with "
                        "`python -m tools site`")
        return Path(given)
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        unavailable('the site needs the [site] extra: pip install -e ".[site]"')
    from tools import site as site_tool
    out = tmp_path_factory.mktemp("site") / "html"
    t0 = time.perf_counter()
    site_tool.build(out, source=out.parent / "source")
    _record("build_seconds", round(time.perf_counter() - t0, 1))
    return out


def _record(key: str, value) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "site-timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1) + "\n")


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


#: What a loaded page shows, once MathJax and the widget manager are done.
_PAGE_STATE = """async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        await MathJax.startup.promise;
    }
    const views = document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]').length;
    const t0 = performance.now();
    while (views && document.querySelectorAll('.jupyter-widgets.widget-container, '
            + '.jupyter-widgets.widget-inline-hbox, .jupyter-widgets.widget-output, '
            + '.jupyter-widgets.widget-box, .jupyter-widgets').length === 0
            && performance.now() - t0 < 20000) {
        await new Promise(r => setTimeout(r, 100));
    }
    const body = document.body.cloneNode(true);
    body.querySelectorAll('script, style, noscript').forEach(e => e.remove());
    const prose = document.body.cloneNode(true);
    prose.querySelectorAll('script, style, noscript, pre, code, mjx-container, textarea, '
                           + '.jupyter-widgets').forEach(e => e.remove());
    const nav = performance.getEntriesByType('navigation')[0];
    return {
        links: [...document.querySelectorAll('a[href]')].map(a => a.href),
        images: [...document.querySelectorAll('img')].map(i => ({
            src: i.currentSrc || i.src, loaded: i.complete && i.naturalWidth > 0,
            in_widget: !!i.closest('.jupyter-widgets')})),
        text: body.textContent,
        prose: prose.innerText,
        math_elements: document.querySelectorAll('.math').length,
        typeset: document.querySelectorAll('mjx-container').length,
        math_errors: document.querySelectorAll('mjx-merror').length,
        mathjax: !!(window.MathJax && MathJax.startup),
        views: views,
        rendered_widgets: document.querySelectorAll('.jupyter-widgets').length,
        widget_errors: [...document.querySelectorAll('.jupyter-widgets, .widget-output')]
            .map(e => e.textContent).filter(t => /Error displaying widget|model not found/i
                                                 .test(t)),
        download: [...document.querySelectorAll('a[download]')].map(a => a.href),
        load_ms: nav ? nav.loadEventEnd - nav.startTime : null,
    };
}"""


@pytest.fixture(scope="module")
def crawl(server):
    """{site path: what the page showed}, for every page reached from index.html, and the
    requests that failed or left the server."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    pages, failures, todo = {}, [], ["index.html", "search.html?q=residual"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith(server):
                return r.continue_()
            failures.append(f"{current[0]}: request to another host: {r.request.url}")
            return r.abort()

        current = [""]
        context.route("**/*", route)
        page = context.new_page()
        page.on("requestfailed", lambda r: failures.append(
            f"{current[0]}: {r.url} failed ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and failures.append(
            f"{current[0]}: {r.url} answered {r.status}"))
        while todo:
            path = todo.pop(0)
            current[0] = path
            t0 = time.perf_counter()
            page.goto(server + path, wait_until="load", timeout=60_000)
            state = page.evaluate(_PAGE_STATE)
            state["ready_s"] = time.perf_counter() - t0
            page.wait_for_load_state("networkidle")   # e.g. the search page fetches pages
            if path.startswith("notebooks/"):
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"site-{Path(path).stem}.png"))
            pages[path] = state
            for link in state["links"]:
                target = urlparse(link)
                if not link.startswith(server) or not target.path.endswith(".html"):
                    continue
                name = target.path.lstrip("/")
                if name not in pages and name not in todo:
                    todo.append(name)
        browser.close()
    _record("page_ready_seconds", {k: round(v["ready_s"], 2) for k, v in pages.items()})
    _record("page_load_event_seconds", {k: round(v["load_ms"] / 1000, 2)
                                        for k, v in pages.items() if v["load_ms"]})
    return pages, failures


def _notebooks():
    from tools.make_student_copies import course_notebooks
    return course_notebooks(ROOT / "notebooks")


def _page(path: Path) -> str:
    return f"notebooks/{path.stem}.html"


# --- the checks ---------------------------------------------------------------------------------

@pytest.mark.browser
def test_no_request_fails_or_leaves_the_site(crawl):
    pages, failures = crawl
    assert len(pages) > len(_notebooks())
    assert not failures, "\n".join(failures[:20])


@pytest.mark.browser
def test_the_navigation_reaches_every_page(crawl):
    pages, _ = crawl
    wanted = {_page(p) for p in _notebooks()} | {"reference/README.html"} | {
        f"teaching/{p.stem}.html" for p in (ROOT / "teaching").glob("*.md")
        if p.name != "answer_key.md"}
    assert wanted <= set(pages), f"not reached from index.html: {sorted(wanted - set(pages))}"
    assert not [p for p in pages if "answer_key" in p]


def _stored_figures(nb) -> list[tuple[str, str]]:
    """(sha256, cell) of every image a notebook stores in its outputs."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            for mime, data in out.get("data", {}).items():
                if mime.startswith("image/"):
                    raw = data.encode() if mime == "image/svg+xml" else base64.b64decode(data)
                    found.append((hashlib.sha256(raw).hexdigest(), f"cell {i}"))
    return found


@pytest.mark.browser
def test_every_stored_figure_is_on_its_page(crawl, site):
    import nbformat

    from tools.make_student_copies import is_solution_cell, student_copy

    pages, _ = crawl
    for path in _notebooks():
        nb = nbformat.read(path, as_version=4)
        figures = _stored_figures(student_copy(nb))
        outside_solutions = [c for c in nb.cells if not is_solution_cell(c)]
        assert len(figures) == len(_stored_figures(nbformat.v4.new_notebook(
            cells=outside_solutions))), f"{path.name}: the student copy lost figures"
        state = pages[_page(path)]
        shown = set()
        for image in state["images"]:
            if image["in_widget"]:
                continue
            assert image["loaded"], f"{path.name}: {image['src']} did not load"
            local = site / urlparse(image["src"]).path.lstrip("/")
            if local.is_file():
                shown.add(hashlib.sha256(local.read_bytes()).hexdigest())
        missing = [cell for digest, cell in figures if digest not in shown]
        assert not missing, f"{path.name}: figures of {', '.join(missing)} are not on its page"


RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|(?<![\w$])\$[^$\s][^$\n]*?\$(?![\w$])")


@pytest.mark.browser
def test_formulas_render(crawl):
    pages, _ = crawl
    typeset_pages = 0
    for path, state in pages.items():
        assert not state["math_errors"], f"{path}: MathJax shows {state['math_errors']} errors"
        assert not RAW_MATH.findall(state["prose"]), \
            f"{path}: formulas left as text: {RAW_MATH.findall(state['prose'])[:5]}"
        if state["math_elements"]:
            assert state["mathjax"], f"{path}: has formulas, but MathJax did not load"
            assert state["typeset"] >= state["math_elements"], \
                f"{path}: {state['math_elements']} formulas, {state['typeset']} typeset"
            typeset_pages += 1
    assert typeset_pages, "no page has a formula: the check would prove nothing"


@pytest.mark.browser
def test_widgets_show_their_first_views(crawl):
    import nbformat

    from tools.site_widgets import uses_widgets

    pages, _ = crawl
    with_widgets = [p for p in _notebooks() if uses_widgets(nbformat.read(p, as_version=4))]
    assert with_widgets, "no notebook uses widgets: the check would prove nothing"
    for path in with_widgets:
        state = pages[_page(path)]
        assert state["views"], f"{path.name}: no widget view on its page"
        assert state["rendered_widgets"] >= state["views"], \
            f"{path.name}: {state['views']} widget views, {state['rendered_widgets']} rendered"
        assert not state["widget_errors"], f"{path.name}: {state['widget_errors'][:2]}"
        assert "JupyterLab" in state["text"] and "Colab" in state["text"]


@pytest.mark.browser
def test_each_notebook_page_links_colab_and_its_download(crawl, site):
    from tools.site import read_links

    links = read_links()
    pages, _ = crawl
    for path in _notebooks():
        state = pages[_page(path)]
        assert links.colab(path.name) in state["links"], f"{path.name}: no Colab link"
        hub = links.hub(path.name)
        assert (hub in state["links"]) if hub else not any("git-pull" in u for u in state["links"])
        assert len(state["download"]) == 1, f"{path.name}: {state['download']}"
        copy = json.loads((site / urlparse(state["download"][0]).path.lstrip("/")).read_text())
        assert copy["metadata"].get("widgets") is None
        assert not any("BEGIN SOLUTION" in "".join(c["source"]) for c in copy["cells"])
        assert [c.get("id") for c in copy["cells"]] == \
            [c.get("id") for c in json.loads(path.read_text())["cells"]]


@pytest.mark.browser
def test_no_solution_text_shows_on_any_page(crawl):
    secret = secret_runs()
    pages, _ = crawl
    for path, state in pages.items():
        found = shown_secrets(state["text"], secret)
        assert not found, f"{path} shows worked-solution or answer-key text: {found[:3]}"


@pytest.mark.browser
def test_no_solution_text_in_any_file_of_the_site(site):
    """Hidden text too: widget state, downloads, the search index."""
    secret = secret_runs()
    vendor = {site / "_static" / "mathjax", site / "_static" / "widgets"}
    checked = 0
    for path in site.rglob("*"):
        if not path.is_file() or path.suffix not in (".html", ".js", ".json", ".ipynb", ".txt") \
                or any(v in path.parents for v in vendor):
            continue
        found = shown_secrets(plain(path.read_text(errors="replace")), secret)
        assert not found, f"{path.relative_to(site)} holds solution text: {found[:3]}"
        checked += 1
    assert checked > len(_notebooks())
