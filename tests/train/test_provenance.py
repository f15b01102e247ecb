"""Provenance names the commit of the checkout the package came from, and no other."""
import shutil
import subprocess
from pathlib import Path

import pytest

from resnet_nb.provenance import git_commit

PACKAGE = Path(__file__).resolve().parents[2] / "resnet_nb"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c",
       "commit.gpgsign=false"]


def _git(*args, cwd):
    return subprocess.run(GIT + list(args), cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A repository that tracks a copy of the package, with one commit."""
    repo = tmp_path / "course"
    shutil.copytree(PACKAGE, repo / "resnet_nb", ignore=shutil.ignore_patterns("__pycache__"))
    _git("init", "-q", cwd=repo)
    _git("add", "resnet_nb", cwd=repo)
    _git("commit", "-q", "-m", "course", cwd=repo)
    return repo


def test_a_package_tracked_by_its_checkout_records_that_commit(checkout):
    sha = _git("rev-parse", "--short=12", "HEAD", cwd=checkout)
    assert git_commit(checkout / "resnet_nb") == sha
    (checkout / "resnet_nb" / "blocks.py").write_text("# changed\n")
    assert git_commit(checkout / "resnet_nb") == sha + "+dirty"


def test_a_package_installed_inside_another_repository_records_no_commit(tmp_path):
    """E.g. `pip install .` into a .venv inside some other project's checkout."""
    other = tmp_path / "other-project"
    other.mkdir()
    (other / "README").write_text("another project\n")
    _git("init", "-q", cwd=other)
    _git("add", "README", cwd=other)
    _git("commit", "-q", "-m", "other", cwd=other)
    installed = other / ".venv" / "lib" / "python3" / "site-packages" / "resnet_nb"
    shutil.copytree(PACKAGE, installed, ignore=shutil.ignore_patterns("__pycache__"))
    assert git_commit(installed) == "unknown"


def test_outside_any_repository_the_commit_is_unknown(tmp_path):
    plain = tmp_path / "site-packages" / "resnet_nb"
    shutil.copytree(PACKAGE, plain, ignore=shutil.ignore_patterns("__pycache__"))
    assert git_commit(plain) == "unknown"
