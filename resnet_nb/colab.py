"""The course on Google Colab: what the notebooks' set-up cell does after it has installed the
package.

Every notebook opens with a set-up cell (written by tools/sync_repo_url.py from pyproject.toml).
On Colab it pip-installs the package from the course's class release (a branch of the
repository that holds the student copies, the package and the reference runs, never the worked
solutions), with --no-deps so that Colab's own torch and ipywidgets stay, and then calls
`setup(url, branch)` below; elsewhere it does nothing. `setup` fetches the reference runs of the
same release (a shallow clone beside the notebooks, /content/<name>), points RESNET_NB_REFERENCE
at them and, when the course names one, mounts Google Drive for a shared CIFAR-10 cache.

A failure ends in one sentence that says what to do (CourseNotInstalled, shown without a
traceback); the next cells of a "Run all" do not run.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

CONTENT = Path("/content")        # Colab's working folder
DRIVE = "/content/drive"


class CourseNotInstalled(Exception):
    """The course could not be set up here; the message says what to do."""

    def _render_traceback_(self):     # IPython shows this line instead of a traceback
        return [f"CourseNotInstalled: {self}"]


def _run(what: str, fix: str, *command: str) -> None:
    """Run a command; a failure (or a missing program) becomes one CourseNotInstalled line."""
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except OSError as error:                        # e.g. no git on this machine
        raise CourseNotInstalled(f"could not {what} ({error}): {fix}") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CourseNotInstalled(f"could not {what} ({said}): {fix}")


def fetch_release(url: str, branch: str, folder: Path) -> Path:
    """A shallow clone of `url`'s `branch` in `folder` (kept when it is already there)."""
    if not (folder / ".git").is_dir():
        _run(f"download the course's class release ({branch}) from {url}",
             "check that this address opens in your browser and that the runtime is "
             "connected, then run this cell again",
             "git", "clone", "--quiet", "--depth", "1", "--branch", branch, url, str(folder))
    if not (folder / "reference" / "MANIFEST.json").is_file():
        raise CourseNotInstalled(f"{folder} holds no reference runs (reference/MANIFEST.json): "
                                 f"delete that folder, then run this cell again")
    return folder


def setup(url: str, branch: str, folder: str | os.PathLike | None = None,
          cache: str = "") -> Path:
    """Finish the course's set-up on Colab: the release's reference runs in `folder` (default
    /content/<repository name>) as RESNET_NB_REFERENCE, and RESNET_NB_CACHE = `cache` when it
    is set (a folder under /content/drive/ mounts Google Drive first; Colab asks for
    permission). Returns the folder."""
    name = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    folder = Path(folder) if folder is not None else CONTENT / name
    fetch_release(url, branch, folder)
    os.environ["RESNET_NB_REFERENCE"] = str(folder / "reference")
    if cache:
        if cache.startswith(DRIVE + "/"):
            from google.colab import drive            # only on Colab
            drive.mount(DRIVE)
        os.environ["RESNET_NB_CACHE"] = cache
    print(f"course set up from {url} ({branch}): reference runs in {folder / 'reference'}")
    return folder
