"""The first views of a notebook's widgets, for the website: run it once with widget state kept.

The committed notebooks keep no widget state (without a kernel, JupyterLab shows saved state as
"model not found"), so the cells that display the lab's controls have no stored output. For the
website, each notebook that uses widgets (its code imports ipywidgets or resnet_nb.widgets) is
run from the top under the `smoke` profile by nbclient with `store_widget_state`, as its
student copy (the exercise cells stop at their stubs, as under the tests), in a fresh kernel
whose working folder is notebooks/. What the site keeps from that run:

- the widget views of the code cells that have no stored output in the committed notebook (the
  cells whose output is a widget; exercise cells excepted), by cell id; the run stops after the
  last such cell, so the views are the first ones;
- the saved state of the widget models those views show, and of the models they refer to.

Every other output on the site stays the committed one. The views come first from
notebooks/widget_views/NN_topic.json, written by tools/run_notebooks.py when it regenerates
the notebook's stored outputs (the same run, so the controls show the same numbers as the
printed outputs), as long as the notebook's code cells are those it ran. Only without it is
the notebook run here, under the smoke profile. Such a run takes up to a minute per notebook
on a 2-core machine, so its result is cached in .cache/site/widgets/ (git-ignored)
under a sha256 of what it depends on: the notebook's code cells, the resnet_nb package's
source, the reference runs' manifest, this script and the student copies' maker, the profile
and the ipywidgets version. Edits of the prose do not invalidate it.

    python -m tools.site_widgets NOTEBOOK OUT.json    # one run (what the site build starts)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "site" / "widgets"
PROFILE = "smoke"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
USES_WIDGETS = re.compile(r"^\s*(?:(?:from|import)\s+(?:ipywidgets|resnet_nb\.widgets)\b"
                          r"|from\s+resnet_nb\s+import\s.*\bwidgets\b)", re.M)
MODEL_REF = re.compile(r'IPY_MODEL_([0-9a-f]{8,})|"model_id":\s*"([0-9a-f]{8,})"')


class WidgetRunError(RuntimeError):
    """A notebook could not be run for its widget views; the message says what to do."""


def uses_widgets(nb) -> bool:
    """True when a code cell imports ipywidgets or resnet_nb.widgets."""
    return any(c.cell_type == "code" and USES_WIDGETS.search(c.source) for c in nb.cells)


def cache_key(nb) -> str:
    """sha256 of everything the widget views depend on (not the notebook's prose)."""
    from importlib.metadata import version
    h = hashlib.sha256()
    parts = [PROFILE, version("ipywidgets")] + [c.source for c in nb.cells
                                                 if c.cell_type == "code"]
    files = sorted((ROOT / "resnet_nb").glob("*.py")) + [
        ROOT / "reference" / "MANIFEST.json", Path(__file__).resolve(),
        ROOT / "tools" / "make_student_copies.py"]
    for path in files:
        parts.append(f"{path.relative_to(ROOT)}\n{path.read_text(encoding='utf-8')}"
                     if path.exists() else str(path.relative_to(ROOT)))
    for part in parts:
        h.update(part.encode("utf-8") + b"\0")
    return h.hexdigest()


STORED = ROOT / "notebooks" / "widget_views"


def code_hash(nb) -> str:
    """sha256 of a notebook's code cells other than its exercises: the same for the instructor
    notebook and its student copy, and unchanged by edits of the prose."""
    from tools.make_student_copies import is_solution_cell
    h = hashlib.sha256()
    for cell in nb.cells:
        if (cell.cell_type == "code" and not is_solution_cell(cell)
                and "raises-exception" not in cell.get("metadata", {}).get("tags", [])):
            h.update(cell.source.encode("utf-8") + b"\0")
    return h.hexdigest()


def stored_views_path(notebook: str, folder: Path = STORED) -> Path:
    return folder / f"{Path(notebook).stem}.json"


def store_views(executed, committed, path: Path) -> dict | None:
    """Keep the widget views of a notebook run by tools/run_notebooks.py (the run whose outputs
    the notebook stores) in notebooks/widget_views/, with the hash of the code they came from;
    None when the notebook shows no widget."""
    result = views_and_state(executed, committed)
    if not result["views"]:
        return None
    result = {"code_sha256": code_hash(committed), "profile": os.environ.get(
        "RESNET_NB_PROFILE", "cpu"), **result}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=None, sort_keys=True) + "\n")
    partial.replace(path)
    return result


def stored_views(nb, notebook: str, folder: Path = STORED) -> dict | None:
    """The views stored by the notebook's last regeneration, if they came from its code as it
    is now; else None."""
    path = stored_views_path(notebook, folder)
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    return found if found.get("code_sha256") == code_hash(nb) else None


def reachable(state: dict, roots: list[str]) -> dict:
    """The models of `state` that the views `roots` show, directly or through other models."""
    keep, todo = {}, list(roots)
    while todo:
        model = todo.pop()
        if model in keep or model not in state:
            continue
        keep[model] = state[model]
        for a, b in MODEL_REF.findall(json.dumps(state[model])):
            todo.append(a or b)
    return keep


def may_show_a_widget(cell) -> bool:
    """A code cell with no stored output that is not an exercise left for the student: the
    cells whose widget view the site shows."""
    return cell.cell_type == "code" and not cell.get("outputs") and \
        "raises-exception" not in cell.get("metadata", {}).get("tags", [])


def views_and_state(executed, committed) -> dict:
    """What the site takes from an executed copy (see the module's docstring)."""
    stored = {c.get("id"): c for c in committed.cells if may_show_a_widget(c)}
    views, roots = {}, []
    for cell in executed.cells:
        before = stored.get(cell.get("id"))
        if before is None or before.source != cell.source:
            continue
        shown = [out for out in cell.get("outputs", []) if WIDGET_VIEW in out.get("data", {})]
        if shown:
            views[cell.id] = shown
            roots += [out["data"][WIDGET_VIEW]["model_id"] for out in shown]
    state = executed.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    kept = reachable(state, roots)
    missing = sorted(set(roots) - set(kept))
    if missing:
        raise WidgetRunError(f"the run saved no state for widget(s) {', '.join(missing)}")
    return {"views": views, "state": {"version_major": 2, "version_minor": 0, "state": kept}}


def execute(path: Path, timeout: int = 600) -> dict:
    """Run the student copy of `path` with widget state kept; what the site takes from it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from tools.make_student_copies import student_copy

    committed = student_copy(nbformat.read(path, as_version=4))
    executed = nbformat.from_dict(json.loads(json.dumps(committed)))
    # No cell after the last one that may show a widget can add a view: the run stops there,
    # so the views are also the first ones (no later cell has moved their controls).
    last = max((i for i, c in enumerate(executed.cells) if may_show_a_widget(c)), default=-1)
    executed.cells = executed.cells[:last + 1]
    client = NotebookClient(executed, timeout=timeout, kernel_name="python3",
                            store_widget_state=True, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        said = str(e).strip().splitlines()[-1]
        raise WidgetRunError(f"{path.name} stopped under the {PROFILE} profile ({said})") \
            from None
    return views_and_state(executed, committed)


def _environment() -> dict:
    return {**os.environ, "RESNET_NB_PROFILE": PROFILE, "TQDM_DISABLE": "1",
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
                "PYTHONPATH", "").split(os.pathsep) if p])}


def widget_views(paths: list[Path], cache: Path = CACHE, say=print) -> dict[str, dict]:
    """{notebook name: views and state} for the notebooks that use widgets, from the cache or
    from runs (one process per notebook, started together)."""
    import nbformat

    wanted, results, running = {}, {}, {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if not uses_widgets(nb):
            continue
        stored = stored_views(nb, path.name)
        if stored is not None:            # the views of the run whose outputs the page shows
            results[path.name] = stored
            continue
        say(f"{path.name}: no widget views stored for its code as it is "
            f"({stored_views_path(path.name).relative_to(ROOT)}; tools/run_notebooks.py "
            f"writes them): drawing them under the {PROFILE} profile")
        wanted[path] = cache / f"{path.stem}-{cache_key(nb)[:20]}.json"
    for path, entry in wanted.items():
        if entry.exists():
            results[path.name] = json.loads(entry.read_text())
            continue
        cache.mkdir(parents=True, exist_ok=True)
        log = open(entry.with_suffix(".log"), "w")
        say(f"running {path.name} under the {PROFILE} profile for its widgets' first views "
            "(cached afterwards)")
        running[path] = (subprocess.Popen(
            [sys.executable, "-m", "tools.site_widgets", str(path), str(entry)], cwd=ROOT,
            env=_environment(), stdout=log, stderr=subprocess.STDOUT), log, time.perf_counter())
    ended = {}
    while len(ended) < len(running):            # note when each run ends, for its time
        for path, (proc, _, t0) in running.items():
            if path not in ended and proc.poll() is not None:
                ended[path] = time.perf_counter() - t0
        time.sleep(0.2)
    for path, (proc, log, _) in running.items():
        status = proc.returncode
        log.close()
        entry = wanted[path]
        if status != 0:
            said = entry.with_suffix(".log").read_text().strip().splitlines() or ["no message"]
            raise WidgetRunError(f"{said[-1]}: see {entry.with_suffix('.log')}; give the run "
                                 "CIFAR-10 (RESNET_NB_DATA, or the internet), or build with "
                                 "--no-widgets")
        for old in cache.glob(f"{path.stem}-*.json"):      # earlier versions of this notebook
            if old != entry:
                old.unlink()
        say(f"{path.name}: widget views in {ended[path]:.0f} s")
        results[path.name] = {"profile": PROFILE, **json.loads(entry.read_text())}
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        result = execute(Path(argv[0]))
    except WidgetRunError as e:
        print(f"site_widgets: {e}", file=sys.stderr)
        return 1
    partial = Path(argv[1] + ".partial")
    partial.write_text(json.dumps(result))
    partial.replace(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
