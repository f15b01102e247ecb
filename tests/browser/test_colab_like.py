"""The course as Colab runs it: the install cell, then the lab in Colab's widget front end.

Colab renders ipywidgets 7.7 views; JupyterLab 4 renders only ipywidgets 8 (tests/browser/test_jupyterlab.py
covers that). This test uses a second environment, .venv-colab (made by
`.venv/bin/python .ci/colab_like_env.py`, as .ci/run does): the classic Notebook 6.5 with
ipywidgets 7.7.1 and no JupyterLab, sharing only the compute stack (torch, numpy, matplotlib)
with the main environment. There:

1. the notebooks' set-up cell, exactly as tools/sync_repo_url.py writes it but with a git
   snapshot of this working tree standing in for the repository's URL (its class release made
   by `python -m tools release` as the release branch) and a scratch folder for /content, runs
   with `google.colab` imported: it pip-installs the package from the release branch
   (--no-deps) and fetches the release's reference runs, as on Colab;
2. the lab notebook (notebooks/*_interactive_lab.ipynb, copied to a scratch folder) passes
   nbval in that environment, importing the installed package and reading those reference
   runs (RESNET_NB_REFERENCE, as the set-up cell leaves it in Colab's kernel);
3. the classic Notebook server shows it to headless Chromium (Debian's chromium, driven by
   Playwright as in tests/browser/test_jupyterlab.py): Cell > Run All, then a shortcut toggle, the depth
   slider, and Train followed by Stop, each checked for its effect. A screenshot is saved in
   test-artifacts/.

Without .venv-colab, chromium or Playwright the tests are skipped with the command that
fixes it; in CI (CI=true) they fail instead.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browsers import ARTIFACTS, free_port, headless_chromium, jupyter_server, unavailable

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("RESNET_NB_COLAB_VENV", ROOT / ".venv-colab"))
# The shell's cache of decoded CIFAR-10, read before tests/conftest.py points every test at an
# empty one: the lab's kernels reuse it instead of decoding the archive again.
SHELL_CACHE = os.environ.get("RESNET_NB_CACHE")


def _sync_script():
    from tools import sync_repo_url
    return sync_repo_url


def _lab_notebook() -> Path:
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_interactive_lab.ipynb"))
    assert len(found) == 1, f"expected one notebooks/NN_interactive_lab.ipynb, found {found}"
    return found[0]


def _colab_env(**extra) -> dict:
    """The environment of a process in .venv-colab: no PYTHONPATH (the package must come from
    the set-up cell's install), the smoke profile, the shell's data and cache."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "RESNET_NB_CACHE", "VIRTUAL_ENV")}
    env.update(RESNET_NB_PROFILE="smoke", TQDM_DISABLE="1",
               OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
               PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    if SHELL_CACHE:
        env["RESNET_NB_CACHE"] = SHELL_CACHE
    env.update(extra)
    return env


def snapshot_repository(folder: Path) -> Path:
    """A git repository holding this working tree as it is (tracked and untracked files that
    git does not ignore), committed: what the install cell clones instead of GitHub."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        src = ROOT / name
        if src.is_file() and not src.is_symlink():
            dest = folder / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c",
           "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + args, cwd=folder, check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def colab_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        unavailable(f"no Colab-like environment at {VENV}: make it with "
                     "`.venv/bin/python .ci/colab_like_env.py`")
    return python


def _pip_uninstall(colab_python: Path) -> None:
    subprocess.run([str(colab_python), "-m", "pip", "uninstall", "-q", "-y", "resnet_nb"],
                   env=_colab_env(), capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def installed(colab_python, tmp_path_factory):
    """Run the set-up cell in .venv-colab as Colab would; return the folder of the release's
    reference runs it fetched. The package is uninstalled again afterwards."""
    from tools import release
    sync = _sync_script()
    repo = sync.read_repository(ROOT / "pyproject.toml")
    source = snapshot_repository(tmp_path_factory.mktemp("repository"))
    folder = tmp_path_factory.mktemp("release")
    release.make_release_folder(folder / "out")
    assert release.commit_release(folder / "out", repo.release_branch, source)
    clone = tmp_path_factory.mktemp("content") / repo.name
    cell = sync.install_source(repo, url=source.as_uri(), folder=str(clone))
    # The committed notebooks hold the same cell with the real URL and the default folder
    # (checked by tests/tools/test_repo_links.py); these two are all that differs.
    assert cell == sync.install_source(repo).replace(repo.url, source.as_uri()).replace(
        f'"{repo.release_branch}")', f'"{repo.release_branch}", {json.dumps(str(clone))})')
    run = ("import sys, types\n"
           "sys.modules['google.colab'] = types.ModuleType('google.colab')   # as in Colab\n"
           + cell + "\nimport os; print(os.environ['RESNET_NB_REFERENCE'])")
    _pip_uninstall(colab_python)
    r = subprocess.run([str(colab_python), "-c", run], cwd=clone.parent, env=_colab_env(),
                       capture_output=True, text=True, timeout=300)
    try:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert r.stdout.strip().splitlines()[-1] == str(clone / "reference")
        yield clone / "reference"
    finally:
        _pip_uninstall(colab_python)


@pytest.mark.slow
def test_set_up_cell_installs_the_package_and_reference_runs_of_the_release(
        colab_python, installed, tmp_path):
    code = ("import resnet_nb, ipywidgets, importlib.util as u; "
            "print(resnet_nb.__file__); print(ipywidgets.__version__); "
            "print(u.find_spec('jupyterlab'))")
    r = subprocess.run([str(colab_python), "-c", code], cwd=tmp_path, env=_colab_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    where, widgets, lab = r.stdout.split()
    package = Path(where).resolve().parent
    assert VENV.resolve() in package.parents                 # installed, not a clone on a path
    for module in (ROOT / "resnet_nb").glob("*.py"):
        assert (package / module.name).read_bytes() == module.read_bytes(), module.name
    assert widgets == "7.7.1" and lab == "None"              # Colab's front end kept (--no-deps)
    # The release's reference runs, and nothing of the instructor's course.
    clone = installed.parent
    assert (installed / "MANIFEST.json").read_bytes() == (
        ROOT / "reference" / "MANIFEST.json").read_bytes()
    assert not (clone / "teaching").exists() and not (clone / "tests").exists()
    notebooks = [p.read_text() for p in (clone / "notebooks").glob("*.ipynb")]
    assert notebooks and not any("BEGIN SOLUTION" in n for n in notebooks)


@pytest.mark.slow
def test_lab_notebook_passes_nbval_in_the_colab_like_environment(colab_python, installed,
                                                                 tmp_path):
    notebook = _lab_notebook()
    shutil.copy(notebook, tmp_path / notebook.name)
    r = subprocess.run(
        [str(colab_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" /
                                                             "nbval_sanitize.cfg"),
         "-W", "ignore::DeprecationWarning", notebook.name],
        cwd=tmp_path, env=_colab_env(RESNET_NB_REFERENCE=str(installed)), capture_output=True,
        text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", r.stdout) and " failed" not in r.stdout, r.stdout[-2000:]


@pytest.fixture
def classic_server(colab_python, installed, tmp_path):
    """The classic Notebook 6.5 of .venv-colab on a free port, no token, serving a copy of
    the lab notebook."""
    work = tmp_path / "work"
    work.mkdir()
    notebook = _lab_notebook()
    shutil.copy(notebook, work / notebook.name)
    config = tmp_path / "config"
    config.mkdir()
    port = free_port()
    env = _colab_env(JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
                     RESNET_NB_REFERENCE=str(installed))
    command = [str(colab_python), "-m", "notebook", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", "--NotebookApp.port_retries=0", "--NotebookApp.token=",
               "--NotebookApp.password=", "--NotebookApp.disable_check_xsrf=True",
               f"--NotebookApp.notebook_dir={work}", "--allow-root"]
    with jupyter_server(command, port, work, env, tmp_path / "notebook.log",
                        "the classic Notebook") as url:
        yield url, notebook.name


@pytest.mark.browser
def test_the_lab_runs_and_reacts_in_the_classic_notebook(classic_server, tmp_path):
    url, name = classic_server
    with headless_chromium(tmp_path) as browser:
        try:
            page = browser.new_page()
            page.goto(f"{url}/notebooks/{name}", timeout=120_000)
            page.wait_for_selector("#notebook-container .cell", timeout=120_000)
            page.wait_for_function(
                "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && "
                "Jupyter.notebook.kernel.is_connected()", timeout=120_000, polling=500)
            # Cell > Run All
            page.click("#celllink")
            page.click("#run_all_cells")
            # The saved notebook already shows In [1], [2], ...: wait for the run to start
            # (In [*]) before waiting for it to end.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.code_cell .input_prompt')]"
                ".some(p => p.textContent.includes('*'))", timeout=120_000, polling=100)
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll('.code_cell .input_prompt')];
                    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                }""", timeout=600_000, polling=500)
            body = page.locator("body").inner_text()
            assert "Traceback" not in body and "Error displaying widget" not in body, body[-3000:]

            signal_cell = page.locator(".code_cell", has_text="SignalLab(controls, images, "
                                                              "labels)").first
            summary = signal_cell.locator(".widget-html-content", has_text="gradient at block 1")
            signal_cell.scroll_into_view_if_needed()
            summary_before = summary.inner_text(timeout=30_000)
            image_before = signal_cell.locator(".output_area img").first.get_attribute("src")
            assert summary_before.startswith("ResNet-20 (A)"), summary_before

            # A toggle: switch the shortcut off; the view now leads with the plain network.
            signal_cell.locator("button", has_text="none (plain)").click()
            page.wait_for_function("(el) => el.innerText.startsWith('plain-20')",
                                   arg=summary.element_handle(), timeout=60_000)
            assert signal_cell.locator(".output_area img").first.get_attribute("src") != \
                image_before

            # The depth slider (jQuery UI in ipywidgets 7): drag it to the right.
            handle = signal_cell.locator(".widget-slider .ui-slider-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 120, box["y"] + box["height"] / 2, steps=10)
            page.mouse.up()
            page.wait_for_function("([el, old]) => !el.innerText.startsWith(old)",
                                   arg=[summary.element_handle(), "plain-20"], timeout=60_000)
            after = summary.inner_text()
            depth = int(after.split(":")[0].split("-")[-1])
            assert after.startswith("plain-") and depth > 20, after

            # Train, then Stop: the run starts in the background, its curve grows, and it
            # ends on Stop.
            trainer = page.locator(".code_cell", has_text="TrainingLab(controls, data").first
            trainer.scroll_into_view_if_needed()
            train = trainer.locator("button", has_text="Train")
            stop = trainer.locator("button", has_text="Stop")
            status = trainer.locator(".widget-vbox > .widget-html .widget-html-content").first
            figure = trainer.locator(".widget-vbox > img").first
            assert status.inner_text().startswith(f"next run: plain-{depth}"), status.inner_text()
            assert stop.is_disabled() and train.is_enabled()
            figure_before = figure.get_attribute("src")
            train.click()
            page.wait_for_function("(el) => el.innerText.startsWith('training')",
                                   arg=status.element_handle(), timeout=30_000)
            assert train.is_disabled()
            page.wait_for_function("([el, old]) => el.src !== old",       # the first curve
                                   arg=[figure.element_handle(), figure_before], timeout=120_000)
            stop.click(timeout=30_000)
            t0 = time.perf_counter()
            page.wait_for_function("(el) => !el.disabled", arg=train.element_handle(),
                                   timeout=60_000, polling=100)
            stopped_after = time.perf_counter() - t0
            # The run ended because of Stop (not by finishing), and the view says so.
            assert "(stopped)" in status.inner_text(), status.inner_text()
            assert stop.is_disabled()
            assert stopped_after < 20, f"Stop took {stopped_after:.1f} s"

            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "colab_like_lab.png"))
            body = page.locator("body").inner_text()
            assert "Error displaying widget" not in body and "Traceback" not in body
            assert "Javascript Error" not in body
        except Exception:
            # What the page showed, to see why (test-artifacts/ is not committed).
            page.screenshot(path=str(ARTIFACTS / "colab_like_lab_failed.png"), full_page=True)
            (ARTIFACTS / "colab_like_lab_failed.html").write_text(page.content())
            raise
