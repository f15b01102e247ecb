"""Make every link to the course's repository agree with pyproject.toml.

    python -m tools.sync_repo_url            # rewrite what differs, list the files changed
    python -m tools.sync_repo_url --check    # change nothing; exit 1 and list what differs

One place names the repository: `Repository` in pyproject.toml's [project.urls], a GitHub
address, optionally with `/tree/<branch>` (default branch: main). A teacher who forks the
course sets it there and runs this script. From it the script writes:

  - in every notebooks/NN_*.ipynb, a first cell holding an "Open in Colab" badge for that
    notebook (inserted when missing) and the five-line set-up cell (the code cell that tests
    `"google.colab" in sys.modules`; inserted after the opening cell when missing);
  - in README.md, the Colab links (colab.research.google.com/github/...) and the Binder
    links (mybinder.org/v2/gh/...).

Students get the class release, never the instructor notebooks: the badges, the README's
Colab and Binder links and the set-up cell all point at `[tool.resnet_nb] release-branch`
(made by `python -m tools release`, which holds the student copies, the package and the
reference runs). On Colab the set-up cell pip-installs the package from that branch with
--no-deps (Colab's torch and ipywidgets stay) and calls resnet_nb.colab.setup, which fetches
the release's reference runs; elsewhere it does nothing.

`[tool.resnet_nb] colab-cache` in pyproject.toml, when set, is where the set-up cell points
RESNET_NB_CACHE (the decoded CIFAR-10): a folder under /content/drive/ makes it mount Google
Drive, so that the notebooks' machines share one copy instead of each downloading CIFAR-10
again.

The script is idempotent (a second run changes nothing), finds notebooks by name pattern, and
keeps each notebook's other cells, ids and outputs as they are. A notebook that got a new
set-up cell must have its outputs regenerated (tools/run_notebooks.py): it says so.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:   # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_CELL_ID = "open-in-colab"
INSTALL_CELL_ID = "colab-install"
INSTALL_MARKER = '"google.colab" in sys.modules'
GITHUB = re.compile(r"^https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?"
                    r"(?:/tree/(?P<branch>[\w./-]+?))?/?$")
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/(?P<owner>[\w.-]+)/"
                        r"(?P<name>[\w.-]+)/blob/(?P<branch>[\w.-]+(?:/[\w.-]+)*?)/"
                        r"(?P<path>notebooks/[\w.-]+\.ipynb)")
BINDER_LINK = re.compile(r"https://mybinder\.org/v2/gh/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/"
                         r"(?P<branch>[\w.-]+(?:%2F[\w.-]+)*)")


class SettingsError(ValueError):
    """pyproject.toml does not name a usable repository; the message says what to write."""


@dataclass(frozen=True)
class Repository:
    """Where the course lives, as pyproject.toml says."""

    owner: str
    name: str
    branch: str = "main"
    colab_cache: str = ""      # RESNET_NB_CACHE on Colab; "" keeps the machine's own cache
    release_branch: str = "class"   # [tool.resnet_nb] release-branch: what students get
    hub_url: str = ""          # [tool.resnet_nb] hub-url: the class's JupyterHub ("" for none)

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"

    def colab_url(self, notebook: str) -> str:
        return (f"https://colab.research.google.com/github/{self.owner}/{self.name}/blob/"
                f"{self.branch}/notebooks/{notebook}")

    def binder_url(self) -> str:
        branch = self.branch.replace("/", "%2F")
        return f"https://mybinder.org/v2/gh/{self.owner}/{self.name}/{branch}"

    def for_students(self) -> "Repository":
        """The class release's branch of this repository: what badges and links open."""
        from dataclasses import replace
        return replace(self, branch=self.release_branch)


def read_repository(pyproject: Path = ROOT / "pyproject.toml") -> Repository:
    """The repository named by pyproject.toml's [project.urls] Repository."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    url = data.get("project", {}).get("urls", {}).get("Repository", "")
    m = GITHUB.match(url)
    if not m:
        raise SettingsError(
            f"pyproject.toml's [project.urls] Repository is {url!r}; set it to the course's "
            "GitHub address, e.g. \"https://github.com/OWNER/NAME\" (a branch other than main: "
            "\"https://github.com/OWNER/NAME/tree/BRANCH\")")
    tool = data.get("tool", {}).get("resnet_nb", {})
    release = tool.get("release-branch", "class")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", release or ""):
        raise SettingsError(f"pyproject.toml's [tool.resnet_nb] release-branch is {release!r}; "
                            "set it to a branch name, e.g. \"class\"")
    return Repository(m["owner"], m["name"], m["branch"] or "main", tool.get("colab-cache", ""),
                      release, tool.get("hub-url", ""))


# --- what the notebooks hold ---------------------------------------------------------

def badge_source(repo: Repository, notebook: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({repo.for_students().colab_url(notebook)})"


def install_source(repo: Repository, url: str | None = None, folder: str | None = None) -> str:
    """The notebooks' set-up cell (five lines): on Colab, pip-install the package from the class
    release (--no-deps keeps Colab's torch and ipywidgets), then resnet_nb.colab.setup fetches
    the release's reference runs; elsewhere nothing. A failed install stops "Run all" with one
    line (IPython's UsageError shows its message without a traceback). Only tests change `url`
    (default: the repository's address) and `folder` (default /content/<name>)."""
    url, branch = json.dumps(url or repo.url), json.dumps(repo.release_branch)
    pip_url = json.dumps(f"git+{json.loads(url)}@{repo.release_branch}")
    setup_args = ", ".join([url, branch] + ([json.dumps(folder)] if folder else []) + (
        [f"cache={json.dumps(repo.colab_cache)}"] if repo.colab_cache else []))
    fail = json.dumps(f"could not install the course from {json.loads(url)} "
                      f"({repo.release_branch}): check that the runtime is connected and that "
                      "this address opens in your browser, then run this cell again")
    return "\n".join([
        "import sys, subprocess  # On Colab: install the course from its class release. "
        "Elsewhere: nothing.",
        f"if {INSTALL_MARKER}:",
        f"    if subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", "
        f"\"--no-deps\", {pip_url}]).returncode:",
        f"        from IPython.core.error import UsageError; raise UsageError({fail})",
        f"    from resnet_nb.colab import setup; setup({setup_args})"])


def course_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def is_badge_cell(cell) -> bool:
    return cell.get("cell_type") == "markdown" and BADGE_IMAGE in _text(cell)


def is_install_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and INSTALL_MARKER in _text(cell)


def _text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _unique_id(nb, wanted: str) -> str:
    ids = {c.get("id") for c in nb.cells}
    candidate, n = wanted, 1
    while candidate in ids:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def sync_notebook(nb, repo: Repository, name: str) -> list[str]:
    """Bring one notebook (an nbformat node) in line; return what was changed, in words."""
    import nbformat
    changes = []
    badge = badge_source(repo, name)
    if nb.cells and is_badge_cell(nb.cells[0]):
        if _text(nb.cells[0]) != badge:
            nb.cells[0].source = badge
            changes.append("badge updated")
    else:
        stray = [i for i, c in enumerate(nb.cells) if is_badge_cell(c)]
        for i in reversed(stray):       # a badge elsewhere moves to the top
            del nb.cells[i]
        cell = nbformat.v4.new_markdown_cell(badge)
        cell.id = _unique_id(nb, BADGE_CELL_ID)
        nb.cells.insert(0, cell)
        changes.append("badge inserted")
    install = install_source(repo)
    found = [c for c in nb.cells if is_install_cell(c)]
    for cell in found[1:]:
        nb.cells.remove(cell)
        changes.append("a second install cell removed")
    if found:
        if _text(found[0]) != install:
            found[0].source = install
            changes.append("install cell updated")
    else:
        cell = nbformat.v4.new_code_cell(install)
        cell.id = _unique_id(nb, INSTALL_CELL_ID)
        # After the badge and the opening cell (goal and time budget).
        nb.cells.insert(min(2, len(nb.cells)), cell)
        changes.append("install cell inserted: regenerate its outputs (tools/run_notebooks.py)")
    return changes


# --- what the README holds -----------------------------------------------------------

def sync_readme(text: str, repo: Repository) -> str:
    repo = repo.for_students()
    text = COLAB_LINK.sub(lambda m: repo.colab_url(m["path"].split("/", 1)[1]), text)
    return BINDER_LINK.sub(lambda m: repo.binder_url(), text)


def readme_problems(text: str, repo: Repository, root: Path = ROOT) -> list[str]:
    repo = repo.for_students()
    problems = []
    colab = list(COLAB_LINK.finditer(text))
    binder = list(BINDER_LINK.finditer(text))
    if not colab:
        problems.append("README.md has no Colab link (colab.research.google.com/github/...)")
    if not binder:
        problems.append("README.md has no Binder link (mybinder.org/v2/gh/...)")
    for m in colab:
        if m[0] != repo.colab_url(m["path"].split("/", 1)[1]):
            problems.append(f"README.md links {m[0]}, not {repo.url} ({repo.branch})")
        if not (root / m["path"]).is_file():
            problems.append(f"README.md links {m['path']} in Colab, which does not exist")
    for m in binder:
        if m[0] != repo.binder_url():
            problems.append(f"README.md links {m[0]}, not {repo.binder_url()}")
    return problems


# --- the whole course ----------------------------------------------------------------

def sync(root: Path = ROOT, write: bool = True) -> tuple[list[str], list[str]]:
    """Rewrite (or, with write=False, only list) what disagrees with pyproject.toml.

    Returns (changes, problems): what was (or would be) rewritten, and what no rewrite can
    fix (the README without a Colab or Binder link, a link to a notebook that is not there).
    """
    import nbformat
    repo = read_repository(root / "pyproject.toml")
    changes = []
    for path in course_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        done = sync_notebook(nb, repo, path.name)
        if done:
            changes.append(f"{path.relative_to(root)}: {'; '.join(done)}")
            if write:
                nbformat.write(nb, path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = sync_readme(text, repo)
    if new != text:
        changes.append("README.md: Colab/Binder links updated")
        if write:
            readme.write_text(new, encoding="utf-8")
    return changes, readme_problems(new, repo, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if anything disagrees with pyproject.toml")
    args = parser.parse_args(argv)
    try:
        changes, problems = sync(write=not args.check)
    except SettingsError as e:
        print(e, file=sys.stderr)
        return 2
    for line in changes:
        print(line)
    for line in problems:
        print(line, file=sys.stderr)
    if args.check and changes:
        print("run python -m tools.sync_repo_url to rewrite them", file=sys.stderr)
    if not changes and not problems:
        print(f"everything links {read_repository().url} already")
    return 1 if problems or (args.check and changes) else 0


if __name__ == "__main__":
    sys.exit(main())
