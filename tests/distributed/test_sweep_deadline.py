"""`reproduce --stop-after SECONDS`: a sweep stops cleanly before a job's time limit, and the
same command started again (the next job) finishes it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["fig6:20", "--seeds", "0", "--epochs", "10", "--train-size", "512", "--test-size", "100",
         "--data", "synthetic"]


@pytest.mark.slow
def test_a_sweep_stopped_at_its_deadline_is_finished_by_the_same_command(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    command = [sys.executable, "-m", "tools", "reproduce", *SWEEP, "--out", str(tmp_path)]
    first = subprocess.run([*command, "--stop-after", "5"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 130, first.stdout[-2000:] + first.stderr[-2000:]
    assert "interrupted after" in first.stdout
    history = tmp_path / "fig6" / "plain-20-seed0" / "history.json"
    assert json.loads(history.read_text())["status"] == "interrupted"
    second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    for run in ("plain-20-seed0", "resnet-20-seed0"):
        h = json.loads((tmp_path / "fig6" / run / "history.json").read_text())
        assert h["status"] == "completed" and len(h["epochs"]) == 10
    info = json.loads((tmp_path / "fig6" / "set.json").read_text())
    assert [s["finished"] for s in info["sittings"]][0] == []
