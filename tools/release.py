"""Make the class release: what students get, as a folder and as a git branch.

    python -m tools release                       # build/release/ and the branch `class`
    python -m tools release --out DIR --branch B  # another folder or branch
    python -m tools release --no-branch           # the folder only

The release holds the student copies of the notebooks (tools/make_student_copies.py: the
worked solutions replaced by stubs), the resnet_nb package, the reference runs, what installs
them (pyproject.toml, environment.yml and postBuild, which Binder and repo2docker read) and a
short README for students. It holds no instructor notebooks, no teaching/ (the answer key), no
tests and no tools. The branch (default: pyproject's `[tool.resnet_nb] release-branch`) is
what the notebooks' Colab set-up cell installs from, what nbgitpuller links pull onto a class
hub, and what repo2docker builds the hub's single-user image from (deploy/README.md).

The branch is written without touching the work tree, the index or HEAD (a temporary index),
and its history has only releases in it: the first release is a commit without a parent, each
later one a child of the previous release, so that nbgitpuller can merge it into students'
folders and a clone of the branch never reaches the instructor history. Push it yourself:
`git push origin class`.

The folder is refused when it exists and was not made by this command (no .class-release in
it); a release whose files are those of the branch's last commit adds no commit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:   # Python < 3.11
    import tomli as tomllib

from tools import make_student_copies

ROOT = Path(__file__).resolve().parent.parent
MARKER = ".class-release"
# conda-forge names for the image's environment.yml, where they differ from PyPI's. The
# single-user image needs only jupyterhub's single-user server, not the hub.
CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base",
               "jupyterhub": "jupyterhub-singleuser",
               "jupyterhub-firstuseauthenticator": None}      # the hub's, not the image's
# The hub of Zero to JupyterHub's 4.x chart and of The Littlest JupyterHub runs JupyterHub 5:
# the image's single-user server keeps its major version.
IMAGE_PINS = {"jupyterhub-singleuser": ">=5,<6"}
IMAGE_EXTRAS = ("notebook", "hub")         # besides the package's own dependencies
PYTHON = "3.11"                            # the image's Python (the one CI tests)


class ReleaseError(Exception):
    """A user mistake; the message is one line saying what to do."""


# --- what the release holds ------------------------------------------------------------

def _pyproject(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))


def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def release_pyproject(data: dict) -> str:
    """The release's pyproject.toml: the package, its dependencies and the student-facing
    extras ([notebook], [hub]); no test, teaching or mutation settings."""
    project = {k: v for k, v in data["project"].items() if k != "optional-dependencies"}
    extras = {k: v for k, v in data["project"].get("optional-dependencies", {}).items()
              if k in IMAGE_EXTRAS}
    lines = ["# The class release of the course (made by `python -m tools release`): the "
             "package that", "# the notebooks import. Install: pip install .", "",
             "[build-system]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data["build-system"].items()]
    lines += ["", "[project]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in project.items() if k != "urls"]
    for table in ("urls",):
        if table in project:
            lines += ["", f"[project.{table}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in project[table].items()]
    lines += ["", "[project.optional-dependencies]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in extras.items()]
    lines += ["", "[tool.setuptools]", f"packages = {_toml_value(['resnet_nb'])}"]
    settings = data.get("tool", {}).get("resnet_nb", {})
    if settings:
        lines += ["", "[tool.resnet_nb]"] + [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def image_requirements(data: dict) -> list[str]:
    """The single-user image's packages as conda-forge names with their ranges: the package's
    dependencies and its [notebook] and [hub] extras, each once (the last range wins)."""
    from packaging.requirements import Requirement
    project = data["project"]
    found: dict[str, str] = {}
    for dep in project["dependencies"] + [d for extra in IMAGE_EXTRAS
                                          for d in project["optional-dependencies"][extra]]:
        req = Requirement(dep)
        if req.marker and not req.marker.evaluate({"python_version": PYTHON}):
            continue
        name = CONDA_NAMES.get(req.name, req.name)
        found[name] = IMAGE_PINS.get(name, str(req.specifier))
    return [f"{name}{spec}" for name, spec in found.items() if name]


def environment_yml(data: dict) -> str:
    deps = "\n".join(f"  - {r}" for r in [f"python={PYTHON}"] + image_requirements(data))
    return ("# The class's single-user environment (made by `python -m tools release`): "
            "repo2docker and\n# Binder build it, then run postBuild. Generated from the course's "
            "pyproject.toml\n# (dependencies, [notebook], [hub]); CPU-only PyTorch.\n"
            f"name: resnet-nb-class\nchannels:\n  - conda-forge\ndependencies:\n{deps}\n")


POSTBUILD = """#!/bin/bash
# repo2docker (and Binder) run this in the release's folder after creating environment.yml's
# environment. A regular install, not --editable: on a hub the student's home volume hides
# the folder the image was built from. --no-deps: conda has installed the dependencies.
set -euo pipefail
python -m pip install --no-deps .
# Students fetch and submit assignments (nbgrader's Assignments tab); the instructor's
# formgrader and assignment-creation panels stay hidden (and locked) in their JupyterLab.
for plugin in @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment; do
    jupyter labextension disable --level=sys_prefix "$plugin"
    jupyter labextension lock --level=sys_prefix "$plugin"
done
"""


def student_readme(repo_url: str, branch: str, notebooks: list[str], source: str) -> str:
    listing = "\n".join(f"- [{n}](notebooks/{n})" for n in notebooks)
    return f"""# resnet-nb: the class copy

An interactive notebook course on residual networks (He et al., 2015). Work through the
notebooks in order; each says at the top what you will see and how long it takes.

{listing}

Exercises stop at `YOUR CODE HERE` until you write your answer; running the cell checks it.

Where to run it:
- **On your class's JupyterHub:** open the link your teacher gave you. Your changes stay in
  your folder when the teacher updates the course.
- **On Colab:** open a notebook from {repo_url} (branch `{branch}`) with "Open in Colab"; its
  first code cell installs the course.
- **On your own computer:** `pip install ".[notebook]"` in this folder, then `jupyter lab`.

Made by `python -m tools release` from the course's commit {source}.
"""


def _tracked(root: Path, folder: str) -> list[Path]:
    """The files of `folder` that git tracks or would track (not the ignored ones)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                          "--", folder], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    return [root / n for n in out.split("\0") if n and (root / n).is_file()]


def source_commit(root: Path) -> str:
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                          capture_output=True, text=True)
    if head.returncode != 0:
        return "(not a git checkout)"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def make_release_folder(out: Path, root: Path = ROOT) -> list[Path]:
    """Write the release into `out` (emptied first when it is a release folder already)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise ReleaseError(f"{out} exists and is not a class release ({MARKER} is missing): "
                           "choose another --out, or remove it")
    if out.resolve() == root.resolve() or out.resolve() in root.resolve().parents:
        raise ReleaseError(f"--out {out} would hold the course itself: choose a folder "
                           "inside it (e.g. build/release) or outside it")
    data = _pyproject(root)
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            make_student_copies.make_student_folder(Path(tmp) / "s", root / "notebooks")
        except make_student_copies.CopyError as e:
            raise ReleaseError(str(e)) from None
        (out / "notebooks").mkdir(parents=True)
        for path in sorted((Path(tmp) / "s").iterdir()):
            if path.name != make_student_copies.MARKER_FILE:
                shutil.copy2(path, out / "notebooks" / path.name)
    for folder in ("resnet_nb", "reference"):
        for path in _tracked(root, folder):
            if path.suffix == ".pyc":
                continue
            target = out / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    (out / "pyproject.toml").write_text(release_pyproject(data), encoding="utf-8")
    (out / "environment.yml").write_text(environment_yml(data), encoding="utf-8")
    (out / "postBuild").write_text(POSTBUILD, encoding="utf-8")
    (out / "postBuild").chmod(0o755)
    settings = data.get("tool", {}).get("resnet_nb", {})
    notebooks = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    (out / "README.md").write_text(student_readme(
        data["project"].get("urls", {}).get("Repository", ""),
        settings.get("release-branch", "class"), notebooks, source_commit(root)),
        encoding="utf-8")
    (out / MARKER).write_text("made by `python -m tools release`; rerunning it replaces this "
                              "folder\n", encoding="utf-8")
    return sorted(p for p in out.rglob("*") if p.is_file())


# --- the branch ------------------------------------------------------------------------

def _git(repo: Path, *args: str, env: dict | None = None, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args[:2])} failed ({done.stderr.strip()}): is "
                           f"{repo} a git repository you can write to?")
    return done.stdout.strip()


def commit_release(folder: Path, branch: str, repo: Path = ROOT,
                   message: str = "class release") -> str | None:
    """Commit `folder`'s files as the next commit of `branch` in `repo`; return the commit,
    or None when the files are those of the branch's last commit."""
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", branch):
        raise ReleaseError(f"{branch!r} is not a branch name: use letters, digits, . _ - /")
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir"))
    previous = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}",
                    check=False) or None
    if previous and _git(repo, "rev-parse", "--abbrev-ref", "HEAD", check=False) == branch:
        raise ReleaseError(f"{branch} is checked out here: switch to another branch first")
    with tempfile.TemporaryDirectory() as tmp:
        # A temporary index and the release folder as the work tree: the repository's own
        # work tree, index and HEAD are never touched.
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_DIR": str(git_dir),
               "GIT_WORK_TREE": str(Path(folder).resolve())}
        _git(Path(folder).resolve(), "add", "--all", "--force", ".", env=env)
        tree = _git(Path(folder).resolve(), "write-tree", env=env)
    if previous and _git(repo, "rev-parse", f"{previous}^{{tree}}") == tree:
        return None
    ident = {}
    if not _git(repo, "config", "user.email", check=False):     # e.g. a fresh CI machine
        ident = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                 for what, value in (("NAME", "resnet-nb release"), ("EMAIL", "release@localhost"))}
    parents = ["-p", previous] if previous else []
    commit = _git(repo, "commit-tree", tree, *parents, "-m", message, env=ident)
    _git(repo, "update-ref", f"refs/heads/{branch}", commit, *([previous] if previous else []))
    return commit


def main(argv: list[str] | None = None) -> int:
    data = _pyproject(ROOT)
    default_branch = data.get("tool", {}).get("resnet_nb", {}).get("release-branch", "class")
    p = argparse.ArgumentParser(description="Make the class release (student copies, package, "
                                            "reference runs) as a folder and a git branch.")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "release",
                   help="the release folder (default: build/release)")
    p.add_argument("--branch", default=default_branch,
                   help=f"the branch to commit it to (default: {default_branch})")
    p.add_argument("--no-branch", action="store_true", help="make the folder only")
    args = p.parse_args(argv)
    try:
        files = make_release_folder(args.out)
        print(f"{len(files)} files in {args.out}")
        if not args.no_branch:
            source = source_commit(ROOT)
            commit = commit_release(args.out, args.branch, ROOT,
                                    f"class release from {source}")
            if commit is None:
                print(f"branch {args.branch} already holds this release: nothing to commit")
            else:
                print(f"branch {args.branch} is now {commit[:12]}; publish it with "
                      f"`git push origin {args.branch}`")
    except ReleaseError as e:
        print(f"release: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
