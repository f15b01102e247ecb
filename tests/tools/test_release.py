"""The class release (python -m tools release) holds what students need and no answers.

The oracle is the instructor material itself: every line of a solution region in
notebooks/NN_*.ipynb, every sentence and code line of teaching/answer_key.md, and the folded
worked-solution markers. None of them may appear anywhere in the release (the folder and the
branch's files alike), except where students see the same words anyway: outside a solution in
the notebooks (an exercise's own statement, say) or in the package's source. The checker is
shown to find answers when they are there.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import notebook_answers as A
from tools import make_student_copies as S
from tools import release as R

ROOT = A.ROOT
INSTRUCTOR = sorted(A.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
WORD_RUN = re.compile(r"\s+")


def _norm(text: str) -> str:
    return WORD_RUN.sub(" ", text).strip()


def _notebook_text(nb: dict) -> str:
    parts = []
    for c in nb["cells"]:
        parts.append(A.source(c))
        for out in c.get("outputs", []):
            for value in [out.get("text", "")] + list(out.get("data", {}).values()):
                parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def _file_text(path: Path, data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None                                   # weights: no text to hide answers in
    if path.suffix == ".ipynb":
        return _notebook_text(json.loads(text)) + "\n" + text
    return text


def _outside_solutions() -> str:
    """What students see anyway: the instructor notebooks outside their solution regions
    (exercise statements, the code around the stubs, the outputs of cells that are not
    exercises) and the package's source, which the notebooks import and print (a solution
    line such as `return F.relu(out + identity)` is also how resnet_nb.blocks reads)."""
    parts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "resnet_nb").glob("*.py"))]
    for path in INSTRUCTOR:
        nb = A.read(path)
        exercises = set(A.exercise_cells(nb))
        for i, c in enumerate(nb["cells"]):
            regions = {l for r in S.solution_regions(c) for l in r}
            parts.append("\n".join(l for l in A.source(c).split("\n") if l not in regions))
            if i not in exercises:
                parts.append(_notebook_text({"cells": [{**c, "source": ""}]}))
    return _norm("\n".join(parts))


def answers() -> list[str]:
    """Every piece of an answer: solution lines, answer-key sentences and code lines."""
    outside = _outside_solutions()
    found = []
    for path in INSTRUCTOR:
        nb = A.read(path)
        for c in nb["cells"]:
            for region in S.solution_regions(c):
                found += [_norm(l) for l in region]
    key = (ROOT / "teaching" / "answer_key.md").read_text(encoding="utf-8")
    code = re.findall(r"```\w*\n(.*?)```", key, re.DOTALL)
    found += [_norm(l) for block in code for l in block.split("\n")]
    prose = re.sub(r"```\w*\n.*?```", " ", key, flags=re.DOTALL)
    found += [_norm(s) for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", prose)
              if len(re.findall(r"\w+", s)) >= 8]
    # Short lines ("return x", "pass"), words shown outside the solutions and lines with no
    # word in them (a table's "|---|---|") give nothing away.
    return sorted({a for a in found if len(a) >= 12 and a not in outside
                   and re.search(r"[A-Za-z0-9]{2}", a)})


def answers_in(files: dict[str, bytes]) -> list[str]:
    """'file: answer' for each answer found in the files, and each worked-solution marker."""
    wanted = answers()
    hits = []
    for name, data in files.items():
        text = _file_text(Path(name), data)
        if text is None:
            continue
        flat = _norm(text)
        hits += [f"{name}: {a[:70]}" for a in wanted if a in flat]
        for marker in (A.BEGIN, A.END, S.SOLUTION_NOTE, S.TITLE, "Worked answer",
                       "Worked solution"):
            if marker in text:
                hits.append(f"{name}: the marker {marker!r}")
    return hits


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    pytest.importorskip("nbgrader", reason="the release's student copies need nbgrader: "
                                           "pip install -e \".[teach]\"")
    base = tmp_path_factory.mktemp("release")
    repo = base / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    folder = base / "out"
    files = R.make_release_folder(folder)
    commit = R.commit_release(folder, "class", repo, "class release (test)")
    return folder, repo, commit, files


def _branch_files(repo: Path, branch: str) -> dict[str, bytes]:
    names = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--name-only", branch],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    return {n: subprocess.run(["git", "-C", str(repo), "show", f"{branch}:{n}"],
                              capture_output=True, check=True).stdout for n in names if n}


@pytest.mark.slow
def test_the_checker_finds_the_answers_in_the_instructor_material():
    assert len(answers()) >= 100
    hits = answers_in({p.name: p.read_bytes() for p in INSTRUCTOR})
    assert len({h.split(":")[0] for h in hits}) >= 6, hits[:5]
    key = (ROOT / "teaching" / "answer_key.md").read_bytes()
    assert len(answers_in({"answer_key.md": key})) >= 50


@pytest.mark.slow
def test_no_answer_anywhere_in_the_release_folder(release):
    folder, _, _, files = release
    found = answers_in({str(p.relative_to(folder)): p.read_bytes() for p in files})
    assert not found, "\n".join(found[:20])


@pytest.mark.slow
def test_no_answer_anywhere_in_the_release_branch(release):
    _, repo, commit, _ = release
    files = _branch_files(repo, "class")
    assert files and not answers_in(files)
    # Its history holds releases only: a clone of the branch cannot reach the instructor's.
    assert subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "class"],
                          capture_output=True, text=True).stdout.strip() == "1"


@pytest.mark.slow
def test_the_release_holds_what_students_need_and_nothing_else(release):
    folder, _, _, files = release
    top = {p.relative_to(folder).parts[0] for p in files}
    assert top == {"notebooks", "resnet_nb", "reference", "pyproject.toml", "environment.yml",
                   "postBuild", "README.md", R.MARKER}
    names = sorted(p.name for p in (folder / "notebooks").glob("*.ipynb"))
    assert names == [p.name for p in INSTRUCTOR]
    assert (folder / "notebooks" / "timings.json").is_file()
    tracked = subprocess.run(["git", "ls-files", "resnet_nb", "reference"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        assert (folder / name).read_bytes() == (ROOT / name).read_bytes(), name
    # Every code exercise stops at its stub: the students' copies, not the instructor's.
    stubs = [c for p in (folder / "notebooks").glob("*.ipynb") for c in A.read(p)["cells"]
             if "exercise not done yet" in A.source(c)]
    exercises = [c for p in INSTRUCTOR for c in A.read(p)["cells"]
                 if c["cell_type"] == "code" and "BEGIN SOLUTION" in A.source(c)]
    assert len(stubs) == len(exercises) >= 10


@pytest.mark.slow
def test_the_release_installs_as_a_package(release, tmp_path):
    """pyproject.toml builds the package alone (what the Colab set-up cell installs), and the
    image's environment holds the package's dependencies and the hub's single-user server."""
    folder = release[0]
    from packaging.requirements import Requirement
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    data = tomllib.loads((folder / "pyproject.toml").read_text())
    course = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["dependencies"] == course["project"]["dependencies"]
    assert set(data["project"]["optional-dependencies"]) == {"notebook", "hub"}
    assert data["tool"]["setuptools"]["packages"] == ["resnet_nb"] and "pytest" not in str(data)
    env = (folder / "environment.yml").read_text()
    for dep in course["project"]["dependencies"]:
        name = R.CONDA_NAMES.get(Requirement(dep).name, Requirement(dep).name)
        assert re.search(rf"^  - {re.escape(name)}\b", env, re.MULTILINE), name
    assert "jupyterhub-singleuser" in env and "nbgitpuller" in env and "pytest" not in env
    post = (folder / "postBuild").read_text()
    assert "pip install --no-deps .\n" in post and "--editable" not in post.split("\n", 5)[-1]
    copy = shutil.copytree(folder, tmp_path / "copy")        # a build writes into its folder
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path), str(copy)],
                           capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    import zipfile
    (built,) = tmp_path.glob("resnet_nb-*.whl")
    names = zipfile.ZipFile(built).namelist()
    assert "resnet_nb/colab.py" in names and not any(n.startswith(("notebooks/", "reference/"))
                                                    for n in names)


@pytest.mark.slow
def test_a_second_release_is_a_child_of_the_first_and_an_unchanged_one_adds_nothing(release):
    folder, repo, first, _ = release
    assert R.commit_release(folder, "class", repo, "again") is None
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\nUpdated.\n")
    second = R.commit_release(folder, "class", repo, "update")
    parent = subprocess.run(["git", "-C", str(repo), "rev-parse", f"{second}^"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert parent == first


def test_user_mistakes_are_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("mine")
    assert R.main(["--out", str(taken), "--no-branch"]) == 2
    err = capsys.readouterr().err
    assert "is not a class release" in err and err.count("\n") == 1
    assert (taken / "thesis.tex").read_text() == "mine"
    with pytest.raises(R.ReleaseError, match="not a branch name"):
        R.commit_release(taken, "no spaces", tmp_path)


@pytest.mark.slow
def test_the_notebooks_of_a_pulled_release_find_its_reference_runs(release, monkeypatch):
    """On a hub the package is installed in the image and the release is pulled into the
    student's home: a notebook's kernel (running in notebooks/) finds ../reference."""
    from resnet_nb import reference
    folder = release[0]
    monkeypatch.delenv("RESNET_NB_REFERENCE", raising=False)
    monkeypatch.setattr(reference, "_checkout_reference", lambda: folder / "not-here")
    monkeypatch.chdir(folder / "notebooks")
    assert reference.reference_dir() == folder / "reference"
    assert reference.load_history("resnet-20").config       # checked against its manifest
    monkeypatch.chdir(folder.parent)                          # elsewhere: the checkout's
    assert reference.reference_dir() == folder / "not-here"
