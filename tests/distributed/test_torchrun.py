"""One run across processes: `torchrun -m resnet_nb train` with gloo on this CPU (loopback).

Oracles: two processes that each see half of every global batch train the same network as
one process given the whole batch (global-batch batch norm included), and a run stopped
with one number of processes resumes with another to the same end.

Tolerances, measured on the 2-core CI machine (ResNet-20, 4 steps of batch 64, lr 0.02):
the 2-process run differs from the 1-process run by at most 8e-5 in a weight and 3e-4 in a
batch-norm running variance; a 1-process run with 2 threads instead of 1 differs by as much
(1e-4, 3e-4): float sums in another order. With per-process batch norm (not the global
batch's) the differences are 1.6e-3 and 2.8e-2, which the bounds below refuse.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow          # each launch starts 1-2 Python processes with torch

#: Largest differences allowed after 4-8 steps (see the module docstring).
WEIGHT_TOL, RUNNING_TOL, LOSS_TOL = 3e-4, 3e-3, 3e-4
ARGS = ["--data", "synthetic", "--train-size", "128", "--test-size", "500", "--batch-size", "64",
        "--profile", "smoke", "--device", "cpu", "--recipe", "paper", "--lr", "0.02"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                              os.environ.get("PYTHONPATH")))),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("RESNET_NB_DEBUG", None)
    return env


def _command(processes: int, out: Path, epochs: int, *extra: str) -> list[str]:
    train = ["-m", "resnet_nb", "train", *ARGS, "--epochs", str(epochs), "--out", str(out),
             *extra]
    if processes == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *train]


def train(processes: int, out: Path, epochs: int = 2, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(_command(processes, out, epochs, *extra), env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def stopped_after_first_epoch(processes: int, out: Path, epochs: int = 2) -> None:
    """Start a run and stop it (SIGTERM, as a scheduler does) once epoch 1 is saved."""
    proc = subprocess.Popen(_command(processes, out, epochs), env=_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no epoch finished in 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] < epochs, f"the run ended before it was stopped:\n{output[-2000:]}"


def compare(a: Path, b: Path) -> dict:
    """The largest differences between two runs' final checkpoints and step losses."""
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert sa["epoch"] == sb["epoch"]
    assert sa["model"].keys() == sb["model"].keys()      # no "module." prefix, no extra state
    diff = {"weight": 0.0, "running": 0.0}
    for k, v in sa["model"].items():
        if v.is_floating_point():
            kind = "running" if "running" in k else "weight"
            diff[kind] = max(diff[kind], (v - sb["model"][k]).abs().max().item())
        else:
            assert torch.equal(v, sb["model"][k]), k          # num_batches_tracked: the steps
    la, lb = sa["history"]["step_loss"], sb["history"]["step_loss"]
    assert len(la) == len(lb)
    diff["loss"] = max(abs(x - y) for x, y in zip(la, lb))
    return diff


def assert_close(diff: dict) -> None:
    assert diff["weight"] <= WEIGHT_TOL, diff
    assert diff["running"] <= RUNNING_TOL, diff
    assert diff["loss"] <= LOSS_TOL, diff


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The single-process run everything is compared with: 2 epochs of 2 steps."""
    out = tmp_path_factory.mktemp("one") / "run"
    train(1, out)
    return out


def test_two_processes_train_as_one_process_with_the_global_batch(one_process, tmp_path):
    out = tmp_path / "two"
    done = train(2, out, 2)
    diff = compare(one_process, out)
    assert_close(diff)
    assert done.stdout.count("completed: 2 epoch(s)") == 1        # rank 0 alone prints
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["checkpoint.pt", "history.json"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["history"]["steps_per_epoch"] == 2              # steps of the global batch
    assert state["history"]["provenance"]["processes"] == 2


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_run_resumes_with_another_number_of_processes(one_process, tmp_path, first, then):
    out = tmp_path / "run"
    stopped_after_first_epoch(first, out)
    train(then, out, 2, "--resume")
    assert_close(compare(one_process, out))
    sittings = torch.load(out / "checkpoint.pt", weights_only=True)["history"]["provenance"][
        "sittings"]
    assert [s["processes"] for s in sittings] == [first, then]


def test_a_global_batch_that_does_not_split_evenly_is_refused_in_one_line(tmp_path):
    done = subprocess.run(_command(2, tmp_path / "run", 1, "--batch-size", "63"), env=_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--batch-size 63 is the global batch: give a multiple of the number of processes (2)" \
        in done.stderr


def _decode_in_turn(rank: int, init: str, log: str) -> None:
    """One of two processes on one machine: 'decode' inside first_on_each_machine."""
    import torch.distributed as dist

    from resnet_nb import distributed
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    group = distributed.Group(rank=rank, local_rank=rank, world_size=2)
    with distributed.first_on_each_machine(group):
        with open(log, "a") as f:
            f.write(f"enter {rank}\n")
        time.sleep(1.0 if rank == 0 else 0.0)     # local rank 0 fills the cache meanwhile
        with open(log, "a") as f:
            f.write(f"leave {rank}\n")
    dist.destroy_process_group()


def test_the_data_are_decoded_by_local_rank_0_before_the_others_read_them(tmp_path):
    import torch.multiprocessing as mp
    log = tmp_path / "log"
    mp.start_processes(_decode_in_turn, args=(f"file://{tmp_path / 'rendezvous'}", str(log)),
                       nprocs=2, start_method="spawn")
    assert log.read_text().split("\n")[:4] == ["enter 0", "leave 0", "enter 1", "leave 1"]
