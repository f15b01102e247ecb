"""One place names the course's repository, and every link to it agrees.

pyproject.toml's [project.urls] Repository and [tool.resnet_nb] release-branch are the one
place; tools/sync_repo_url.py writes each notebook's "Open in Colab" badge and five-line set-up
cell, and the README's Colab and Binder links, from them: all point at the class release (the
student copies), never at the instructor notebooks. These tests check that the committed files
agree, that the script follows a fork's setting and is idempotent, and that the set-up cell
fails with one sentence.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


from tools import sync_repo_url as sync  # noqa: E402


def test_committed_files_agree_with_pyproject():
    changes, problems = sync.sync(ROOT, write=False)
    assert not changes and not problems, (
        "\n".join(changes + problems) + "\nrun: python -m tools.sync_repo_url")


def test_every_notebook_opens_with_its_badge_and_has_one_install_cell():
    repo = sync.read_repository(ROOT / "pyproject.toml")
    notebooks = sync.course_notebooks(ROOT)
    assert len(notebooks) >= 6
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = "".join(nb["cells"][0]["source"])
        assert first == (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge"
                         f".svg)](https://colab.research.google.com/github/{repo.owner}/"
                         f"{repo.name}/blob/{repo.release_branch}/notebooks/{path.name})"), path.name
        installs = [c for c in nb["cells"] if sync.is_install_cell(c)]
        assert len(installs) == 1, path.name
        code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code_cells[0] is installs[0], f"{path.name}: the install cell is not the first"
        lines = sync.install_source(repo).split("\n")
        assert sync._text(installs[0]) == "\n".join(lines) and len(lines) <= 5


def _copy_course(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    for path in sync.course_notebooks(ROOT):
        shutil.copy(path, tmp_path / "notebooks" / path.name)
    return tmp_path


def _set_repository(root: Path, url: str, cache: str = "", release: str = "class") -> None:
    text = (root / "pyproject.toml").read_text()
    text = re.sub(r'(?m)^Repository = ".*"$', f'Repository = "{url}"', text)
    text = re.sub(r'(?m)^colab-cache = ".*"$', f'colab-cache = "{cache}"', text)
    text = re.sub(r'(?m)^release-branch = ".*"$', f'release-branch = "{release}"', text)
    (root / "pyproject.toml").write_text(text)


def test_a_fork_sets_its_address_once_and_the_script_follows(tmp_path):
    root = _copy_course(tmp_path)
    before = {p.name: nbformat.read(p, as_version=4) for p in sync.course_notebooks(root)}
    _set_repository(root, "https://github.com/teacher/course-fork/tree/spring-2026",
                    cache="/content/drive/MyDrive/resnet_nb_cache", release="spring-2026-class")
    changes, problems = sync.sync(root)
    assert not problems
    assert len(changes) == len(before) + 1            # every notebook, and the README
    for path in sync.course_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        badge = nb.cells[0].source
        assert ("colab.research.google.com/github/teacher/course-fork/blob/spring-2026-class/"
                f"notebooks/{path.name})") in badge
        install = next(c for c in nb.cells if sync.is_install_cell(c)).source
        assert '"git+https://github.com/teacher/course-fork@spring-2026-class"' in install
        assert ('setup("https://github.com/teacher/course-fork", "spring-2026-class", '
                'cache="/content/drive/MyDrive/resnet_nb_cache")') in install
        assert len(install.split("\n")) <= 5
        compile(install, path.name, "exec")
        # Nothing else changed: the other cells, their ids and outputs are as they were.
        old = before[path.name]
        rest = lambda cells: [c for c in cells if not (sync.is_badge_cell(c) or
                                                       sync.is_install_cell(c))]
        assert rest(nb.cells) == rest(old.cells)
    readme = (root / "README.md").read_text()
    assert "github/resnet-nb/resnet-nb" not in readme and "gh/resnet-nb/resnet-nb" not in readme
    assert "mybinder.org/v2/gh/teacher/course-fork/spring-2026-class" in readme
    # A second run has nothing left to do.
    assert sync.sync(root) == ([], [])


def test_a_new_notebook_gets_a_badge_and_an_install_cell(tmp_path):
    root = _copy_course(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 06 · New\n\n**Goal:** x. **Time:** 1 minute on a CPU, "
                                      "a GPU alike."),
        nbformat.v4.new_code_cell("print(1)")])
    nbformat.write(nb, root / "notebooks" / "06_new_topic.ipynb")
    changes, _ = sync.sync(root)
    assert any("06_new_topic.ipynb: badge inserted; install cell inserted: regenerate" in c
               for c in changes)
    new = nbformat.read(root / "notebooks" / "06_new_topic.ipynb", as_version=4)
    assert sync.is_badge_cell(new.cells[0]) and new.cells[1].source.startswith("# 06")
    assert sync.is_install_cell(new.cells[2]) and new.cells[3].source == "print(1)"
    assert len({c.id for c in new.cells}) == 4
    nbformat.validate(new)
    assert sync.sync(root) == ([], [])


def test_check_mode_changes_nothing_and_says_what_differs(tmp_path):
    root = _copy_course(tmp_path)
    _set_repository(root, "https://github.com/teacher/course-fork")
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    changes, _ = sync.sync(root, write=False)
    assert changes and all(p.read_bytes() == b for p, b in snapshot.items())


@pytest.mark.parametrize("url", ["", "https://gitlab.com/a/b", "github.com/a/b",
                                 "https://github.com/only-owner"])
def test_an_unusable_repository_setting_says_what_to_write(tmp_path, url):
    root = _copy_course(tmp_path)
    _set_repository(root, url)
    with pytest.raises(sync.SettingsError, match=r"https://github.com/OWNER/NAME"):
        sync.read_repository(root / "pyproject.toml")


def test_an_unusable_release_branch_says_what_to_write(tmp_path):
    root = _copy_course(tmp_path)
    _set_repository(root, "https://github.com/a/b", release="two words")
    with pytest.raises(sync.SettingsError, match=r"release-branch.*e.g. \"class\""):
        sync.read_repository(root / "pyproject.toml")


def test_the_readme_must_link_colab_and_binder_to_existing_notebooks():
    repo = sync.read_repository(ROOT / "pyproject.toml").for_students()
    assert any("no Binder link" in p for p in sync.readme_problems("no links", repo, ROOT))
    missing = repo.colab_url("99_nothing.ipynb") + " " + repo.binder_url()
    assert any("does not exist" in p for p in sync.readme_problems(missing, repo, ROOT))
    other = repo.colab_url("00_start_here.ipynb").replace("resnet-nb/", "x/", 1)
    assert any("not https://github.com/" in p
               for p in sync.readme_problems(other + " " + repo.binder_url(), repo, ROOT))


def _run_cells(tmp_path, *sources):
    """Run code cells in a fresh kernel as "Run all" does; return the notebook (stopped at the
    first error)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(nb, kernel_name="python3", timeout=180, resources={
        "metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    return nb


COLAB = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unreachable repository", "no git on the machine"])
def test_the_set_up_cell_fails_with_one_sentence_that_says_what_to_do(tmp_path, fault):
    """Outside Colab the cell does nothing; in Colab, a release that cannot be installed (an
    unreachable address, no git for pip to fetch it with) gives one line, no traceback, and
    the next cells do not run."""
    repo = sync.read_repository(ROOT / "pyproject.toml")
    missing = (tmp_path / "no-such-repository").as_uri()
    cell = sync.install_source(repo, url=missing, folder=str(tmp_path / "clone"))
    nb = _run_cells(tmp_path, sync.install_source(repo),           # not in Colab: nothing
                    COLAB + ("\nimport os; os.environ['PATH'] = ''"
                             if fault == "no git on the machine" else ""),
                    cell, "print('after')")
    assert nb.cells[0].outputs == [] and nb.cells[1].outputs == []
    text = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream")
    assert not [o for o in nb.cells[2].outputs if o.output_type == "error"]   # no traceback
    line = text.strip().splitlines()[-1]
    assert line == (f"UsageError: could not install the course from {missing} ({repo.release_branch}): "
                    "check that the runtime is connected and that this address opens in your "
                    "browser, then run this cell again"), text[-2000:]
    assert nb.cells[3].outputs == []                                   # Run All stopped there
    assert not (tmp_path / "clone").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unreachable repository", "no git on the machine",
                                   "no reference runs"])
def test_colab_setup_fails_with_one_sentence_that_says_what_to_do(tmp_path, fault):
    """resnet_nb.colab.setup, once the package is installed: a release it cannot fetch, or one
    without reference runs, ends in one CourseNotInstalled line."""
    url = (tmp_path / "no-such-repository").as_uri()
    if fault == "no reference runs":
        empty = tmp_path / "empty"
        empty.mkdir()
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-C", str(empty)]
        subprocess.run(git + ["init", "-q", "-b", "class"], check=True)
        subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "x"], check=True)
        url = empty.as_uri()
    nb = _run_cells(tmp_path, COLAB + ("\nimport os; os.environ['PATH'] = ''"
                                       if fault == "no git on the machine" else ""),
                    f"from resnet_nb.colab import setup\nsetup({url!r}, 'class', "
                    f"{str(tmp_path / 'clone')!r})", "print('after')")
    (error,) = nb.cells[1].outputs
    assert error.output_type == "error" and error.ename == "CourseNotInstalled"
    assert len(error.traceback) == 1 and "\n" not in error.traceback[0]
    line = error.traceback[0]
    if fault == "no reference runs":
        assert line.endswith("holds no reference runs (reference/MANIFEST.json): delete that "
                             "folder, then run this cell again"), line
    else:
        assert line.startswith("CourseNotInstalled: could not download the course's class "
                               f"release (class) from {url}"), line
        assert line.endswith("then run this cell again") and "CalledProcessError" not in line
    if fault == "no git on the machine":
        assert "No such file or directory: 'git'" in line
    assert nb.cells[2].outputs == []
