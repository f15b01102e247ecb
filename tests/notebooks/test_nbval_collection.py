"""The root conftest.py's collection of the notebooks: nbval runs each notebook's student copy,
under the instructor notebook's name, so that one notebook runs by its path as pytest says."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_notebook_is_found_by_its_path_and_marked_slow():
    notebook = "notebooks/00_start_here.ipynb"
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                        "--collect-only", notebook], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "not found" not in r.stdout + r.stderr, r.stdout + r.stderr
    cells = [line for line in r.stdout.splitlines() if line.startswith(f"{notebook}::Cell ")]
    assert cells and cells[0] == f"{notebook}::Cell 0"
    quick = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                            "--collect-only", "-m", "not slow", notebook], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert f"no tests collected ({len(cells)} deselected)" in quick.stdout, \
        quick.stdout
