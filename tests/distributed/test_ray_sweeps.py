"""Reference sweeps on Ray: `python -m tools reproduce ... --ray` on a local Ray instance.

Oracle: the plain path (one run after another in one process). A smoke-size sweep of two
networks and two seeds on Ray, with one worker killed (SIGKILL) after its run's first epoch,
stores the same histories, to the last bit (both compute on one CPU thread per run), the
same exported weights, and the killed run's history records the sitting that resumed it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["fig6:20", "--seeds", "0", "1", "--epochs", "3", "--train-size", "1024",
         "--test-size", "100", "--data", "synthetic"]
RUNS = ("plain-20-seed0", "resnet-20-seed0", "plain-20-seed1", "resnet-20-seed1")
TIMING = ("train_seconds", "images_per_second", "seconds")


def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise          # CI installs the [ray] extra (.ci/run)
        pytest.skip('Ray is not installed (pip install -e ".[ray]")')


def _env(mark: str = "") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
           "RESNET_NB_SWEEP_TEST": mark, "RAY_AUTH_MODE": "disabled"}
    env.pop("RESNET_NB_DEBUG", None)
    return env


def _reproduce(*args: str) -> list[str]:
    return [sys.executable, "-m", "tools", "reproduce", *args]


def _processes_marked(mark: str) -> list[int]:
    """Processes whose environment carries `mark` (the sweep and everything Ray started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"RESNET_NB_SWEEP_TEST={mark}".encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _worker_training(run_id: str) -> int | None:
    """The pid of the Ray worker that is training `run_id` now (its title names the task)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if title.strip() == f"ray::train fig6 {run_id}":
                return int(entry.name)
    return None


def _kill_one_worker_after_its_first_epoch(out: Path, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        for run_id in RUNS:
            history = out / "fig6" / run_id / "history.json"
            if (out / "fig6" / run_id / "checkpoint.pt").exists() and history.exists():
                h = json.loads(history.read_text())
                pid = _worker_training(run_id)
                if h["status"] == "running" and len(h["epochs"]) < 3 and pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    return run_id
        time.sleep(0.05)
    raise AssertionError("no run of the sweep could be caught between two epochs")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same smoke sweep by the plain path and on Ray (a worker killed mid-run)."""
    _ray_or_skip()
    base = tmp_path_factory.mktemp("sweeps")
    plain = subprocess.run(_reproduce(*SWEEP, "--out", str(base / "plain")), env=_env(),
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stdout[-2000:] + plain.stderr[-2000:]
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(_reproduce(*SWEEP, "--out", str(base / "ray"), "--ray",
                                       "--cpus-per-run", "1"),
                            env=_env(mark), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        killed = _kill_one_worker_after_its_first_epoch(base / "ray", proc)
        output = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = _processes_marked(mark)
    for _ in range(60):                 # Ray's own processes end a moment after the driver
        if not left:
            break
        time.sleep(0.5)
        left = _processes_marked(mark)
    return {"plain": base / "plain", "ray": base / "ray", "killed": killed, "output": output,
            "code": proc.returncode, "left": left}


def _history(out: Path, run_id: str) -> dict:
    return json.loads((out / "fig6" / run_id / "history.json").read_text())


@pytest.mark.slow
def test_a_sweep_on_ray_stores_the_plain_paths_histories_and_weights(sweeps):
    assert sweeps["code"] == 0, sweeps["output"][-3000:]
    for run_id in RUNS:
        a, b = _history(sweeps["plain"], run_id), _history(sweeps["ray"], run_id)
        assert b["status"] == "completed"
        assert a["step_loss"] == b["step_loss"], run_id
        for ea, eb in zip(a["epochs"], b["epochs"], strict=True):
            assert {k: v for k, v in ea.items() if k not in TIMING} == \
                   {k: v for k, v in eb.items() if k not in TIMING}, run_id
    weights = sorted(p.name for p in (sweeps["plain"] / "weights").iterdir())
    assert weights and weights == sorted(p.name for p in (sweeps["ray"] / "weights").iterdir())
    for name in weights:
        assert (sweeps["plain"] / "weights" / name).read_bytes() == \
               (sweeps["ray"] / "weights" / name).read_bytes(), name
    manifest = json.loads((sweeps["ray"] / "MANIFEST.json").read_text())["files"]
    assert all(f"fig6/{r}/history.json" in manifest for r in RUNS)
    info = json.loads((sweeps["ray"] / "fig6" / "set.json").read_text())
    assert info["sittings"][-1]["runner"].startswith("on Ray (local)")
    assert sorted(info["finished_runs"]) == sorted(RUNS)


@pytest.mark.slow
def test_each_run_and_the_sweep_report_their_speed(sweeps):
    lines = [ln for ln in sweeps["output"].splitlines() if ": completed, " in ln]
    assert len(lines) == 4 and all("images/s" in ln for ln in lines), sweeps["output"]
    assert "(the sweep's wall time)" in sweeps["output"]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_run_ends_as_if_not_killed(sweeps):
    h = _history(sweeps["ray"], sweeps["killed"])
    sittings = h["provenance"]["sittings"]
    assert len(sittings) == 2 and sittings[1]["first_epoch"] > 1     # resumed, not restarted
    assert h["step_loss"] == _history(sweeps["plain"], sweeps["killed"])["step_loss"]


@pytest.mark.slow
def test_nothing_is_left_running(sweeps):
    assert sweeps["left"] == []


# --- fast: refusals, in this process ---------------------------------------------------------

def test_without_ray_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    from tools.reproduce import main
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray fails
    assert main(["fig6", "--ray", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ('python -m tools reproduce: error: --ray needs Ray: pip install -e ".[ray]" '
                   '(in the course\'s folder), or pip install "ray>=2.10,<3"')
    assert not (tmp_path / "out").exists()


def test_a_second_sweep_into_the_same_folder_refuses_before_starting_ray(tmp_path, capsys):
    _ray_or_skip()
    from resnet_nb.files import FolderLock
    from tools.reproduce import main
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out, "the output folder"):          # the first sweep, still running
        assert main([*SWEEP, "--out", str(out), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "is writing the output folder (--out)" in err and len(err.strip().splitlines()) == 1
    assert not (out / "fig6").exists()


@pytest.mark.slow
def test_a_worker_that_cannot_write_its_run_folder_says_so_in_one_line(tmp_path):
    """On a cluster: --out not shared with a worker's machine. Here: the run's folder is a file."""
    _ray_or_skip()
    (tmp_path / "fig6").mkdir()
    (tmp_path / "fig6" / "resnet-20-seed0").write_text("not a folder")
    done = subprocess.run(_reproduce("fig6:20", "--seeds", "0", "--epochs", "1", "--train-size",
                                     "256", "--test-size", "100", "--data", "synthetic",
                                     "--out", str(tmp_path), "--ray"),
                          env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [ln for ln in done.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("python -m tools reproduce: error: ")
    assert "resnet-20-seed0 is a file, not a folder on " in errors[0]
    assert "every Ray worker must reach --out" in errors[0]
