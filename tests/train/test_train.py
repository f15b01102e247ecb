"""resnet_nb.train: the recipes' settings and schedules by hand, one batch overfitted,
train_one_epoch's finiteness checks, fit's history, seeds, shuffling and stop button, and
settings refused before any work."""
import json
import math
from dataclasses import replace
from functools import partial

import pytest
import torch
from torch import nn

import resnet_nb.runs as R
import resnet_nb.train as T
from resnet_nb import History, TrainingDiverged, cifar_resnet, fit, load_checkpoint, recipe
from resnet_nb.data import Batches, ImageSet, make_synthetic
from resnet_nb.train import TrainConfig, lr_at, make_optimizer, train_one_epoch

CFG = recipe("fast", epochs=1, batch_size=64)

class RecordingBatches(Batches):
    """Batches that remember the labels they yielded, one list per pass."""

    passes: list = []

    def __iter__(self):
        seen = []
        RecordingBatches.passes.append((self.train, seen))
        for x, y in super().__iter__():
            seen.append(y.clone())
            yield x, y


@pytest.mark.slow
def test_one_batch_can_be_overfitted():
    data = make_synthetic(32, 10)
    torch.manual_seed(0)
    model = cifar_resnet(8)
    cfg = recipe("paper", lr=0.05, weight_decay=0.0, epochs=1, batch_size=32)
    opt = make_optimizer(model, cfg)
    batches = Batches(data.train, 32, train=False)   # no augmentation: the same batch each time
    for _ in range(60):
        stats = train_one_epoch(model, batches, opt, lambda s: cfg.lr, progress=False)
    assert stats["acc"] == 1.0 and stats["loss"] < 0.05


def test_paper_recipe_schedule():
    cfg = recipe("paper")
    assert (cfg.batch_size, cfg.momentum, cfg.weight_decay, cfg.lr) == (128, 0.9, 1e-4, 0.1)
    total = 64_000
    assert lr_at(0, total, cfg) == 0.1
    assert lr_at(31_999, total, cfg) == 0.1
    assert lr_at(32_000, total, cfg) == pytest.approx(0.01)
    assert lr_at(48_000, total, cfg) == pytest.approx(0.001)
    # 182 epochs of 45k images in batches of 128 are the paper's 64k iterations.
    assert cfg.epochs * (45_000 // 128) == pytest.approx(64_000, rel=0.002)
    warm = recipe("paper", warmup_steps=400)
    assert lr_at(399, total, warm) == pytest.approx(0.01) and lr_at(400, total, warm) == 0.1


def test_fast_recipe_schedule_rises_then_falls_to_zero():
    cfg = recipe("fast")
    lrs = [lr_at(s, 1000, cfg) for s in range(1000)]
    peak = max(lrs)
    assert peak == pytest.approx(cfg.lr, rel=0.01) and lrs.index(peak) == pytest.approx(200, abs=1)
    assert lrs[0] == pytest.approx(cfg.lr / 10) and lrs[-1] < cfg.lr / 100


def test_bad_recipe_values():
    with pytest.raises(ValueError, match="recipe must be one of 'paper', 'fast'"):
        recipe("adam")
    with pytest.raises(ValueError, match="lr must be a positive"):
        recipe("fast", lr=-1)
    with pytest.raises(ValueError, match="epochs"):
        recipe("fast", epochs=0)


@pytest.mark.slow
def test_fit_history_is_plain_json(tiny, tmp_path):
    torch.manual_seed(0)
    model = cifar_resnet(8)
    h = fit(model, tiny.split_validation(64), recipe("fast", epochs=2, batch_size=64),
            out_dir=tmp_path, device="cpu", progress=False, provenance={"seed": 0})
    assert h.status == "completed" and len(h.epochs) == 2
    assert len(h.step_loss) == h.total_steps == 2 * 3
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
            "seconds"} <= set(h.epochs[0])
    again = History.load(tmp_path / "history.json")
    assert again == h and json.loads(json.dumps(h.to_dict())) == h.to_dict()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    fresh = cifar_resnet(8)
    fresh.load_state_dict(state["model"])
    # The checkpoint holds the trained weights and BN statistics: the same outputs.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model.eval()(x))   # fit made it channels-last


@pytest.mark.slow
def test_fit_without_augmentation_and_with_other_statistics(tiny):
    """fit's batches reach its training and evaluation batches: augment, mean and std."""
    seen = {"train": [], "eval": []}

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = cifar_resnet(8)

        def forward(self, x):
            seen["train" if self.training else "eval"].append(x.detach().clone())
            return self.net(x)

    torch.manual_seed(0)
    h = fit(Recorder(), tiny, recipe("fast", epochs=1, batch_size=64), device="cpu",
            progress=False, verbose=False,
            batches=partial(Batches, augment=False, mean=(0.5,) * 3, std=(0.5,) * 3))
    want = tiny.train.images.float() / 255 * 2 - 1          # every image, on the -1..1 scale
    train = torch.cat(seen["train"])
    assert len(train) == 256
    # Without augmentation each training input is exactly one of the images (sorted rows).
    rows = lambda t: t.flatten(1).sort(dim=0).values
    torch.testing.assert_close(rows(train), rows(want), atol=1e-6, rtol=0)
    test = torch.cat(seen["eval"])
    torch.testing.assert_close(test, tiny.test.images.float() / 255 * 2 - 1, atol=1e-6, rtol=0)
    assert h.provenance["augment"] is False and h.provenance["input_std"] == [0.5] * 3
    # The default augments: some training inputs are then no longer any stored image.
    seen["train"].clear()
    torch.manual_seed(0)
    h = fit(Recorder(), tiny, recipe("fast", epochs=1, batch_size=64), device="cpu",
            progress=False, verbose=False, evaluate_test=False)
    from resnet_nb.data import normalize
    assert not torch.allclose(rows(torch.cat(seen["train"])), rows(normalize(tiny.train.images)))
    assert h.provenance["augment"] is True


@pytest.mark.slow
def test_seeded_cpu_runs_are_reproducible(tiny):
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = cifar_resnet(8)
        h = fit(model, tiny, recipe("fast", epochs=1, batch_size=64, seed=5), device="cpu",
                progress=False)
        results.append((h.step_loss, [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tiny, tmp_path):
    cfg = recipe("fast", epochs=2, batch_size=64, seed=2)
    torch.manual_seed(0)
    straight = cifar_resnet(8)
    h_straight = fit(straight, tiny, cfg, out_dir=tmp_path / "a", device="cpu", progress=False)

    torch.manual_seed(0)
    stopped = cifar_resnet(8)

    def stop_in_epoch_2(step, loss):
        if step == 6:   # 4 steps per epoch: this is the middle of epoch 2
            raise KeyboardInterrupt
    h_stopped = fit(stopped, tiny, cfg, out_dir=tmp_path / "b", device="cpu", progress=False,
                    on_step=stop_in_epoch_2)
    assert h_stopped.status == "interrupted" and len(h_stopped.epochs) == 1
    assert "resume=True" in h_stopped.message

    torch.manual_seed(123)   # a new session: the weights come from the checkpoint
    resumed = cifar_resnet(8)
    h_resumed = fit(resumed, tiny, cfg, out_dir=tmp_path / "b", resume=True, device="cpu",
                    progress=False)
    assert h_resumed.status == "completed" and len(h_resumed.epochs) == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert h_resumed.step_loss == h_straight.step_loss


def test_resume_with_other_settings_is_refused(tiny, tmp_path):
    fit(cifar_resnet(8), tiny, recipe("fast", epochs=1, batch_size=64), out_dir=tmp_path,
        device="cpu", progress=False)
    with pytest.raises(ValueError, match="different training settings"):
        fit(cifar_resnet(8), tiny, recipe("fast", epochs=1, batch_size=64, lr=0.05),
            out_dir=tmp_path, resume=True, device="cpu", progress=False)


def test_stop_button_returns_history_and_model(tiny):
    model = cifar_resnet(8)

    def stop(step, loss):
        if step == 3:
            raise KeyboardInterrupt
    h = fit(model, tiny, recipe("fast", epochs=3, batch_size=64), device="cpu",
            progress=False, on_step=stop)
    assert h.status == "interrupted" and h.epochs == [] and "epoch 1" in h.message


def test_diverging_learning_rate_is_named(tiny, tmp_path):
    torch.manual_seed(0)
    model = cifar_resnet(8)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, tiny, recipe("paper", lr=1e6, epochs=3, batch_size=64), out_dir=tmp_path,
            device="cpu", progress=False)
    message = str(info.value)
    assert "at step" in message and "lower learning rate" in message
    assert info.value.history.status == "diverged"
    assert History.load(tmp_path / "history.json").status == "diverged"


def test_checkpoint_holds_only_plain_data(tiny, tmp_path):
    fit(cifar_resnet(8), tiny, recipe("paper", epochs=1, batch_size=64), out_dir=tmp_path,
        device="cpu", progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert set(state) == {"model", "optimizer", "epoch", "history", "train_config",
                          "model_config", "scaler"}
    assert state["scaler"] == {}        # float32 on a CPU: no loss scaling to carry on
    assert state["model_config"]["depth"] == 8


def test_progress_bars_obey_tqdm_disable_also_in_notebooks(monkeypatch):
    import resnet_nb.train as T
    seen = []
    monkeypatch.setattr("tqdm.auto.tqdm", lambda it, **kw: seen.append(kw) or it)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    T.progress_bar(range(3), desc="x")
    monkeypatch.delenv("TQDM_DISABLE")
    T.progress_bar(range(3), desc="x")
    # tqdm.notebook ignores TQDM_DISABLE, so it must be passed on explicitly; when the
    # variable is unset nothing is forced, so an explicit disable=... still decides.
    assert seen == [{"desc": "x", "disable": True}, {"desc": "x"}]


def test_quiet_fit_prints_nothing_when_stopped(tiny, capsys):
    def stop(step, loss):
        raise KeyboardInterrupt
    h = fit(cifar_resnet(8), tiny, recipe("fast", epochs=1, batch_size=64), device="cpu",
            progress=False, on_step=stop, verbose=False)
    assert h.status == "interrupted" and "stopped during epoch 1" in h.message
    assert capsys.readouterr().out == ""


def test_fit_shuffles_the_training_set_anew_every_epoch():
    data = make_synthetic(128, 10)
    data = type(data)(ImageSet(data.train.images, torch.arange(128)),      # label = index
                      ImageSet(data.test.images, torch.arange(10) % 10))
    RecordingBatches.passes = []
    cfg = recipe("fast", epochs=3, batch_size=32, seed=1)
    fit(cifar_resnet(8, num_classes=128, width=4), data, cfg, device="cpu", progress=False,
        evaluate_test=False, verbose=False, batches=RecordingBatches)
    orders = [torch.cat(seen) for train, seen in RecordingBatches.passes if train]
    assert len(orders) == 3
    for order in orders:                       # every image once per epoch
        assert sorted(order.tolist()) == list(range(128))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert not torch.equal(orders[0], torch.arange(128))
    # Epoch k's order is the one Batches gives for (seed, k), so a resumed run sees it too.
    again = Batches(ImageSet(data.train.images, data.train.labels), 32, train=True, seed=1)
    again.set_epoch(2)
    assert torch.equal(torch.cat([y for _, y in again]), orders[2])


def test_a_rate_for_a_recipe_of_ones_own_is_a_tenth():
    """suggest_lr knows the defaults of the named recipes only; another name gets lr/10."""
    from resnet_nb.train import TrainConfig, suggest_lr
    assert suggest_lr(TrainConfig(recipe="mine", lr=5.0)) == "lr=0.5"
    assert suggest_lr(TrainConfig(recipe="paper", lr=0.05)) == "lr=0.005"


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


def test_fit_on_empty_sets_is_refused(tiny):
    empty = tiny.train.take(torch.arange(0))
    with pytest.raises(ValueError, match="data.train is empty"):
        fit(cifar_resnet(8), replace(tiny, train=empty), CFG, device="cpu", progress=False)
    with pytest.raises(ValueError, match="data.test is empty"):
        fit(cifar_resnet(8), replace(tiny, test=empty), CFG, device="cpu", progress=False)
    h = fit(cifar_resnet(8), replace(tiny, test=empty), CFG, device="cpu", progress=False,
            evaluate_test=False, verbose=False)
    assert h.status == "completed"


@pytest.mark.parametrize("overrides,needle", [
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"epochs": True}, "epochs must be a positive integer, got True"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"seed": -1}, "seed must be an integer from 0 to 4294967295, got -1"),
    ({"seed": 2**32}, "seed must be an integer from 0 to 4294967295, got 4294967296"),
    ({"seed": 1.0}, "seed must be an integer"),
    ({"lr": float("nan")}, "lr must be a positive number, got nan"),
    ({"lr": "0.1"}, "lr must be a positive number, got '0.1'"),
    ({"momentum": 1.5}, "momentum must be a number from 0 to below 1, got 1.5"),
    ({"weight_decay": -1e-4}, "weight_decay must be a number >= 0"),
    ({"label_smoothing": 1.0}, "label_smoothing must be a number from 0 to below 1"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov=True needs a momentum above 0"),
    ({"milestones": (0.75, 0.5)}, "milestones must be increasing fractions"),
    ({"milestones": (50, 75)}, "milestones must be increasing fractions"),
    ({"warmup_steps": -3}, "warmup_steps must be an integer >= 0"),
    ({"epoch": 3}, "recipe() has no setting 'epoch'; the settings are recipe, epochs,"),
])
def test_bad_recipe_values_are_refused_naming_the_setting(overrides, needle):
    with pytest.raises(ValueError) as info:
        recipe("fast", **overrides)
    assert needle in str(info.value)


@pytest.mark.parametrize("kwargs,needle", [
    ({"preact": "False"}, "preact must be True or False, got 'False'"),
    ({"preact": 1}, "preact must be True or False, got 1"),
    ({"zero_init_residual": "yes"}, "zero_init_residual must be True or False"),
])
def test_flags_must_be_booleans(kwargs, needle):
    with pytest.raises(ValueError) as info:
        cifar_resnet(8, **kwargs)
    assert needle in str(info.value)
