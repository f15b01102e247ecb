"""The package as installed: pyproject.toml, environment.yml and the CI floors agree, the
mutation run's test selection collects in mutmut's copy, and importing does no work."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:   # Python < 3.11: tomli comes with the [dev] extra there
    import tomli as tomllib


ROOT = Path(__file__).resolve().parents[2]


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


# conda-forge names of the PyPI packages, where they differ.
CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base",
               "playwright": "playwright-python"}


def _environment_yml() -> tuple[dict[str, str], str]:
    """environment.yml's conda dependencies {name: version range} and its exact Python."""
    env = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"\s+- ([A-Za-z0-9_.-]+)([<>=!~].*)?$", line)
        if m:
            env[_norm(m.group(1))] = (m.group(2) or "").strip()
    return env, env.pop("python", "")


def test_pyproject_and_environment_yml_agree():
    """environment.yml holds what `pip install -e ".[dev]"` installs, under conda-forge names;
    where [dev] narrows a range of the core (ipywidgets>=8 for JupyterLab 4), [dev]'s holds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env, python = _environment_yml()
    m = re.fullmatch(r"=(\d+\.\d+)", python)
    assert m, f"environment.yml names Python {python!r}: Binder needs an exact one, e.g. =3.11"
    python = m.group(1)
    floor = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, floor.split("."))), \
        f"environment.yml's Python {python} is below requires-python {floor}"
    wanted = {}
    for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(dep)
        if req.marker and not req.marker.evaluate({"python_version": python}):
            continue       # e.g. tomli, only below Python 3.11
        wanted[_norm(CONDA_NAMES.get(req.name, req.name))] = str(req.specifier)
    missing = sorted(set(wanted) - set(env))
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    differ = {k: (wanted[k], env[k]) for k in wanted if wanted[k] != env[k]}
    assert not differ, f"version ranges differ (pyproject, environment.yml): {differ}"
    extra = sorted(set(env) - set(wanted) - {"pip"})
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"
    # Binder installs the package itself after copying the repository (postBuild): a `-e .`
    # in environment.yml would run before that, and stops Binder from caching the environment.
    assert not re.search(r"^\s*-\s*(-e|--editable)\b", (ROOT / "environment.yml").read_text(),
                         re.MULTILINE), "environment.yml installs the package: postBuild does"
    assert "pip install --no-deps --editable ." in (ROOT / "postBuild").read_text()
    assert os.access(ROOT / "postBuild", os.X_OK), "postBuild must be executable (chmod +x)"


def test_python_version_is_the_same_everywhere():
    """pyproject's requires-python, the README's set-up line and the environment check agree."""
    from resnet_nb.environment import MINIMUM_PYTHON
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floor = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    readme = (ROOT / "README.md").read_text()
    assert f"Python {floor} or newer" in readme
    assert ".".join(map(str, MINIMUM_PYTHON)) == floor


def test_floors_of_the_environment_check_are_pyprojects():
    """Notebook 00's environment check asks for the versions pyproject.toml requires."""
    from resnet_nb.environment import MINIMUM
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for dep in project["dependencies"]:
        req = Requirement(dep)
        for spec in req.specifier:
            if spec.operator == ">=":
                floors[req.name] = spec.version
    assert MINIMUM == floors


def test_ci_floors_install_exactly_pyprojects_floors():
    """.ci/floors.txt pins each core dependency to the oldest minor release pyproject allows,
    so the floors job tests what pyproject.toml promises (and no floor moves alone)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for dep in project["dependencies"]:
        for spec in Requirement(dep).specifier:
            if spec.operator == ">=":
                declared[_norm(Requirement(dep).name)] = spec.version
    pinned = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\d+\.\d+)\.\*", line.strip())
        if m:
            pinned[_norm(m.group(1))] = m.group(2)
    for name, floor in declared.items():
        assert pinned.get(name) == ".".join(floor.split(".")[:2]), \
            f".ci/floors.txt pins {name} to {pinned.get(name)}, pyproject's floor is {floor}"


def test_every_extra_with_jupyterlab_4_asks_for_ipywidgets_8():
    """JupyterLab 4 and Notebook 7 render only ipywidgets 8 (7.7 shows 'Click to show
    javascript error'): every extra that brings them (directly, or through nbgrader) says so."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra, deps in extras.items():
        names = {_norm(Requirement(d).name): Requirement(d) for d in deps}
        if names.keys() & {"jupyterlab", "notebook", "nbgrader"}:
            assert "ipywidgets" in names, f"[{extra}] brings JupyterLab 4 without ipywidgets>=8"
            assert str(names["ipywidgets"].specifier) == ">=8", f"[{extra}]"


@pytest.mark.slow
def test_the_mutation_runs_tests_collect_in_mutmuts_copy(tmp_path):
    """`mutmut run` (README, before a release) copies only the package, tests/, conftest.py
    and pyproject.toml into mutants/ and stops at once if its test selection does not
    collect there: a test file that reads notebooks/ or tools/ must be left out of it."""
    import shutil
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    for name in ["resnet_nb", "tests", *config["also_copy"], "pyproject.toml"]:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        *config["pytest_add_cli_args"],
                        *config["pytest_add_cli_args_test_selection"]],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0 and " error" not in r.stdout, r.stdout[-3000:]
    # ... and no selected test file reads a top-level path that is not copied there.
    ignored = {a.split("=", 1)[1] for a in config["pytest_add_cli_args"]
               if a.startswith("--ignore=")}
    copied = {"resnet_nb", "tests", *config["also_copy"], "pyproject.toml"}
    for test_file in sorted((ROOT / "tests").rglob("test_*.py")):
        name = test_file.relative_to(ROOT).as_posix()
        if any(name == path or name.startswith(path + "/") for path in ignored):
            continue
        read = set(re.findall(r'(?:ROOT|parents\[2\])\s*/\s*"([^"/]+)', test_file.read_text()))
        assert read <= copied, f"{name} reads {sorted(read - copied)}, which " \
                               "mutmut does not copy: add it to also_copy or --ignore the file"
        assert '"-m", "resnet_nb"' not in test_file.read_text(), \
            f"{name} runs the command line in a subprocess, where mutmut's mutated " \
            "package stops ('Could not figure out where the code to mutate is'): --ignore it"


@pytest.mark.slow
def test_importing_does_no_work(tmp_path):
    code = ("import os, torch, resnet_nb; "
            "assert not torch.cuda.is_initialized(), 'import probed the GPU'; "
            "assert not os.path.exists(os.environ['RESNET_NB_CACHE']), 'import wrote the cache'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "RESNET_NB_CACHE": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_importing_installs_no_signal_handler_and_loads_each_name_on_first_use():
    """Nothing happens at import: python -m resnet_nb installs its handlers when it runs, and
    the public names come from their modules (torch with them) when first used."""
    code = ("import signal, sys, resnet_nb; "
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler; "
            "assert 'torch' not in sys.modules, 'import loaded torch'; "
            "from resnet_nb import History, cifar_resnet, fit; "
            "import resnet_nb.runs, resnet_nb.models, resnet_nb.train; "
            "assert (History, cifar_resnet, fit) == (resnet_nb.runs.History, "
            "resnet_nb.models.cifar_resnet, resnet_nb.train.fit); "
            "assert sorted(resnet_nb.__all__) == sorted(set(resnet_nb.__all__)); "
            "assert all(getattr(resnet_nb, name) is not None for name in resnet_nb.__all__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
