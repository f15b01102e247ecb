"""The interactive lab's widgets, driven without a browser: set .value, click, read what is shown.

These tests also run under ipywidgets 7.7 (what Colab ships): test_under_ipywidgets_7_7 runs
this file again in a subprocess whose PYTHONPATH puts an ipywidgets 7.7 copy first
(.ci/run prepares it in .venv-ipywidgets7/; RESNET_NB_IPYWIDGETS7 names another folder).
"""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import ipywidgets
import pytest
import torch

from resnet_nb import count_parameters, make_synthetic
from resnet_nb.data import Batches
from resnet_nb.models import cifar_resnet, lesioned
from resnet_nb.train import evaluate, fit, recipe
from resnet_nb.widgets import (ArchitectureLab, LAB_DEPTHS, LabControls, LandscapeLab, LesionLab,
                               SignalLab, TrainingLab, architecture_view, build_model,
                               landscape_view, lesion_view, probe_batch, signal_view, train_run)

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One CPU thread for the test's own work: on a busy machine, parallel operations of tiny
    networks spend most of their time waiting for each other (the lab's trainings still run
    in their own threads, with torch's default)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(640, 256, seed=1)


@pytest.fixture(scope="module")
def batch(data):
    return probe_batch(data, 16)


def shown_parameters(lab: ArchitectureLab) -> int:
    """The parameter count as the reader sees it in the table's headline."""
    m = re.search(r"class='lab-params'>([\d,]+)<", lab.table.value)
    return int(m.group(1).replace(",", ""))


def test_depth_control_offers_every_6n_plus_2_from_8_to_110():
    assert LAB_DEPTHS == (8, 14, 20, 26, 32, 38, 44, 50, 56, 62, 68, 74, 80, 86, 92, 98, 104, 110)
    c = LabControls()
    assert tuple(c.depth.options) == LAB_DEPTHS and c.depth.continuous_update is False
    assert [v for _, v in c.shortcut.options] == ["none", "A", "B"]


@pytest.mark.slow
def test_new_depth_changes_the_parameter_count_shown():
    c = LabControls(depth=20)
    lab = ArchitectureLab(c)
    assert shown_parameters(lab) == 269_722          # ResNet-20, He et al. 2015: 0.27M
    png20 = lab.image.value
    c.depth.value = 56
    assert shown_parameters(lab) == 853_018          # ResNet-56: 0.85M
    assert "ResNet-56 (A)" in lab.table.value and lab.image.value[:4] == PNG
    assert lab.image.value != png20
    c.shortcut.value = "B"                           # projections add parameters
    assert shown_parameters(lab) == count_parameters(cifar_resnet(56, "B")) > 853_018
    c.shortcut.value = "none"                        # option A adds none: plain has as many
    assert shown_parameters(lab) == 853_018 and "plain-56" in lab.table.value
    c.preact.value = True
    assert "preact-plain-56" in lab.table.value


@pytest.mark.slow
def test_switching_shortcuts_off_changes_the_gradient_profile(batch):
    x, y = batch
    c = LabControls(depth=32, shortcut="A")
    lab = SignalLab(c, x, y)
    res = lab.view.current
    png = lab.image.value
    assert lab.view.current_label == "ResNet-32 (A)" and lab.view.reference_label == "plain-32"
    c.shortcut.value = "none"
    plain = lab.view.current
    assert lab.view.current_label == "plain-32" and lab.summary.value.startswith("plain-32")
    assert lab.image.value != png
    # The same weights, shortcuts off: the plain twin's gradient varies over depth by orders
    # of magnitude more than the residual network's (He et al. 2015, sec. 4.1 and Fig. 7).
    spread = lambda p: max(p.grad_norm) / min(p.grad_norm)
    assert spread(plain) > 5 * spread(res)
    assert plain.grad_norm != res.grad_norm
    # Going back shows the residual profile again (from the cache, the same numbers).
    c.shortcut.value = "A"
    assert lab.view.current.grad_norm == res.grad_norm
    # A new depth gives one value per block.
    c.depth.value = 8
    assert len(lab.view.current.grad_norm) == 3


def test_signal_view_leaves_the_random_state_alone(batch):
    x, y = batch
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    signal_view(14, "B", True, x, y)
    assert torch.equal(torch.rand(3), expected)
    # The same setting always gives the same network.
    a, b = build_model(14, "B", True), build_model(14, "B", True)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_plain_calls_show_without_widgets(batch):
    x, y = batch
    for view in (architecture_view(8, "A"), signal_view(8, "none", False, x, y)):
        bundle = view._repr_mimebundle_()
        assert set(bundle) == {"image/png", "text/plain"} and bundle["text/plain"]
    assert "total" in repr(architecture_view(8, "A"))


def wait_for(condition, timeout, step=0.02):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.mark.slow
def test_stop_ends_a_run_within_a_second_and_runs_stay_on_the_plot(data):
    c = LabControls(depth=14, shortcut="none")
    lab = TrainingLab(c, data, batch_size=32, epochs=3, update_every=0.05)
    empty = lab.image.value
    lab.train_button.click()
    assert lab.running and lab.stop_button.disabled is False and lab.train_button.disabled
    assert wait_for(lambda: len(lab.runs[0].step_loss) >= 3, 60)
    assert wait_for(lambda: lab.image.value != empty, 5)       # the curve is drawn while it trains
    t0 = time.perf_counter()
    lab.stop_button.click()
    assert lab.wait(timeout=1.0), "Stop did not end the run within a second"
    stop_seconds = time.perf_counter() - t0
    run = lab.runs[0]
    assert run.status == "stopped" and "plain-14" in run.label and "(stopped)" in run.label
    assert stop_seconds < 1.0 and lab.train_button.disabled is False
    # A second run, another setting: the first stays on the plot, labelled with its setting.
    c.shortcut.value = "A"
    lab.epochs.value = 1
    lab.train_button.click()
    assert lab.wait(timeout=120)
    assert [r.status for r in lab.runs] == ["stopped", "completed"]
    assert "ResNet-14 (A), lr 0.2: test" in lab.runs[1].label
    # The accuracy shown is the finished network's accuracy on the test images.
    done = lab.runs[1]
    assert done.test_acc == pytest.approx(evaluate(done.model, Batches(data.test, 128))["acc"])
    assert done.images_per_second > 0
    assert "images/s" in lab.status.value
    lab.clear_button.click()
    assert lab.runs == []


@pytest.mark.slow
def test_the_kernel_answers_other_widgets_while_training(data, batch):
    c = LabControls(depth=20, shortcut="A")
    arch = ArchitectureLab(c)
    lab = TrainingLab(c, data, batch_size=32, epochs=5)
    lab.train()
    try:
        assert wait_for(lambda: len(lab.runs[0].step_loss) >= 1, 60)
        t0 = time.perf_counter()
        c.depth.value = 32          # handled on this (the kernel's) thread while the run goes on
        seconds = time.perf_counter() - t0
        assert shown_parameters(arch) == count_parameters(cifar_resnet(32))
        assert lab.running, "the run should still be going"
        assert seconds < 5
    finally:
        lab.stop()
        assert lab.wait(timeout=5)
    assert lab.runs[0].setting["depth"] == 20     # the run keeps the setting it started with


def test_a_diverging_run_is_reported_not_raised(data):
    run = train_run(8, "none", False, data, lr=1e6, epochs=1, batch_size=64)
    assert run.status == "diverged" and "(diverged)" in run.label and run.test_acc is None
    assert run.setting["label_smoothing"] == 0.1     # the fast recipe's; the race plot names it


@pytest.fixture(scope="module")
def trained(data):
    """A narrow ResNet-8 and plain-8 trained briefly on the synthetic classes (above chance)."""
    nets = {}
    for shortcut in ("A", "none"):
        torch.manual_seed(0)
        m = cifar_resnet(8, shortcut, width=8)
        fit(m, data, recipe("fast", epochs=6, batch_size=64, lr=0.2), progress=False,
            evaluate_test=False)
        nets[m.name] = m
    return nets


@pytest.mark.slow
def test_lesion_switches_blocks_off_and_shows_the_accuracy(data, trained):
    test = Batches(data.test, 128)
    lab = LesionLab(trained, test)
    res, plain = lab.results["ResNet-8 (A)"], lab.results["plain-8"]
    assert res.baseline_acc > 0.5 and plain.baseline_acc > 0.5
    before = lab.summary.value
    png = lab.image.value
    lab.toggles[0].value = False         # block 1 off
    assert lab.off == (0,) and lab.summary.value != before and lab.image.value != png
    acc = lab.view.accuracy
    # The lab shows what evaluate measures with block 1 lesioned. In the plain network too
    # the lesioned block passes its input on (see test_lesioned_plain_block_passes_its_input_on),
    # so its accuracy is whatever the remaining blocks make of it, not necessarily chance.
    for label, m in trained.items():
        with lesioned(m, [0]):
            assert acc[label] == evaluate(m, test)["acc"]
    assert acc["plain-8"] == plain.lesioned_acc[0] and acc["plain-8"] != plain.baseline_acc
    assert acc["ResNet-8 (A)"] == pytest.approx(res.lesioned_acc[0])
    assert all(b.enabled for m in trained.values() for b in m.blocks)   # restored after
    lab.toggles[0].value = True
    assert lab.view.accuracy["plain-8"] == plain.baseline_acc
    # The plain call gives the same numbers.
    v = lesion_view(trained, test, off=[0], results=lab.results)
    assert v.accuracy == acc and "blocks switched off: 1" in v.text()


def test_ipywidgets_version_is_the_one_asked_for():
    """In the 7.7 run (RESNET_NB_EXPECT_IPYWIDGETS=7.7) make sure 7.7 really was imported."""
    wanted = os.environ.get("RESNET_NB_EXPECT_IPYWIDGETS")
    if wanted is None:
        pytest.skip("runs in the ipywidgets 7.7 subprocess")
    assert ipywidgets.__version__.startswith(wanted + "."), ipywidgets.__version__


def ipywidgets7_folder() -> Path:
    return Path(os.environ.get("RESNET_NB_IPYWIDGETS7", ROOT / ".venv-ipywidgets7"))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RESNET_NB_EXPECT_IPYWIDGETS") is not None,
                    reason="this is the 7.7 run itself")
def test_under_ipywidgets_7_7(tmp_path):
    folder = ipywidgets7_folder()
    if not (folder / "ipywidgets").is_dir():
        message = (f"no ipywidgets 7.7 copy in {folder}; make one with: .venv/bin/pip install "
                   f"--target {folder.name} --no-deps 'ipywidgets==7.7.*' ipython_genutils")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get(
        "PYTHONPATH", "")]).rstrip(os.pathsep), "RESNET_NB_EXPECT_IPYWIDGETS": "7.7"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-W", "ignore::DeprecationWarning", str(Path(__file__))],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    # Everything ran there except this test itself (skipped): nothing skipped for want of 7.7.
    assert re.search(r"\d+ passed, 1 skipped", r.stdout), r.stdout[-2000:]


def test_exercise_checker_of_notebook_06():
    from resnet_nb.exercises import ExerciseError, check_additive_accuracy
    assert check_additive_accuracy(
        lambda r, blocks: r.baseline_acc - sum(r.drop[b - 1] for b in blocks)).startswith("correct")
    for wrong in (lambda r, blocks: r.baseline_acc - sum(r.drop[b] for b in blocks if b < len(r.drop)),
                  lambda r, blocks: min(r.lesioned_acc[b - 1] for b in blocks),  # the worst alone
                  lambda r, blocks: None):
        with pytest.raises(ExerciseError):
            check_additive_accuracy(wrong)


def test_stop_ends_a_run_mid_step_and_leaves_no_hooks(data):
    stop = threading.Event()
    stop.set()                        # pressed before the first block of the first step
    t0 = time.perf_counter()
    run = train_run(110, "A", False, data, epochs=1, batch_size=64, stop=stop)
    assert run.status == "stopped" and run.step_loss == [] and run.test_acc is None
    assert time.perf_counter() - t0 < 5
    assert all(not b._forward_pre_hooks for b in run.model.blocks)


# --- notebook 07: the landscape view ----------------------------------------------------------

def _landscape_setup(data, trained, alphas):
    from resnet_nb.probes import filter_normalized_direction, loss_slice, loss_surface
    from resnet_nb.data import normalize
    models = list(trained.values())
    x, y = normalize(data.train.images[:64]), data.train.labels[:64]
    d1 = {m.name: filter_normalized_direction(m, seed=1) for m in models}
    d2 = {m.name: filter_normalized_direction(m, seed=2) for m in models}
    slices = [loss_slice(m, d1[m.name], alphas, x, y) for m in models]
    surfaces = [loss_surface(m, d1[m.name], d2[m.name], [-1, 0, 1], [-1, 0, 1], x, y)
                for m in models]
    return models, x, y, d1, slices, surfaces


def _count_forwards(models):
    """A list that grows by one at every forward pass of any of `models` (and its handles)."""
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in models]
    return calls, handles


@pytest.mark.slow
def test_every_landscape_slider_position_is_a_measured_point_of_the_slices(data, trained):
    import numpy as np
    alphas = np.linspace(-1, 1, 7)                 # thirds: not exact in 6 decimals
    models, x, y, d1, slices, surfaces = _landscape_setup(data, trained, alphas)
    before = {m.name: {k: v.clone() for k, v in m.state_dict().items()} for m in models}
    lab = LandscapeLab(models, d1, x, y, slices, surfaces)
    assert [value for _label, value in lab.alpha.options] == [float(a) for a in alphas]
    assert lab.alpha.continuous_update is False and lab.alpha.value == 0.0
    assert "alpha = +0.00" in lab.summary.value and lab._cache == {}
    first, contours = lab.image.value, lab.contours.value
    assert first[:4] == PNG and contours[:4] == PNG
    calls, handles = _count_forwards(models)
    try:
        for i in (4, 6, 0, 2):                     # +1/3, +1, -1, -1/3
            lab.alpha.value = float(alphas[i])
            for m, s in zip(models, slices):
                got = lab.view.current[m.name]
                assert got == (s.alphas[i], s.loss[i], s.accuracy[i])      # looked up ...
                assert f"{m.name} training loss {s.loss[i]:.3g}" in lab.summary.value
            marks = {tuple(l.get_xdata()) + tuple(l.get_ydata())
                     for l in lab.picture.ax.get_lines() if len(l.get_xdata()) == 1}
            assert {(alphas[i], s.loss[i]) for s in slices} <= marks      # ... and marked
            assert f"alpha = {alphas[i]:+.2f}" in lab.picture.ax.get_title()
    finally:
        for h in handles:
            h.remove()
    assert calls == [] and lab._cache == {}        # ... with no network evaluated
    assert len(lab.seconds) == 5 and lab.image.value not in (first, b"")
    assert f"{lab.seconds[-1]:.2f} s" in lab.timing.value
    assert lab.contours.value == contours          # drawn once, not per update
    with pytest.raises(Exception):                 # off the slices: not a position
        lab.alpha.value = 0.25
    for m in models:                               # the networks were moved on copies only
        assert all(torch.equal(before[m.name][k], v) for k, v in m.state_dict().items())


@pytest.mark.slow
def test_a_landscape_update_is_fast_it_draws_no_new_figure(data, trained, monkeypatch):
    import resnet_nb.widgets as widgets
    models, x, y, d1, slices, surfaces = _landscape_setup(data, trained, [-1, -0.5, 0, 0.5, 1])
    lab = LandscapeLab(models, d1, x, y, slices, surfaces)
    figure = lab.view.figure
    monkeypatch.setattr(widgets, "LandscapePosition",
                        lambda *a, **k: pytest.fail("an update drew a new figure"))
    for value in (0.5, 1.0, -0.5, -1.0, 0.0):
        lab.alpha.value = value
    assert lab.view.figure is figure
    # One small figure encoded per update: well under the 1 s of issue 12 (generous here,
    # for a loaded test machine; benchmarks/why_it_works.py measures it).
    assert sorted(lab.seconds)[len(lab.seconds) // 2] < 1.0, lab.seconds


@pytest.mark.slow
def test_landscape_view_measures_any_alpha_and_caches_it(data, trained):
    from resnet_nb.probes import loss_slice
    models, x, y, d1, slices, surfaces = _landscape_setup(data, trained, [-1, -0.5, 0, 0.5, 1])
    cache = {}
    v = landscape_view(models, d1, 0.25, x, y, slices, surfaces, cache)   # between two points
    for m in models:
        want = loss_slice(m, d1[m.name], [0.25], x, y)
        assert v.current[m.name][1] == pytest.approx(want.loss[0], rel=1e-5)
        assert v.current[m.name][2] == want.accuracy[0]
    assert len(cache) == 2
    calls, handles = _count_forwards(models)
    try:
        again = landscape_view(models, d1, 0.25, x, y, slices, (), cache)   # from the cache
        on_slice = landscape_view(models, d1, 0.5, x, y, slices, (), cache)  # from the slices
    finally:
        for h in handles:
            h.remove()
    assert calls == [] and again.current == v.current
    assert on_slice.current[models[0].name] == (0.5, slices[0].loss[3], slices[0].accuracy[3])
    assert "+0.25" in v.figure.axes[0].get_title() and len(v.figure.axes) > 1   # contours too
    assert set(v._repr_mimebundle_()) == {"image/png", "text/plain"}


def test_a_lesion_lab_without_networks_says_so():
    from resnet_nb.data import Batches
    from resnet_nb.widgets import LesionLab, lesion_view
    batches = Batches(make_synthetic(16, 16).test, 16)
    for call in (lambda: LesionLab({}, batches), lambda: lesion_view({}, batches)):
        with pytest.raises(ValueError, match=r"models must be a non-empty dict \{label: trained "
                                             r"network\}"):
            call()
    with pytest.raises(ValueError, match="'resnet' is a Linear"):
        LesionLab({"resnet": torch.nn.Linear(2, 2)}, batches)


@pytest.mark.parametrize("kwargs,needle", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 64.0}, "batch_size must be a positive integer, got 64.0"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"lr": -0.1}, "lr must be a positive number, got -0.1"),
    ({"update_every": 0}, "update_every must be a positive number, got 0"),
])
def test_a_training_lab_with_bad_settings_says_so_when_built(kwargs, needle):
    from resnet_nb.widgets import TrainingLab
    with pytest.raises(ValueError) as info:
        TrainingLab(None, make_synthetic(64, 16), **kwargs)
    assert needle in str(info.value)
