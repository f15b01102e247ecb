"""Settings for the whole test run (`python -m pytest` from the repository root).

The notebooks run under nbval in kernels started by this process, so they inherit
its environment: setting the defaults here (not in a fixture) is what makes every
notebook run the `smoke` profile, with tqdm's bars off. `setdefault` keeps what the
shell sets, so `RESNET_NB_PROFILE=cpu python -m pytest notebooks/` runs the cpu sizes.
The package tests' own fixtures live in tests/conftest.py.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("RESNET_NB_PROFILE", "smoke")
os.environ.setdefault("TQDM_DISABLE", "1")
# OpenMP threads that spin while waiting make small-batch work many times slower on a
# shared 2-core machine (measured: a depth-110 signal update 8-38 s instead of ~2 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    # addopts names the sanitize file relative to the repository root; resolve it so that
    # pytest also works when started from another folder (e.g. `cd tests && pytest`).
    opt = getattr(config.option, "nbval_sanitize_with", None)
    if opt and not os.path.isabs(opt) and not os.path.exists(opt):
        config.option.nbval_sanitize_with = str(ROOT / opt)


# --- nbval runs the students' copies of the notebooks ----------------------------------------
# The notebooks in notebooks/ are the instructor's: each code exercise holds a worked solution
# and an active checker call. What nbval executes top to bottom is their student copies, made
# at the start of the run by tools/make_student_copies.py (nbgrader's ClearSolutions) into
# build/nbval-student/: every cell but the exercises is the same, with the same stored outputs
# (so the `# NBVAL_CHECK_OUTPUT` comparisons are the same), and the exercise cells, tagged
# `raises-exception`, stop at their stubs. The instructor's solutions are run by
# tests/notebooks/test_student_copies.py and the checker tests instead, in the notebooks' own imports.
# One execution of every notebook instead of two keeps the test run's time (README, "Tests and
# benchmarks"). `--instructor-notebooks` runs notebooks/ as they are instead.
STUDENT_COPIES = ROOT / "build" / "nbval-student"


def pytest_addoption(parser):
    parser.addoption("--instructor-notebooks", action="store_true",
                     help="nbval runs notebooks/NN_*.ipynb as they are (worked solutions in "
                          "place), not their student copies")


def _student_copies(config):
    """Make the student copies once per run; None (and the reason) when nbgrader is missing."""
    if not hasattr(config, "_resnet_nb_student_copies"):
        from tools import make_student_copies as module
        try:
            import shutil
            shutil.rmtree(STUDENT_COPIES, ignore_errors=True)
            module.make_student_folder(STUDENT_COPIES, ROOT / "notebooks", force=True)
            config._resnet_nb_student_copies = (STUDENT_COPIES, None)
        except module.CopyError as e:
            if os.environ.get("CI") == "true":
                raise
            config._resnet_nb_student_copies = (None, str(e))
    return config._resnet_nb_student_copies


def _student_copy_class():
    """nbval's notebook file, named by the instructor notebook's path (so that `pytest
    notebooks/NN_x.ipynb` finds it and reports `notebooks/NN_x.ipynb::Cell N`), that reads and
    runs its student copy (nbval reads `fspath`, and starts the kernel in its folder)."""
    from _pytest.compat import legacy_path
    from nbval.plugin import IPyNbFile

    class StudentCopy(IPyNbFile):
        student: Path

        @property
        def fspath(self):
            return legacy_path(self.student)

    return StudentCopy


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    outcome = yield
    config = parent.config
    if (file_path.suffix != ".ipynb" or file_path.resolve().parent != ROOT / "notebooks"
            or config.getoption("--instructor-notebooks")):
        return
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:
        return
    collected = outcome.get_result()
    if not any(isinstance(c, IPyNbFile) for c in collected):
        return
    folder, why = _student_copies(config)
    if folder is None:                    # no nbgrader: run the instructor notebook itself
        config._resnet_nb_no_copies = why
        return
    StudentCopy = _student_copy_class()
    result = []
    for c in collected:
        if isinstance(c, IPyNbFile):
            c = StudentCopy.from_parent(parent, path=file_path)
            c.student = folder / file_path.name
        result.append(c)
    outcome.force_result(result)


def pytest_collection_modifyitems(items):
    """Every cell nbval runs is marked `notebooks` and `slow` (`-m "not slow"` runs none)."""
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:
        return
    for item in items:
        if isinstance(item.parent, IPyNbFile):
            item.add_marker(pytest.mark.notebooks)
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter, config):
    why = getattr(config, "_resnet_nb_no_copies", None)
    if why:
        terminalreporter.write_line(f"nbval ran notebooks/ itself, not the student copies: {why}")
