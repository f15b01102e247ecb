"""The command line (resnet_nb.cli, `python -m resnet_nb`): train writes its run with provenance
and resumes it; every user error is one line on stderr and exit code 2, found before the work
where it can be; Ctrl-C, SIGTERM and SIGHUP stop cleanly. The argument checks call cli.main in
this process; one test runs `python -m resnet_nb` end to end, and the signal tests use real
processes."""
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_nb.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--data", "synthetic", "--profile", "smoke", "--depth", "8", "--train-size", "128",
         "--test-size", "64"]


def one_line_error(capsys, rc, code=2):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == code and len(lines) == 1 and "Traceback" not in err, (rc, err)
    return lines[0]


def train(*args):
    try:
        return main(["train", *args])
    except SystemExit as e:           # argparse's errors
        return e.code


@pytest.mark.parametrize("device,needle", [
    ("nonsense", "device must be cpu, cuda, cuda:N or mps, got 'nonsense'"),
    ("cuda", "device 'cuda': no CUDA GPU is available here"),
    ("cuda:7", "device 'cuda:7': no CUDA GPU is available here"),
    ("mps", "device 'mps': Apple's MPS is not available here"),
])
def test_a_device_that_is_not_here_is_one_line(device, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    rc = train("--device", device, "--out", str(tmp_path / "r"), *SMALL)
    assert needle in one_line_error(capsys, rc)
    assert not (tmp_path / "r").exists()      # refused before anything was written


def test_resnet_nb_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys, monkeypatch):
    """A ValueError may be a bug: RESNET_NB_DEBUG=1 shows where it was raised."""
    monkeypatch.setenv("RESNET_NB_DEBUG", "1")
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N or mps"):
        train("--device", "nonsense", "--out", str(tmp_path / "r"), *SMALL)
    monkeypatch.setenv("RESNET_NB_DEBUG", "0")
    rc = train("--device", "nonsense", "--out", str(tmp_path / "r"), *SMALL)
    assert "device must be" in one_line_error(capsys, rc)


def test_resume_with_another_network_is_one_line_naming_it(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert train("--out", out, "--epochs", "1", *SMALL) == 0
    capsys.readouterr()
    rc = train("--out", out, "--epochs", "1", "--resume", *SMALL, "--depth", "14")
    line = one_line_error(capsys, rc)
    assert "is for another network: depth: 8 in the checkpoint, 14 now" in line
    assert "{" not in line                               # not the whole config


def test_device_names_in_capitals_are_understood(tmp_path, capsys):
    rc = train("--device", "CPU", "--out", str(tmp_path / "r"), "--epochs", "1", *SMALL)
    assert rc == 0 and "device cpu" in capsys.readouterr().out


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3"])
def test_a_seed_out_of_range_is_one_line(seed, tmp_path, capsys):
    rc = train("--seed", seed, "--out", str(tmp_path / "r"), *SMALL)
    assert "expected an integer from 0 to 4294967295" in one_line_error(capsys, rc)


def test_a_bad_profile_is_reported_as_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RESNET_NB_PROFILE", "cpu")
    rc = train("--profile", "bogus", "--out", str(tmp_path / "r"), "--data", "synthetic")
    line = one_line_error(capsys, rc)
    assert "--profile: invalid choice: 'bogus'" in line and "RESNET_NB_PROFILE" not in line


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"{'model': 1}"])
def test_a_damaged_checkpoint_is_one_line_before_loading_data(content, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(content)
    # --data names nothing: the checkpoint is checked first, so its error is the one shown.
    rc = train("--resume", "--out", str(out), "--data", str(tmp_path / "nowhere"))
    line = one_line_error(capsys, rc)
    assert "checkpoint.pt is not a usable checkpoint" in line and "Delete it" in line
    rc = train("--out", str(out), "--data", str(tmp_path / "nowhere"))
    assert "already holds a run: add --resume" in one_line_error(capsys, rc)


def test_an_output_folder_that_is_a_file_is_one_line_before_loading_data(tmp_path, capsys):
    (tmp_path / "r").write_text("a file")
    rc = train("--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere"))
    assert "the output folder (--out)" in (line := one_line_error(capsys, rc))
    assert "is a file, not a folder" in line


def test_resume_with_another_train_size_is_one_line_naming_it(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert train("--out", out, "--epochs", "1", *SMALL) == 0
    capsys.readouterr()
    rc = train("--out", out, "--epochs", "1", "--resume", *SMALL[:-4], "--train-size", "100",
               "--test-size", "64")
    assert "train_size: 128 in the checkpoint, 100 now" in one_line_error(capsys, rc)


def test_resume_with_another_lr_is_one_line_naming_it(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert train("--out", out, "--epochs", "1", *SMALL) == 0
    capsys.readouterr()
    rc = train("--out", out, "--epochs", "1", "--resume", "--lr", "0.05", *SMALL)
    assert "lr: 0.2 in the checkpoint, 0.05 now" in one_line_error(capsys, rc)


def test_a_truncated_torchvision_batch_is_one_line(tmp_path, capsys):
    import numpy as np
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch"):
        d = {"data": np.zeros((10, 3072), np.uint8), "labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["airplane"]})[:7])
    rc = train("--out", str(tmp_path / "r"), "--data", str(folder))
    assert "batches.meta in torchvision folder" in one_line_error(capsys, rc)


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch, full_disk):
    """The disk fills during epoch 2: a real full disk's error (torch.save wraps it in a
    RuntimeError), one line; epoch 1's checkpoint is kept and the history says so."""
    import resnet_nb.train as T
    real_epoch = T.train_one_epoch

    def epoch(*a, **k):
        if a[4] > 0:                                   # first_step: epoch 2
            full_disk.free = 64 * 1024                 # the history fits, the checkpoint not
        return real_epoch(*a, **k)
    monkeypatch.setattr(T, "train_one_epoch", epoch)
    out = tmp_path / "r"
    rc = train("--out", str(out), "--epochs", "3", *SMALL)
    line = one_line_error(capsys, rc)
    assert "could not save epoch 2" in line and "No space left on device" in line
    history = json.loads((out / "history.json").read_text())
    assert history["status"] == "failed" and len(history["epochs"]) == 1
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_ctrl_c_twice_is_one_line(tmp_path, capsys, monkeypatch):
    """The first Ctrl-C stops training; the second lands while the history is saved."""
    import resnet_nb.train as T
    real_epoch, real_save = T.train_one_epoch, T.History.save

    def epoch(*a, **k):
        if a[4] > 0:                                   # first_step: epoch 2
            raise KeyboardInterrupt
        return real_epoch(*a, **k)

    def save(self, path):
        if self.status == "interrupted":
            raise KeyboardInterrupt
        return real_save(self, path)
    monkeypatch.setattr(T, "train_one_epoch", epoch)
    monkeypatch.setattr(T.History, "save", save)
    try:
        rc = train("--out", str(tmp_path / "r"), "--epochs", "3", *SMALL)
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C ended in a traceback")
    line = one_line_error(capsys, rc, code=130)
    assert "stopped by Ctrl-C" in line and "--resume continues" in line
    from resnet_nb.runs import load_checkpoint
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["epoch"] == 1


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_a_closed_terminal_stops_like_ctrl_c(tmp_path, capsys, monkeypatch):
    """SIGHUP (the terminal was closed) in epoch 2: epoch 1 is kept, --resume continues."""
    import resnet_nb.train as T
    real_epoch = T.train_one_epoch

    def epoch(*a, **k):
        if a[4] > 0:                                   # first_step: epoch 2
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)                              # the handler runs before this ends
        return real_epoch(*a, **k)
    monkeypatch.setattr(T, "train_one_epoch", epoch)
    rc = train("--out", str(tmp_path / "r"), "--epochs", "3", *SMALL)
    assert "stopped by SIGHUP; run the same command with --resume" in one_line_error(capsys, rc,
                                                                                    code=129)
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert history["status"] == "interrupted" and len(history["epochs"]) == 1
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL      # restored after main()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_a_closed_terminal_while_saving_waits_for_the_save(tmp_path, capsys, monkeypatch):
    """SIGHUP while epoch 2's checkpoint is written: it takes effect once the checkpoint and
    the history are both written, and the two agree."""
    import resnet_nb.train as T
    real_save = T.save_checkpoint

    def save(path, model, optimizer, epoch, *a, **k):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.5)                            # the handler runs before this ends
        return real_save(path, model, optimizer, epoch, *a, **k)
    monkeypatch.setattr(T, "save_checkpoint", save)
    out = tmp_path / "r"
    rc = train("--out", str(out), "--epochs", "3", *SMALL)
    assert "stopped by SIGHUP" in one_line_error(capsys, rc, code=129)
    history = json.loads((out / "history.json").read_text())
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert history["status"] == "interrupted" and len(history["epochs"]) == state["epoch"] == 2
    assert "stopped after epoch 2; the history holds 2 finished epoch(s)" in history["message"]


def test_info_reports_a_bad_data_source_and_goes_on(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("RESNET_NB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    rc = main(["info"])
    captured = capsys.readouterr()
    assert rc == 2 and "Traceback" not in captured.err
    data_line = next(line for line in captured.out.splitlines() if line.startswith("data"))
    assert "PROBLEM" in data_line and "holds neither" in data_line
    assert any(line.startswith("cache") for line in captured.out.splitlines())   # went on


def info_data_line(capsys, monkeypatch, source):
    monkeypatch.setenv("RESNET_NB_DATA", str(source))
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    rc = main(["info"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return rc, next(line for line in captured.out.splitlines() if line.startswith("data"))


def test_info_reports_a_folder_missing_a_class(tmp_path, capsys, monkeypatch, image_folder):
    from resnet_nb.data import CLASSES
    image_folder(tmp_path / "c", n_train=1, n_test=1, classes=[c for c in CLASSES if c != "cat"])
    rc, line = info_data_line(capsys, monkeypatch, tmp_path / "c")
    assert rc == 2 and "PROBLEM" in line and "train/ lacks cat; test/ lacks cat" in line


def test_info_reports_a_truncated_archive(tmp_path, capsys, monkeypatch, image_folder, tar_of):
    image_folder(tmp_path / "c", n_train=3, n_test=1)
    archive = tar_of(tmp_path / "c", "cifar", tmp_path / "c.tar.gz")
    good, = info_data_line(capsys, monkeypatch, archive)[1:]
    assert "PROBLEM" not in good and "archive" in good
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    rc, line = info_data_line(capsys, monkeypatch, archive)
    assert rc == 2 and "PROBLEM" in line and "damaged or truncated" in line


HOLD_LOCK = """
import fcntl, os, sys, time
os.makedirs(sys.argv[1], exist_ok=True)
f = open(os.path.join(sys.argv[1], ".lock"), "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_a_second_run_on_the_same_output_folder_is_one_line(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "r")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = train("--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere"))
        assert f"another process (pid {holder.pid}) is writing" in one_line_error(capsys, rc)
    finally:
        holder.kill()
        holder.wait()


# --- signals, in a real process -----------------------------------------------------------

def start(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, "-m", "resnet_nb", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=240):
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    proc = start("info", cwd=tmp_path)
    time.sleep(1.0)                        # importing torch takes longer than this
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_training_stops_cleanly(signum, code, tmp_path):
    out = tmp_path / "r"
    proc = start("train", "--out", str(out), "--epochs", "200", *SMALL, cwd=tmp_path)
    wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signum)
    if signum == signal.SIGINT:           # and a second Ctrl-C right after the first
        time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signum)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err
    assert f"stopped by {'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == state["epoch"] >= 1
    if signum == signal.SIGTERM:
        assert history["status"] == "interrupted"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


# --- reproduce (python -m tools reproduce) follows the same rules ----------------------------

REPRODUCE = ["fig6", "--depths", "20", "--epochs", "1", "--train-size", "128",
             "--test-size", "64", "--device", "cpu"]


def test_reproduce_checks_its_output_folder_before_loading_data(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    from tools.reproduce import main as reproduce
    rc = reproduce([*REPRODUCE, "--out", str(tmp_path / "out"), "--data",
                    str(tmp_path / "nowhere")])
    assert "output folder (--out) .../" in one_line_error(capsys, rc)      # not the data


def test_a_second_reproduce_on_the_same_output_folder_is_one_line(tmp_path, capsys):
    from resnet_nb.files import FolderLock
    from tools.reproduce import main as reproduce
    (tmp_path / "ref").mkdir()
    with FolderLock(tmp_path / "ref"):
        rc = reproduce([*REPRODUCE, "--out", str(tmp_path / "ref"), "--data", "synthetic"])
    line = one_line_error(capsys, rc)
    assert f"another process (pid {os.getpid()}) is writing the output folder (--out)" in line
    assert not (tmp_path / "ref" / "fig6").exists()            # refused before any work


def test_reproduce_writes_its_records_atomically(tmp_path, full_disk):
    """A manifest, set record, history or weight file whose write fails keeps the old one."""
    from tools import reproduce as R
    (tmp_path / "fig6" / "r").mkdir(parents=True)
    (tmp_path / "fig6" / "r" / "history.json").write_text("{}")
    R.write_manifest(tmp_path)
    before = (tmp_path / R.MANIFEST).read_bytes()
    (tmp_path / "fig6" / "r" / "history.json").write_text('{"more": 1}')
    full_disk.free = 16
    with pytest.raises(OSError):
        R.write_manifest(tmp_path)
    with pytest.raises(OSError):
        R._save(tmp_path / "weights" / "w.pt", {"w": torch.zeros(100)})
    assert (tmp_path / R.MANIFEST).read_bytes() == before
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == [R.MANIFEST, "fig6/r/history.json"]   # no temporary file


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "resnet_nb", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def run_main(*args) -> int:
    """`python -m resnet_nb ARGS` in this process: its exit code (argparse's too)."""
    try:
        return main(list(args))
    except SystemExit as e:           # argparse's errors
        return e.code


@pytest.mark.parametrize("args,needle", [
    (["train", "--depth", "21"], "depth must be 6n+2 (8, 14, 20, 26, 32, 44, 56, 110, ...), got 21"),
    (["train", "--shortcut", "D"], "invalid choice: 'D'"),
    (["train", "--recipe", "adam"], "invalid choice: 'adam'"),
    (["train", "--epochs", "0", "--data", "synthetic"], "epochs must be a positive integer"),
    (["train", "--data", "/nowhere/cifar"], "no CIFAR-10 copy at"),
    (["train", "--train-size", "-5"], "expected a positive number or 'all'"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_arguments_give_one_line_and_nonzero_exit(args, needle, tmp_path, capsys):
    rc = run_main(*args, "--out", str(tmp_path / "run")) if args[0] == "train" else run_main(*args)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.slow
def test_train_writes_history_with_provenance_and_resumes(tmp_path):
    """`python -m resnet_nb` end to end, in a process of its own."""
    out = tmp_path / "run"
    args = ["train", "--depth", "8", "--data", "synthetic", "--epochs", "1", "--profile",
            "smoke", "--out", str(out)]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert re.search(r"test accuracy 0\.\d{4}", r.stdout)
    h = json.loads((out / "history.json").read_text())
    assert h["status"] == "completed" and h["model"]["depth"] == 8
    prov = h["provenance"]
    assert {"device", "git_commit", "versions", "date", "profile", "data_source"} <= set(prov)
    assert prov["versions"]["torch"]
    # A second run into the same folder must not overwrite it ...
    r2 = run_cli(*args)
    assert r2.returncode == 2 and "--resume" in r2.stderr
    # ... and --resume on a finished run has nothing left to do.
    r3 = run_cli(*args, "--resume")
    assert r3.returncode == 0 and "resuming from epoch 1" in r3.stdout


@pytest.mark.slow
def test_paper_recipe_warms_up_resnet_110(tmp_path, capsys):
    rc = run_main("train", "--depth", "110", "--recipe", "paper", "--data", "synthetic",
                  "--epochs", "1", "--profile", "smoke", "--train-size", "64", "--out",
                  str(tmp_path / "r"))
    assert rc == 0, capsys.readouterr().err
    h = json.loads((tmp_path / "r" / "history.json").read_text())
    assert h["config"]["warmup_steps"] == 400 and h["epochs"][0]["lr"] == pytest.approx(0.01)


def test_info_names_versions_device_profile_and_data(monkeypatch, capsys):
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    monkeypatch.setenv("RESNET_NB_DATA", "synthetic")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "torchvision", "device", "profile", "'smoke'", "data", "synthetic"):
        assert word in out
