"""The training module piece by piece: settings checks, the schedules' values, devices,
history, atomic writes, the finiteness check, and fit's branches (resume, other models)."""
import contextlib
import json
import math
import re
import warnings

import pytest
import torch
from torch import nn

import resnet_nb.runs as R
import resnet_nb.train as T
from resnet_nb import History, cifar_resnet, fit, make_synthetic, recipe
from resnet_nb.data import Batches
from resnet_nb.device import autocast_for, grad_scaler, pick_device, resolve_precision
from resnet_nb.files import atomic_write, show_path
from resnet_nb.train import TrainConfig, lr_at, make_optimizer, train_one_epoch


@pytest.mark.parametrize("field, bad, match", [
    ("epochs", 0, "epochs must be"), ("epochs", -1, "epochs must be"),
    ("batch_size", 0, "batch_size must be"), ("lr", 0.0, "lr must be"),
    ("lr", float("inf"), "lr must be"), ("lr", float("nan"), "lr must be"),
    ("schedule", "cosine", "schedule must be"),
])
def test_train_config_rejects_bad_values(field, bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: bad})
    TrainConfig(epochs=1, batch_size=1, lr=1e-9, schedule="onecycle")     # the edges pass


def test_onecycle_values_by_hand():
    cfg = recipe("fast")                 # peak 0.2 at 20% of the run, from 0.02, down to 0
    assert lr_at(0, 1000, cfg) == pytest.approx(0.02)
    assert lr_at(100, 1000, cfg) == pytest.approx(0.2 * (0.1 + 0.9 * 0.5))
    assert lr_at(200, 1000, cfg) == pytest.approx(0.2)
    assert lr_at(600, 1000, cfg) == pytest.approx(0.2 * 0.4 / 0.8)
    assert lr_at(1000, 1000, cfg) == 0.0 and lr_at(1100, 1000, cfg) == 0.0
    assert lr_at(5, 0, cfg) == 0.0       # no steps planned: progress counts from 1 step


def test_step_schedule_values_by_hand():
    cfg = recipe("paper", lr=0.4, milestones=(0.25,), warmup_steps=3)
    assert [lr_at(s, 100, cfg) for s in (0, 2, 3, 24, 25, 99)] == \
        pytest.approx([0.04, 0.04, 0.4, 0.4, 0.04, 0.04])
    assert lr_at(1, 1, recipe("paper")) == pytest.approx(0.001)     # both milestones passed


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = type("MPS", (), {"is_available": staticmethod(lambda: True)})
    monkeypatch.setattr(torch.backends, "mps", mps, raising=False)
    assert pick_device() == torch.device("mps")
    mps.is_available = staticmethod(lambda: False)
    assert pick_device() == torch.device("cpu")
    assert pick_device("") == torch.device("cpu")


def test_autocast_bf16_on_gpus_with_native_bf16_fp16_with_loss_scaling_on_older_ones(monkeypatch):
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    assert not grad_scaler("cpu").is_enabled()
    for capability, dtype in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                              ((7, 5), torch.float16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        with warnings.catch_warnings():     # "CUDA is not available": fine, it is not entered
            warnings.simplefilter("ignore")
            ctx = autocast_for(torch.device("cuda"))
            fp32 = autocast_for(torch.device("cuda"), "fp32")
        # The scaler switches itself off where CUDA is missing: pretend it is there (nothing
        # here runs on it).
        with monkeypatch.context() as m:
            m.setattr(torch.cuda, "is_available", lambda: True)
            scaler = grad_scaler(torch.device("cuda"))
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == dtype
        assert ctx.device == "cuda"
        assert resolve_precision("cuda", "auto") == ("bf16" if dtype == torch.bfloat16 else "fp16")
        assert isinstance(fp32, contextlib.nullcontext)
        # Only fp16 needs loss scaling.
        assert scaler.is_enabled() == (dtype == torch.float16)


def test_precision_is_checked():
    assert resolve_precision("cpu", "auto") == "fp32" == resolve_precision("cpu", "fp32")
    with pytest.raises(ValueError, match="fp16 mixed precision needs a CUDA GPU"):
        resolve_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'bf16', 'fp16', "
                                         "'fp32', got 'half'"):
        resolve_precision("cpu", "half")


def test_history_last_and_round_trip(tmp_path):
    h = History()
    assert h.last("test_acc") is None and h.last("test_acc", 0.5) == 0.5
    h.epochs = [{"test_acc": 0.25}, {"test_acc": 0.5}, {"test_acc": 0.75}]
    assert h.last("test_acc") == 0.75 and h.last("missing", -1) == -1
    h.save(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["epochs"][2] == {"test_acc": 0.75}
    assert History.load(tmp_path / "h.json") == h


def test_atomic_write_leaves_the_old_file_and_no_temporary_one_on_failure(tmp_path):
    target = tmp_path / "sub" / "dir" / "f.json"             # folders made as needed
    seen = []

    def write(f):
        seen.extend(p.name for p in target.parent.iterdir())  # while it writes
        f.write(b"old")
    atomic_write(target, write)
    assert target.read_bytes() == b"old"
    # It wrote a hidden temporary file beside the target (so the rename is atomic).
    assert len(seen) == 1 and seen[0].startswith(".tmp-f.json.")

    def half(f):
        f.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_check_finite_names_the_first_bad_step():
    losses = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(float("nan")),
              torch.tensor(float("inf"))]
    R.check_finite(losses[:2], 0, 10, lambda s: 0.1)          # finite: no error
    R.check_finite(losses, 4, 10, lambda s: 0.1)              # nothing new to check
    with pytest.raises(FloatingPointError, match=r"became nan at step 12 \(lr 1\.2\)"):
        R.check_finite(losses, 1, 10, lambda s: 0.1 * s)
    with pytest.raises(FloatingPointError, match=r"became inf at step 13"):
        R.check_finite(losses, 3, 10, lambda s: 0.1)


def test_a_callback_never_sees_a_non_finite_loss():
    data = make_synthetic(640, 10, seed=1)
    torch.manual_seed(0)
    model = cifar_resnet(8, width=4)
    cfg = recipe("paper", lr=1e6)
    seen = []
    with pytest.raises(FloatingPointError) as info:
        train_one_epoch(model, Batches(data.train, 32), make_optimizer(model, cfg),
                        lambda s: cfg.lr, first_step=100, on_step=lambda s, l: seen.append((s, l)),
                        progress=False)
    assert seen and all(torch.isfinite(torch.tensor(l)) for _, l in seen)
    # The error names the step after the last one the callback saw (0-based vs 1-based).
    assert f"at step {seen[-1][0]}" in str(info.value)
    assert [s for s, _ in seen] == list(range(101, 101 + len(seen)))


def test_train_one_epoch_checks_finiteness_every_25_steps_without_a_callback():
    data = make_synthetic(60 * 8, 10, seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = []
    original = T.check_finite

    def spy(losses, start, first_step, schedule, bound):
        calls.append((len(losses), start, bound))
        return original(losses, start, first_step, schedule, bound)
    T.check_finite, saved = spy, T.check_finite
    try:
        train_one_epoch(model, Batches(data.train, 8), opt, lambda s: 0.0, progress=False)
    finally:
        T.check_finite = saved
    # Each check also gets the explosion bound for 10 classes (10 x ln 10, see loss_bound).
    bound = R.loss_bound(10)
    assert bound == pytest.approx(10 * math.log(10))
    assert calls == [(25, 0, bound), (50, 25, bound), (60, 50, bound)]


def test_fit_trains_any_module_and_resumes_it(tmp_path):
    """A network without a ResNetConfig (no .config) trains, checkpoints and resumes too."""
    data = make_synthetic(64, 16)
    cfg = recipe("paper", epochs=2, batch_size=32, lr=0.01)

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    a = net()
    h = fit(a, data, cfg, out_dir=tmp_path / "a", device="cpu", progress=False, verbose=False)
    assert h.model == {} and h.status == "completed" and len(h.epochs) == 2
    assert R.load_checkpoint(tmp_path / "a" / "checkpoint.pt")["model_config"] == {}
    b = net()
    fit(b, data, recipe("paper", epochs=1, batch_size=32, lr=0.01), out_dir=tmp_path / "b",
        device="cpu", progress=False, verbose=False)
    with pytest.raises(ValueError, match="different training settings"):
        fit(net(), data, cfg, out_dir=tmp_path / "b", resume=True, device="cpu",
            progress=False, verbose=False)


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


class _Planted:
    """Unpickling this calls os.makedirs(path): what a tampered checkpoint could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os
        return os.makedirs, (self.path,)


def test_a_tampered_checkpoint_is_refused_without_running_code(tmp_path):
    planted = tmp_path / "planted"
    torch.save({"model": _Planted(str(planted))}, tmp_path / "checkpoint.pt")
    # Refused by torch.load(weights_only=True), and reported in one line naming the file.
    with pytest.raises(R.RunFileError, match=r"^\S*checkpoint\.pt is not a usable checkpoint: "
                                             r"it cannot be read \(UnpicklingError: Weights only "
                                             r"load failed"):
        R.load_checkpoint(tmp_path / "checkpoint.pt")
    assert not planted.exists()
