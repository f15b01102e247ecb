"""resnet_nb.runs, the run bookkeeping of fit: resume equals an uninterrupted run and is
refused on other data or settings; output folders checked before the work and locked while in
use; damaged or tampered checkpoints and histories refused; divergence named with a rate to try;
a full disk keeps the last checkpoint; leftovers removed."""
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from torch import nn

import resnet_nb.runs as R
from resnet_nb import History, TrainingDiverged, cifar_resnet, fit, load_checkpoint, recipe
from resnet_nb.data import Batches, make_synthetic
from resnet_nb.files import show_path
from resnet_nb.train import lr_at, make_optimizer, train_one_epoch


CFG = recipe("fast", epochs=1, batch_size=64)


def run(data, out, cfg=CFG, **kw):
    torch.manual_seed(0)
    return fit(cifar_resnet(8), data, cfg, out_dir=out, device="cpu", progress=False,
               verbose=False, **kw)


# --- 3. resume with other data or settings -------------------------------------------------

def test_resume_with_another_train_size_is_refused_naming_both_sizes(tiny, tmp_path):
    run(tiny.subset(train=200, seed=0), tmp_path)
    with pytest.raises(ValueError) as info:
        run(tiny.subset(train=128, seed=0), tmp_path, resume=True)
    message = str(info.value)
    assert "different data" in message and "train_size: 200 in the checkpoint, 128 now" in message


def test_resume_with_another_subset_seed_is_refused(tiny, tmp_path):
    run(tiny.subset(train=128, seed=0), tmp_path)
    with pytest.raises(ValueError, match="subset_seed: 0 in the checkpoint, 1 now"):
        run(tiny.subset(train=128, seed=1), tmp_path, resume=True)


def test_resume_with_other_images_of_the_same_sizes_is_refused(tiny, tmp_path):
    run(tiny, tmp_path)
    other = replace(make_synthetic(256, 64, seed=1), source=tiny.source)
    with pytest.raises(ValueError, match="the same source, sizes and seeds, but other images"):
        run(other, tmp_path, resume=True)


@pytest.mark.slow
def test_resume_with_the_same_images_from_another_path_is_accepted(tiny, tmp_path):
    cfg = recipe("fast", epochs=2, batch_size=64)
    straight = run(tiny, tmp_path / "a", cfg)

    def stop_in_epoch_2(step, loss):
        if step == 5:
            raise KeyboardInterrupt
    run(tiny, tmp_path / "b", cfg, on_step=stop_in_epoch_2)
    moved = replace(tiny, source="image folder elsewhere/cifar")
    h = run(moved, tmp_path / "b", cfg, resume=True)
    assert h.status == "completed" and h.step_loss == straight.step_loss


@pytest.mark.slow
def test_a_resumed_run_records_each_sitting(tiny, tmp_path, capsys):
    """Stopped in epoch 2 on one machine, resumed on another: the history says where each
    epoch was computed, not only where the run started."""
    cfg = recipe("fast", epochs=3, batch_size=64)

    def stop_in_epoch_2(step, loss):
        if step == 5:
            raise KeyboardInterrupt
    first = {"device": "cuda: NVIDIA T4", "git_commit": "aaa", "date": "2026-01-01"}
    run(tiny, tmp_path, cfg, on_step=stop_in_epoch_2, provenance=first)
    second = {"device": "cpu: x86_64, 2 threads", "git_commit": "bbb", "date": "2026-01-02"}
    h = run(tiny, tmp_path, cfg, resume=True, provenance=second)
    assert h.status == "completed" and len(h.epochs) == 3
    sittings = h.provenance["sittings"]
    assert [(s["first_epoch"], s["device"], s["git_commit"], s["date"]) for s in sittings] == [
        (1, "cuda: NVIDIA T4", "aaa", "2026-01-01"), (2, "cpu: x86_64, 2 threads", "bbb",
                                                      "2026-01-02")]
    assert all(s["precision"] == "fp32" and s["compile"] == "off" for s in sittings)
    assert h.provenance["device"] == "cuda: NVIDIA T4"          # the first sitting's
    assert History.load(tmp_path / "history.json").provenance["sittings"] == sittings


def test_a_resume_in_other_arithmetic_is_said_and_recorded():
    """A run started in bf16 on a GPU goes on in fp32 on a CPU: allowed, but not silently."""
    from resnet_nb.runs import _add_sitting
    saved = History(provenance={"device": "cuda: NVIDIA H100", "precision": "bf16",
                                "compile": "off"})              # an older history: no sittings
    said = []
    _add_sitting(saved, {"device": "cpu", "precision": "fp32", "compile": "off"}, 5,
                 said.append, "the run in r/")
    assert said == ["note: the run in r/ goes on in other arithmetic (precision 'bf16' until "
                    "epoch 4, 'fp32' from epoch 5); its history records each sitting "
                    "(provenance['sittings'])"]
    assert saved.provenance["sittings"] == [
        {"first_epoch": 1, "device": "cuda: NVIDIA H100", "precision": "bf16", "compile": "off"},
        {"first_epoch": 5, "device": "cpu", "precision": "fp32", "compile": "off"}]
    assert saved.provenance["precision"] == "bf16"


def test_resume_refusal_names_only_the_settings_that_differ(tiny, tmp_path):
    run(tiny, tmp_path)
    with pytest.raises(ValueError) as info:
        run(tiny, tmp_path, recipe("fast", epochs=1, batch_size=64, lr=0.05), resume=True)
    message = str(info.value)
    assert "lr: 0.2 in the checkpoint, 0.05 now" in message
    assert "momentum" not in message and "{" not in message      # not the whole config


def test_the_history_records_the_data(tiny, tmp_path):
    h = run(tiny.split_validation(56, seed=3).subset(train=150, seed=4), tmp_path)
    d = History.load(tmp_path / "history.json").data
    assert d == h.data
    assert (d["source"], d["train_size"], d["val_size"], d["test_size"], d["val_seed"],
            d["subset_seed"]) == ("synthetic", 150, 56, 64, 3, 4)
    assert len(d["fingerprint"]) == 24


# --- 4. output folders: checked before the work ---------------------------------------------

def test_an_output_folder_that_is_a_file_fails_before_training(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").write_text("not a folder")
    steps = []
    with pytest.raises(OSError, match="the output folder out is a file, not a folder"):
        run(tiny, "out", on_step=lambda s, l: steps.append(s))
    assert steps == []                      # no training was done (and lost)


def test_an_output_folder_below_a_file_fails_before_training(tiny, tmp_path):
    (tmp_path / "file").write_text("x")
    steps = []
    with pytest.raises(OSError, match="cannot write the output folder"):
        run(tiny, tmp_path / "file" / "run", on_step=lambda s, l: steps.append(s))
    assert steps == []


def test_run_files_are_readable_by_others(tiny, tmp_path):
    old = os.umask(0o022)
    try:
        run(tiny, tmp_path)
    finally:
        os.umask(old)
    for name in ("checkpoint.pt", "history.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


# --- 6. damaged checkpoints and histories ---------------------------------------------------

def damaged_checkpoints(tmp_path, tiny):
    run(tiny, tmp_path / "good")
    good = (tmp_path / "good" / "checkpoint.pt").read_bytes()
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"model": {}, "epoch": 1}, tmp_path / "dict.pt")
    return {"empty": b"", "truncated": good[: len(good) // 2],
            "text": b"this is not a checkpoint\n",
            "a list": (tmp_path / "list.pt").read_bytes(),
            "another dict": (tmp_path / "dict.pt").read_bytes()}


def test_a_damaged_checkpoint_on_resume_says_what_to_do(tiny, tmp_path):
    for what, raw in damaged_checkpoints(tmp_path, tiny).items():
        out = tmp_path / what.replace(" ", "_")
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(raw)
        with pytest.raises(ValueError) as info:
            run(tiny, out, resume=True)
        message = str(info.value)
        assert "checkpoint.pt is not a usable checkpoint" in message, what
        assert "Delete it to start that run afresh" in message, what


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    torch.save({"model": nn.Linear(2, 2)}, tmp_path / "checkpoint.pt")   # a whole module
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_a_damaged_history_names_the_file(tiny, tmp_path):
    run(tiny, tmp_path)
    text = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="history.json is not a readable run history"):
        History.load(tmp_path / "history.json")


# --- 5. divergence ----------------------------------------------------------------------------

@pytest.mark.slow
def test_only_finite_epochs_are_saved(tiny, tmp_path):
    """Batch norm's running variance becomes inf in epoch 2 while the loss stays finite."""
    cfg = recipe("fast", epochs=3, batch_size=64)
    torch.manual_seed(0)
    model = cifar_resnet(8)

    def ruin(step, loss):
        if step == 6:                       # epoch 2 of 4 steps each
            model.stage2[0].bn1.running_var.fill_(math.inf)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, tiny, cfg, out_dir=tmp_path, device="cpu", progress=False, on_step=ruin,
            verbose=False)
    message = str(info.value)
    assert "stage2.0.bn1.running_var holds NaN or infinite numbers" in message
    assert "epoch 1, whose numbers are all finite, is saved" in message
    state = load_checkpoint(tmp_path / "checkpoint.pt")     # checked: finite
    assert state["epoch"] == 1 and torch.isfinite(state["model"]["stage2.0.bn1.running_var"]).all()
    h = History.load(tmp_path / "history.json")
    assert h.status == "diverged" and len(h.epochs) == 1


def test_a_checkpoint_with_infinite_numbers_is_refused(tiny, tmp_path):
    run(tiny, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["model"]["stage3.0.bn2.running_var"][0] = math.inf
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="stage3.0.bn2.running_var holds NaN or infinite"):
        load_checkpoint(tmp_path / "checkpoint.pt")


class Scaled(nn.Module):
    """A linear classifier whose logits are multiplied by `scale`: its loss is huge but finite."""

    def __init__(self, scale):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)
        self.scale = scale

    def forward(self, x):
        return self.fc(x.flatten(1)) * self.scale


def exploded_epoch(steps):
    data = make_synthetic(8 * steps, 8)
    torch.manual_seed(0)
    model = Scaled(1e4)
    cfg = recipe("paper", lr=1e-9, epochs=1, batch_size=8)
    return train_one_epoch(model, Batches(data.train, 8, train=True), make_optimizer(model, cfg),
                           lambda s: cfg.lr, progress=False)


def test_a_loss_that_explodes_without_becoming_nan_is_divergence():
    with pytest.raises(FloatingPointError, match=r"stayed above 23 \(10 x ln\(classes\), the loss "
                                                 r"of a uniform guess\) for 25 steps"):
        exploded_epoch(30)
    with pytest.raises(FloatingPointError, match="averaged .* over the epoch, above 23"):
        exploded_epoch(5)                   # shorter than the 25-step window


@pytest.mark.slow
def test_learning_rates_that_are_merely_high_are_not_divergence():
    """The bound is far above the loss of runs that train badly but do not explode."""
    data = make_synthetic(512, 8)
    for lr in (1.0, 2.0):
        torch.manual_seed(0)
        model = cifar_resnet(8)
        cfg = recipe("fast", lr=lr, epochs=1, batch_size=64)
        stats = train_one_epoch(model, Batches(data.train, 64, train=True),
                                make_optimizer(model, cfg), lambda s: cfg.lr, progress=False)
        assert max(stats["step_loss"]) < 23


def test_the_suggested_learning_rate_is_a_sensible_one():
    from resnet_nb.train import suggest_lr
    assert suggest_lr(recipe("fast", lr=30)) == "lr=0.2, the 'fast' recipe's default"
    assert suggest_lr(recipe("paper", lr=1e6)) == "lr=0.1, the 'paper' recipe's default"
    assert suggest_lr(recipe("paper")) == "lr=0.01"          # the paper's own warm-up rate


def test_divergence_at_an_absurd_lr_suggests_the_recipes_default(tiny, tmp_path):
    with pytest.raises(TrainingDiverged) as info:
        run(tiny, tmp_path, recipe("fast", lr=1e5, epochs=2, batch_size=64))
    assert "lr=0.2, the 'fast' recipe's default" in str(info.value)
    assert "lr=10000" not in str(info.value)


# --- 7. API holes in fit ----------------------------------------------------------------------


# --- 6/8. a full disk, two runs on one folder, leftovers --------------------------------------

@pytest.mark.slow
def test_a_full_disk_stops_the_run_and_keeps_the_last_checkpoint(tiny, tmp_path, full_disk):
    """The disk fills in epoch 2 (4 steps per epoch): the real error, not torch.save's
    RuntimeError; the history says "failed" and holds the epoch the checkpoint holds."""
    def fill(step, loss):
        if step > 4:
            full_disk.free = 64 * 1024       # the history (a few kB) fits, the checkpoint not
    with pytest.raises(OSError, match=r"could not save epoch 2 in .*No space left on device.*"
                                      r"The last checkpoint written there is kept") as info:
        run(tiny, tmp_path, recipe("fast", epochs=3, batch_size=64), on_step=fill)
    assert info.value.history.status == "failed" and len(info.value.history.epochs) == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    saved = History.load(tmp_path / "history.json")
    assert saved.status == "failed" and len(saved.epochs) == 1 and len(saved.step_loss) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock") == [
        "checkpoint.pt", "history.json"]    # no temporary file left


HOLD_LOCK = """
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], ".lock"), "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_a_second_process_on_the_same_output_folder_is_refused(tiny, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path), "60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        steps = []
        with pytest.raises(RuntimeError, match=f"another process \\(pid {holder.pid}\\) is "
                                               "writing the output folder"):
            run(tiny, tmp_path, on_step=lambda s, l: steps.append(s))
        assert steps == []
    finally:
        holder.kill()
        holder.wait()
    assert run(tiny, tmp_path).status == "completed"    # the lock died with its process


def test_the_lock_is_released_when_fit_fails(tiny, tmp_path):
    run(tiny, tmp_path)
    with pytest.raises(ValueError):
        run(tiny, tmp_path, recipe("fast", epochs=1, batch_size=64, lr=0.05), resume=True)
    assert run(tiny, tmp_path).status == "completed"


def test_leftover_temporary_files_in_the_output_folder_are_removed(tiny, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    leftovers = [tmp_path / ".tmp-checkpoint.pt.k9x", tmp_path / ".checkpoint.pt.a1b2",
                 tmp_path / ".history.json.zz"]       # the last two: older versions' names
    for p in leftovers:
        p.write_bytes(b"half a file")
    run(tiny, tmp_path)
    assert not any(p.exists() for p in leftovers)


def test_the_divergence_message_counts_the_saved_epochs_and_suggests_a_rate():
    from pathlib import Path
    from resnet_nb.runs import History, _diverged_message
    from resnet_nb.train import recipe, suggest_lr
    cfg = recipe("fast", lr=30.0)
    two, one = History(), History()
    two.epochs, one.epochs = [{"epoch": 1}, {"epoch": 2}], [{"epoch": 1}]
    err = ValueError("loss nan at step 5")
    msg = _diverged_message(err, 2, suggest_lr(cfg), Path("runs/x"), two)
    assert msg.startswith("training diverged: loss nan at step 5 in epoch 3. ")
    assert "e.g. lr=0.2, the 'fast' recipe's default (in a new output folder)" in msg
    assert msg.endswith("; epochs 1-2, whose numbers are all finite, are saved in runs/x/")
    assert _diverged_message(err, 1, suggest_lr(cfg), Path("runs/x"), one).endswith(
        "; epoch 1, whose numbers are all finite, is saved in runs/x/")
    bare = _diverged_message(err, 0, suggest_lr(cfg), None, History())
    assert bare.endswith("e.g. lr=0.2, the 'fast' recipe's default")  # nothing saved, no folder


def test_a_failed_save_carries_the_history_so_far():
    from resnet_nb.runs import History, SaveFailed
    h = History()
    h.status = "failed"
    e = SaveFailed("could not save epoch 2", h)
    assert e.history is h and str(e) == "could not save epoch 2" and isinstance(e, OSError)


def test_history_last_and_round_trip(tmp_path):
    h = History()
    assert h.last("test_acc") is None and h.last("test_acc", 0.5) == 0.5
    h.epochs = [{"test_acc": 0.25}, {"test_acc": 0.5}, {"test_acc": 0.75}]
    assert h.last("test_acc") == 0.75 and h.last("missing", -1) == -1
    h.save(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["epochs"][2] == {"test_acc": 0.75}
    assert History.load(tmp_path / "h.json") == h


def test_check_finite_names_the_first_bad_step():
    losses = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(float("nan")),
              torch.tensor(float("inf"))]
    R.check_finite(losses[:2], 0, 10, lambda s: 0.1)          # finite: no error
    R.check_finite(losses, 4, 10, lambda s: 0.1)              # nothing new to check
    with pytest.raises(FloatingPointError, match=r"became nan at step 12 \(lr 1\.2\)"):
        R.check_finite(losses, 1, 10, lambda s: 0.1 * s)
    with pytest.raises(FloatingPointError, match=r"became inf at step 13"):
        R.check_finite(losses, 3, 10, lambda s: 0.1)


def test_resume_needs_a_folder_and_starts_afresh_in_an_empty_one(tmp_path, capsys):
    data = make_synthetic(64, 16)
    cfg = recipe("paper", epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        fit(cifar_resnet(8), data, cfg, resume=True, device="cpu", progress=False)
    h = fit(cifar_resnet(8), data, cfg, out_dir=tmp_path / "new", resume=True, device="cpu",
            progress=False)
    assert h.status == "completed" and len(h.epochs) == 1
    assert "no checkpoint in new/ yet" in capsys.readouterr().out
    assert History.load(tmp_path / "new" / "history.json") == h


def test_resume_with_another_model_is_refused(tmp_path):
    data = make_synthetic(64, 16)
    cfg = recipe("paper", epochs=1, batch_size=32)
    fit(cifar_resnet(8), data, cfg, out_dir=tmp_path, device="cpu", progress=False, verbose=False)
    with pytest.raises(ValueError, match="is for"):
        fit(cifar_resnet(8, "B"), data, cfg, out_dir=tmp_path, resume=True, device="cpu",
            progress=False, verbose=False)
    # Resuming a finished run trains no further and returns its history.
    h = fit(cifar_resnet(8), data, cfg, out_dir=tmp_path, resume=True, device="cpu",
            progress=False, verbose=False)
    assert h.status == "completed" and len(h.epochs) == 1


def test_stop_messages_say_where_the_run_is(tmp_path):
    data = make_synthetic(128, 16)
    cfg = recipe("fast", epochs=3, batch_size=32)

    def stop_at(step):
        def cb(s, loss):
            if s == step:
                raise KeyboardInterrupt
        return cb
    h = fit(cifar_resnet(8), data, cfg, out_dir=tmp_path, device="cpu", progress=False,
            on_step=stop_at(6), verbose=False)       # 4 steps per epoch: in epoch 2
    assert h.message == ("stopped during epoch 2; the history holds 1 finished epoch(s); "
                         f"resume=True continues from the checkpoint in {tmp_path.name}/")
    assert History.load(tmp_path / "history.json").status == "interrupted"
    h = fit(cifar_resnet(8), data, cfg, device="cpu", progress=False, on_step=stop_at(6),
            verbose=False)
    assert h.message == "stopped during epoch 2; the history holds 1 finished epoch(s)"


def test_diverged_message_names_the_step_and_suggests_the_recipes_default(tmp_path):
    """At an lr above the recipe's default, the suggestion is that default (see suggest_lr),
    not a tenth of an absurd rate; the message names the step, its lr and the epoch."""
    data = make_synthetic(128, 16)
    cfg = recipe("paper", lr=1e6, epochs=2, batch_size=32)     # 4 steps per epoch
    with pytest.raises(R.TrainingDiverged) as info:
        fit(cifar_resnet(8), data, cfg, out_dir=tmp_path, device="cpu", progress=False,
            verbose=False)
    message = str(info.value)
    # Either the loss became NaN/inf, or it exploded: averaged above 10 x ln(10) over an
    # epoch (4 steps are too few for the 25-steps-in-a-row rule).
    found = re.fullmatch(r"training diverged: the (?:loss became (?:nan|inf)|training loss "
                         r"averaged (\S+) over the epoch, above (\S+) \(10 x ln\(classes\), the "
                         r"loss of a uniform guess\); it first exceeded that) at step (\d+) "
                         r"\(lr (\S+)\) in epoch (\d+)\. Start again with a lower learning rate, "
                         r"e\.g\. lr=0\.1, the 'paper' recipe's default \(in a new output "
                         r"folder\)(.*)", message)
    assert found, message
    if found[1] is not None:
        assert float(found[2]) == pytest.approx(R.loss_bound(10), rel=1e-2)
        assert float(found[1]) > float(found[2])
    step, lr, epoch = int(found[3]), float(found[4]), int(found[5])
    assert epoch == step // 4 + 1 and lr == pytest.approx(lr_at(step, 8, cfg), rel=1e-2)
    h = info.value.history
    assert h.message == message and len(h.epochs) == epoch - 1
    assert found[6] == (f"; epoch 1, whose numbers are all finite, is saved in "
                        f"{show_path(tmp_path)}/" if h.epochs else "")


def test_a_tampered_checkpoint_is_refused_without_running_code(tmp_path, planted_object):
    planted = tmp_path / "planted"
    torch.save({"model": planted_object(str(planted))}, tmp_path / "checkpoint.pt")
    # Refused by torch.load(weights_only=True), and reported in one line naming the file.
    with pytest.raises(R.RunFileError, match=r"^\S*checkpoint\.pt is not a usable checkpoint: "
                                             r"it cannot be read \(UnpicklingError: Weights only "
                                             r"load failed"):
        R.load_checkpoint(tmp_path / "checkpoint.pt")
    assert not planted.exists()
