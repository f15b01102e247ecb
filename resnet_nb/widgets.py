"""The interactive lab (notebook 06) and the landscape view (notebook 07): controls wired to
probes, train and the figures of viz_lab.

Two layers, so that every view also works where no widgets are shown:

* plain functions that compute one view and return its data and figure:
  `architecture_view`, `signal_view`, `train_run` (and `race_view` to plot
  several runs), `lesion_view`;
* widget classes that call them whenever a control changes:
  `LabControls` (shortcut, depth, pre-activation), `ArchitectureLab`,
  `SignalLab`, `TrainingLab` and `LesionLab`;
* for notebook 07, `landscape_view` (the networks measured at any point along a direction
  in weight space) and `LandscapeLab`: a slider over the points of the measured 1-D slices.

Only widget APIs that exist in ipywidgets 7.7 (Colab) and 8 (JupyterLab 4) are
used: value traits and `observe`, `Button.on_click`, `Image` widgets whose
`value` is a PNG, `HTML` labels and `continuous_update=False` on the depth
slider, whose views take a while. Figures are PNGs set on `Image` widgets
rather than drawn into `Output` widgets, because the training view redraws
from a background thread, and `Output` capture only works on the kernel's
main thread.
"""
from __future__ import annotations

import html
import math
import threading
import time
from dataclasses import dataclass, field, replace

import torch

from .data import Batches, CifarData, ImageSet
from .models import CifarResNet, ModelSummary, cifar_resnet, lesioned, shortcuts_off, summarize
from .probes import LesionResult, SignalProfile, lesion_study, loss_slice, signal_profile
from .runs import TrainingDiverged
from .train import evaluate, fit, recipe
from .viz import plot_architecture
from .viz_lab import (LandscapePosition, figure_png, plot_landscape_contours, plot_lesions,
                      plot_signal_comparison, plot_training_race)

#: The depths 6n+2 the lab offers, from 8 to 110 (He et al. 2015 train 20...110 on CIFAR-10).
LAB_DEPTHS = tuple(range(8, 111, 6))
#: (label, value) pairs of the shortcut control: the plain network and the paper's options A/B.
SHORTCUTS = (("none (plain)", "none"), ("A: zero-pad", "A"), ("B: projection", "B"))
#: Peak learning rates offered for a training run (the "fast" recipe's default is 0.2).
LAB_LRS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def _check_positive(name: str, value, kind=int) -> None:
    """ValueError naming the argument unless `value` is a positive `kind` (int or number)."""
    ok = isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, "
                         f"got {value!r}")


def _check_lesion_models(models) -> None:
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: trained network}, got "
                         f"{models!r}")
    wrong = [label for label, m in models.items() if not isinstance(m, CifarResNet)]
    if wrong:
        raise ValueError(f"models must map labels to CifarResNet networks; {wrong[0]!r} is a "
                         f"{type(models[wrong[0]]).__name__}")


def build_model(depth: int = 20, shortcut: str = "A", preact: bool = False,
                seed: int = 0) -> CifarResNet:
    """The lab's network for a setting, initialised from `seed` (same setting, same weights).

    The global random state is left as it was, so building a model in the lab does not
    change what later cells of a notebook draw.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cifar_resnet(depth, shortcut=shortcut, preact=preact)


# How many lab trainings run in background threads right now (see _fewer_threads_while_training).
_active_runs = 0
_active_lock = threading.Lock()


class _fewer_threads_while_training:
    """While a lab training runs in the background, run this thread's work on one CPU thread.

    torch.set_num_threads acts on the calling thread only. A training thread and a view
    update that each use every core oversubscribe the processor, and then every parallel
    operation waits for a descheduled partner: on a 2-core machine that made a view update
    20-50 times slower. One thread for the update leaves the other cores to the training.
    """

    def __enter__(self):
        self.before = torch.get_num_threads()
        if _active_runs:
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def _png_bundle(png: bytes, text: str) -> dict:
    import base64
    return {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}


# --- view 1: the architecture ---------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class ArchitectureView:
    """The network of one setting: its per-stage table, parameter count and a drawing."""

    model_name: str
    summary: ModelSummary
    parameters: int
    figure: object          # matplotlib Figure

    def html(self) -> str:
        """The per-stage table as HTML (what the widget shows above the drawing)."""
        rows = "".join(f"<tr><td>{r.name}</td><td>{' x '.join(map(str, r.output_shape))}</td>"
                       f"<td style='text-align:right'>{r.parameters:,}</td></tr>"
                       for r in self.summary.rows)
        return (f"<b>{html.escape(self.model_name)}</b>: <b class='lab-params'>"
                f"{self.parameters:,}</b> parameters"
                "<table><tr><th>part</th><th>output (C x H x W)</th><th>parameters</th></tr>"
                f"{rows}</table>")

    def __repr__(self) -> str:
        return str(self.summary)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _png_bundle(figure_png(self.figure), str(self.summary))


def architecture_view(depth: int = 20, shortcut: str = "A", preact: bool = False
                      ) -> ArchitectureView:
    """View 1 as a plain call: build the network and describe it."""
    model = build_model(depth, shortcut, preact)
    summary = summarize(model)
    return ArchitectureView(model.name, summary, summary.total_parameters,
                            plot_architecture(model, summary=summary, pyplot=False))


# --- view 2: signal and gradient at initialisation ------------------------------------------

@dataclass(frozen=True, repr=False)
class SignalView:
    """Per-block activation RMS and gradient norm of a setting and of its twin, at initialisation.

    The twin has the same weights with the shortcuts switched the other way: a residual
    setting is compared with its plain twin, the plain setting with ResNet option A.
    """

    current: SignalProfile
    reference: SignalProfile
    current_label: str
    reference_label: str
    seconds: float          # time to build the network and run both probes (not the drawing)
    figure: object

    def text(self) -> str:
        """One line per network: how much the gradient changes from the last block to the first."""
        return "\n".join(f"{label}: gradient at block 1 / at block {len(p.grad_norm)} = "
                         f"{p.grad_ratio:.3g}"
                         for label, p in ((self.current_label, self.current),
                                          (self.reference_label, self.reference)))

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _png_bundle(figure_png(self.figure), self.text())


def signal_profiles(depth: int, shortcut: str, preact: bool, images: torch.Tensor,
                    labels: torch.Tensor, seed: int = 0
                    ) -> tuple[SignalProfile, SignalProfile, str, str]:
    """(current, reference, their labels): the probes behind view 2, without a figure."""
    residual_option = "A" if shortcut == "none" else shortcut
    model = build_model(depth, residual_option, preact, seed)
    residual = signal_profile(model, images, labels)
    with shortcuts_off(model):   # the same weights, every shortcut contributing 0
        plain = signal_profile(model, images, labels)
    names = (model.name, build_model_name(depth, "none", preact))
    if shortcut == "none":
        return plain, residual, names[1], names[0]
    return residual, plain, names[0], names[1]


def signal_view(depth: int, shortcut: str, preact: bool, images: torch.Tensor,
                labels: torch.Tensor, seed: int = 0) -> SignalView:
    """View 2 as a plain call. images: (N, 3, 32, 32) normalised float; labels: (N,) int64."""
    t0 = time.perf_counter()
    current, reference, cl, rl = signal_profiles(depth, shortcut, preact, images, labels, seed)
    seconds = time.perf_counter() - t0
    return SignalView(current, reference, cl, rl, seconds,
                      plot_signal_comparison(current, reference, cl, rl))


def probe_batch(data: CifarData, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `size` test images, normalised as for training: (size, 3, 32, 32), (size,)."""
    return next(iter(Batches(data.test, size)))


# --- view 3: live training ------------------------------------------------------------------

@dataclass
class LabRun:
    """One training run of the lab, filled in while it trains (the widget reads it to draw)."""

    label: str
    setting: dict
    steps_per_epoch: int
    step_loss: list = field(default_factory=list)
    status: str = "running"         # running, completed, stopped, diverged, failed
    test_acc: float | None = None
    images_per_second: float | None = None
    train_seconds: float = 0.0
    model: object = field(default=None, repr=False)   # the trained network


def train_run(depth: int, shortcut: str, preact: bool, data: CifarData, *, lr: float | None = None,
              epochs: int = 1, batch_size: int = 128, seed: int = 0,
              stop: threading.Event | None = None, on_update=None,
              update_every: float = 1.0, device=None, run: LabRun | None = None,
              progress: bool = False) -> LabRun:
    """View 3 as a plain call: train one setting on `data.train`, then test it on `data.test`.

    The "fast" recipe (one-cycle learning rate peaking at `lr`, by default the recipe's,
    Nesterov momentum) runs for `epochs` epochs. Setting `stop` ends the run at the next
    block or step, mid-step if need be (fit() returns the history so far), and skips the
    test. `on_update(run)` is called at most every `update_every` seconds while it trains,
    and once at the end.
    """
    stop = stop or threading.Event()
    lr = recipe("fast").lr if lr is None else lr
    model = build_model(depth, shortcut, preact, seed)
    if run is not None:
        run.model = model
    cfg = recipe("fast", epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    train_only = replace(data, val=None)          # the lab tests once, at the end
    steps_per_epoch = len(Batches(data.train, batch_size, train=True))
    if run is None:
        run = LabRun(f"{model.name}, lr {lr:g}", {"depth": depth, "shortcut": shortcut,
                     "preact": preact, "lr": lr, "epochs": epochs}, steps_per_epoch,
                     model=model)
    run.setting["label_smoothing"] = cfg.label_smoothing    # in the loss: the race plot says so
    last = [time.perf_counter()]

    def on_step(step: int, loss: float) -> None:
        run.step_loss.append(loss)
        if stop.is_set():             # before drawing: a Stop waits for one step at most
            raise KeyboardInterrupt   # fit() ends cleanly and returns the history
        if on_update is not None and time.perf_counter() - last[0] >= update_every:
            on_update(run)
            last[0] = time.perf_counter()

    def stop_between_blocks(_module, _inputs) -> None:
        # A step of a deep network takes up to a second on a CPU: checking before each
        # block's forward pass lets Stop end a run mid-step (before the optimizer step, so
        # the weights stay those of the last finished step).
        if stop.is_set():
            raise KeyboardInterrupt

    hooks = [b.register_forward_pre_hook(stop_between_blocks) for b in model.blocks]
    t0 = time.perf_counter()
    try:
        history = fit(model, train_only, cfg, device=device, on_step=on_step,
                      progress=progress, evaluate_test=False, verbose=False)
        run.status = "completed" if history.status == "completed" else "stopped"
    except TrainingDiverged:
        run.status = "diverged"
    finally:
        for h in hooks:
            h.remove()
    run.train_seconds = time.perf_counter() - t0
    if run.step_loss:
        run.images_per_second = len(run.step_loss) * batch_size / run.train_seconds
    if run.status == "completed":
        run.test_acc = _test_accuracy(model, data.test, stop)
        if run.test_acc is None:
            run.status = "stopped"
    run.label += {"completed": f": test {100 * (run.test_acc or 0):.1f}%",
                  "stopped": " (stopped)", "diverged": " (diverged)"}[run.status]
    if on_update is not None:
        on_update(run)
    return run


@dataclass(frozen=True, repr=False)
class RaceView:
    """Several finished runs on one plot: view 3's figure, without the widgets."""

    runs: tuple
    figure: object

    def text(self) -> str:
        return "\n".join(r.label for r in self.runs)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _png_bundle(figure_png(self.figure), self.text())


def race_view(runs) -> RaceView:
    """The training curves of `runs` (LabRun's from train_run) on one plot."""
    runs = tuple(runs)
    return RaceView(runs, plot_training_race(runs))


def _test_accuracy(model: torch.nn.Module, test: ImageSet, stop: threading.Event,
                   chunk: int = 256) -> float | None:
    """Accuracy on `test`, a chunk at a time so that a Stop is seen quickly (None if stopped)."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(test), chunk):
        if stop.is_set():
            return None
        part = ImageSet(test.images[start:start + chunk], test.labels[start:start + chunk])
        correct += evaluate(model, Batches(part, chunk, device=device))["acc"] * len(part)
    return correct / max(len(test), 1)


# --- view 4: lesions ------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class LesionView:
    """Single-block lesion sweeps of trained networks, and their accuracy with `off` removed."""

    results: dict            # {label: LesionResult}
    off: tuple[int, ...]     # blocks (0-based) switched off together
    accuracy: dict           # {label: test accuracy with every block in `off` removed}
    figure: object

    def text(self) -> str:
        blocks = ", ".join(str(i + 1) for i in self.off) or "none"
        lines = [f"blocks switched off: {blocks}"]
        for label, r in self.results.items():
            lines.append(f"{label}: test accuracy {100 * r.baseline_acc:.1f}% with every block, "
                         f"{100 * self.accuracy[label]:.1f}% now")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _png_bundle(figure_png(self.figure), self.text())


def lesion_view(models: dict, batches: Batches, off=(), results: dict | None = None,
                progress: bool = False) -> LesionView:
    """View 4 as a plain call. models: {label: trained CifarResNet}; off: 0-based block indices.

    `results` (from an earlier call) saves re-running the single-block sweeps.
    """
    _check_lesion_models(models)
    off = tuple(sorted(set(off)))
    if results is None:
        results = {label: lesion_study(m, batches, progress=progress)
                   for label, m in models.items()}
    accuracy = {}
    for label, m in models.items():
        if off:
            with lesioned(m, off):
                accuracy[label] = evaluate(m, batches)["acc"]
        else:
            accuracy[label] = results[label].baseline_acc
    return LesionView(results, off, accuracy,
                      plot_lesions(results, off, accuracy if off else None))


# --- the widgets ----------------------------------------------------------------------------

def _widgets():
    import ipywidgets   # imported when a widget is built: the plain calls above don't need it
    return ipywidgets


class _Shown:
    """Displays as its `.widget` (ipywidgets 7 uses _ipython_display_, 8 the mime bundle)."""

    widget = None

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


class LabControls(_Shown):
    """The setting every view follows: shortcut (none, A, B), depth (6n+2), pre-activation."""

    def __init__(self, depth: int = 20, shortcut: str = "A", preact: bool = False):
        w = _widgets()
        self.shortcut = w.ToggleButtons(options=list(SHORTCUTS), value=shortcut,
                                        description="shortcut")
        # continuous_update=False: views update when the slider is released, not while dragged.
        self.depth = w.SelectionSlider(options=list(LAB_DEPTHS), value=depth, description="depth",
                                       continuous_update=False)
        self.preact = w.Checkbox(value=preact, description="pre-activation blocks")
        self.widget = w.HBox([self.shortcut, self.depth, self.preact])

    @property
    def setting(self) -> dict:
        return {"depth": self.depth.value, "shortcut": self.shortcut.value,
                "preact": self.preact.value}

    def observe(self, callback) -> None:
        """Call `callback(setting)` after any control changes."""
        for c in (self.shortcut, self.depth, self.preact):
            c.observe(lambda _change: callback(self.setting), names="value")


class ArchitectureLab(_Shown):
    """View 1: the per-stage table, the parameter count and a drawing of the current network."""

    def __init__(self, controls: LabControls):
        w = _widgets()
        self.controls = controls
        self.table = w.HTML()
        self.image = w.Image(format="png")
        self.widget = w.VBox([controls.widget, self.table, self.image])
        self.view: ArchitectureView | None = None
        controls.observe(lambda s: self.update())
        self.update()

    def update(self) -> None:
        with _fewer_threads_while_training():
            self.view = architecture_view(**self.controls.setting)
        self.table.value = self.view.html()
        self.image.value = figure_png(self.view.figure)


class SignalLab(_Shown):
    """View 2: activation and gradient per block at initialisation, current setting vs its twin."""

    def __init__(self, controls: LabControls, images: torch.Tensor, labels: torch.Tensor):
        w = _widgets()
        self.controls, self.images, self.labels = controls, images, labels
        self.summary = w.HTML()
        self.image = w.Image(format="png")
        self.widget = w.VBox([controls.widget, self.summary, self.image])
        self.view: SignalView | None = None
        self.seconds: list[float] = []   # wall time of every update, figure included
        self._cache: dict = {}
        controls.observe(lambda s: self.update())
        self.update()

    def update(self, use_cache: bool = True) -> None:
        t0 = time.perf_counter()
        key = tuple(self.controls.setting.values())
        view = self._cache.get(key) if use_cache else None
        if view is None:
            with _fewer_threads_while_training():
                view = signal_view(*key, self.images, self.labels)
            self._cache[key] = view
        self.view = view
        self.image.value = figure_png(view.figure)
        self.summary.value = "<br>".join(html.escape(line) for line in view.text().splitlines())
        self.seconds.append(time.perf_counter() - t0)


class TrainingLab(_Shown):
    """View 3: Train the current setting while its curve grows; Stop; earlier runs stay.

    Training runs in a background thread, so the kernel keeps answering the other views.
    """

    def __init__(self, controls: LabControls, data: CifarData, *, batch_size: int = 128,
                 epochs: int = 1, max_epochs: int = 10, lr: float | None = None, device=None,
                 update_every: float = 1.0):
        _check_positive("batch_size", batch_size)
        _check_positive("epochs", epochs)
        _check_positive("max_epochs", max_epochs)
        _check_positive("update_every", update_every, float)
        if lr is not None:
            _check_positive("lr", lr, float)
        if len(data.train) == 0:
            raise ValueError("data.train is empty: the lab needs training images")
        w = _widgets()
        self.controls, self.data, self.batch_size = controls, data, batch_size
        self.device, self.update_every = device, update_every
        lr = recipe("fast").lr if lr is None else lr
        self.lr = w.SelectionSlider(options=sorted(set(LAB_LRS) | {lr}), value=lr,
                                    description="peak lr")
        self.epochs = w.IntSlider(value=epochs, min=1, max=max(max_epochs, epochs),
                                  description="epochs")
        self.train_button = w.Button(description="Train", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.clear_button = w.Button(description="Clear runs", icon="trash")
        self.status = w.HTML()
        self.image = w.Image(format="png")
        self.widget = w.VBox([controls.widget,
                              w.HBox([self.lr, self.epochs]),
                              w.HBox([self.train_button, self.stop_button, self.clear_button]),
                              self.status, self.image])
        self.runs: list[LabRun] = []
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._draw_lock = threading.Lock()
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        self.clear_button.on_click(lambda _b: self.clear())
        controls.observe(lambda s: self._say_next())
        self._say_next()
        self.redraw()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _say_next(self) -> None:
        if not self.running:
            s = self.controls.setting
            name = build_model_name(**s)
            self.status.value = (f"next run: <b>{html.escape(name)}</b> on "
                                 f"{len(self.data.train):,} training images")

    def train(self) -> None:
        """Start a run of the current setting in a background thread (ignored while one runs)."""
        if self.running:
            return
        s = self.controls.setting
        self._stop = threading.Event()
        run = LabRun(f"{build_model_name(**s)}, lr {self.lr.value:.3g}",
                     {**s, "lr": self.lr.value, "epochs": self.epochs.value},
                     len(Batches(self.data.train, self.batch_size, train=True)))
        self.runs.append(run)
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"training <b>{html.escape(run.label)}</b> ..."
        self.thread = threading.Thread(target=self._train, args=(run, self._stop), daemon=True,
                                       name="resnet_nb-lab-training")
        self.thread.start()

    def _train(self, run: LabRun, stop: threading.Event) -> None:
        global _active_runs
        with _active_lock:
            _active_runs += 1
        try:
            train_run(device=self.device, lr=run.setting["lr"], epochs=run.setting["epochs"],
                      batch_size=self.batch_size, stop=stop, run=run, data=self.data,
                      update_every=self.update_every, on_update=lambda r: self.redraw(),
                      **{k: run.setting[k] for k in ("depth", "shortcut", "preact")})
            speed = (f", {run.images_per_second:,.0f} images/s"
                     if run.images_per_second else "")
            self.status.value = f"{html.escape(run.label)}{speed}"
        except Exception as e:   # shown in the lab, not lost in a thread's traceback
            run.status = "failed"
            self.status.value = f"<b>training failed</b>: {html.escape(repr(e))}"
        finally:
            with _active_lock:
                _active_runs -= 1
            self.train_button.disabled, self.stop_button.disabled = False, True

    def stop(self) -> None:
        """Ask the running training to end after its current step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (tests, scripts); True if nothing is running."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def clear(self) -> None:
        """Forget the finished runs (a running one stays)."""
        self.runs = [r for r in self.runs if r.status == "running"]
        self.redraw()

    def redraw(self) -> None:
        with self._draw_lock:   # the training thread and the main thread may both draw
            # Copy each run's losses: the training thread appends while we draw.
            snapshot = [replace(r, step_loss=list(r.step_loss)) for r in self.runs]
            self.image.value = figure_png(plot_training_race(snapshot))


def build_model_name(depth: int, shortcut: str, preact: bool) -> str:
    """The name a setting's network has (e.g. 'plain-56', 'ResNet-20 (A)'), without building it."""
    from .models import ResNetConfig
    return ResNetConfig(depth=depth, shortcut=shortcut, preact=preact).name


class LesionLab(_Shown):
    """View 4: switch single blocks of trained networks off and see their test accuracy."""

    def __init__(self, models: dict, batches: Batches, results: dict | None = None):
        _check_lesion_models(models)
        w = _widgets()
        self.models, self.batches = models, batches
        first = next(iter(models.values()))
        n = len(first.blocks)
        if any(len(m.blocks) != n for m in models.values()):
            raise ValueError("the networks of a lesion lab must have the same number of blocks")
        self.results = results or {label: lesion_study(m, batches)
                                   for label, m in models.items()}
        self.toggles = [w.ToggleButton(value=True, description=str(i + 1),
                                       tooltip=f"block {i + 1}: on (click to switch it off)",
                                       layout=w.Layout(width="3em"))
                        for i in range(n)]
        self.summary = w.HTML()
        self.image = w.Image(format="png")
        self.widget = w.VBox([w.HTML("blocks (click to switch off):"),
                              w.HBox(self.toggles, layout=w.Layout(flex_flow="row wrap")),
                              self.summary, self.image])
        self.view: LesionView | None = None
        for t in self.toggles:
            t.observe(lambda _c: self.update(), names="value")
        self.update()

    @property
    def off(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.toggles) if not t.value)

    def update(self) -> None:
        with _fewer_threads_while_training():
            self.view = lesion_view(self.models, self.batches, self.off, self.results)
        for t in self.toggles:
            t.button_style = "" if t.value else "warning"
        self.summary.value = "<br>".join(html.escape(x) for x in self.view.text().splitlines())
        self.image.value = figure_png(self.view.figure)


# --- notebook 07: walking through the loss landscape ----------------------------------------

@dataclass(frozen=True, repr=False)
class LandscapeView:
    """The loss of each network at theta + alpha d, next to its precomputed slice and contours."""

    alpha: float
    current: dict            # {model name: (alpha, loss, accuracy)}
    seconds: float           # time to evaluate the networks at alpha (not the drawing)
    figure: object

    def text(self) -> str:
        return "\n".join(f"alpha = {self.alpha:+.2f}: {name} training loss {loss:.3g}, "
                         f"accuracy {100 * acc:.1f}%"
                         for name, (_a, loss, acc) in self.current.items())

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return _png_bundle(figure_png(self.figure), self.text())


def _known_point(slices, name: str, alpha: float):
    """(alpha, loss, accuracy) of network `name` where a precomputed slice has it, else None."""
    for s in slices:
        if s.model_name == name:
            for a, loss, acc in zip(s.alphas, s.loss, s.accuracy):
                if abs(a - alpha) < 1e-9:
                    return (a, loss, acc)
    return None


def _landscape_points(models, directions: dict, alpha: float, images, labels, slices,
                      cache: dict):
    """({model name: (alpha, loss, accuracy)}, seconds spent measuring) at theta + alpha d."""
    # Slices are searched at the exact alpha (theirs may be 1/3); the cache by 6 decimals.
    exact, alpha = float(alpha), round(float(alpha), 6)
    t0 = time.perf_counter()
    current = {}
    for model in models:
        point = _known_point(slices, model.name, exact) or cache.get((model.name, alpha))
        if point is None:
            with _fewer_threads_while_training():
                s = loss_slice(model, directions[model.name], [alpha], images, labels)
            point = cache[(model.name, alpha)] = (alpha, s.loss[0], s.accuracy[0])
        current[model.name] = point
    return current, time.perf_counter() - t0


def landscape_view(models, directions: dict, alpha: float, images: torch.Tensor,
                   labels: torch.Tensor, slices=(), surfaces=(), cache: dict | None = None
                   ) -> LandscapeView:
    """Notebook 07's widget as a plain call: every network of `models` at theta + alpha d.

    models: trained networks; directions: {model.name: its filter-normalised direction}
    (probes.filter_normalized_direction); images, labels: the fixed images the slices were
    measured on. Any alpha works: points already in `slices` (probes.LossSlice) or in
    `cache` are not measured again; new ones are measured and added to `cache`.
    """
    cache = {} if cache is None else cache
    current, seconds = _landscape_points(models, directions, alpha, images, labels, slices,
                                         cache)
    alpha = round(float(alpha), 6)
    return LandscapeView(alpha, current, seconds,
                         LandscapePosition(slices, surfaces).move(alpha, current))


class LandscapeLab(_Shown):
    """A slider along direction 1: the loss of each network there, on its slice.

    Every position of the slider is a point of the precomputed slices (`slices[0].alphas`),
    so an update looks the losses up and moves a marker on a figure drawn once
    (viz_lab.LandscapePosition): no network is evaluated, and an update costs about one PNG
    encoding. `landscape_view` measures the networks at any other alpha. The contours are
    drawn once, beside the slices, with the line the slider moves along.
    """

    def __init__(self, models, directions: dict, images: torch.Tensor, labels: torch.Tensor,
                 slices, surfaces=()):
        w = _widgets()
        self.models, self.directions = list(models), directions
        self.images, self.labels = images, labels
        self.slices, self.surfaces = tuple(slices), tuple(surfaces)
        if not self.slices:
            raise ValueError("slices must hold at least one probes.LossSlice (the slider's "
                             "positions are its alphas)")
        alphas = [float(a) for a in self.slices[0].alphas]
        start = min(alphas, key=abs)          # the trained weights (alpha = 0) where measured
        # The options are exactly the measured alphas: a position is a lookup, never a guess.
        self.alpha = w.SelectionSlider(options=[(f"{a:+.2f}", a) for a in alphas], value=start,
                                       description="alpha", continuous_update=False)
        self.summary = w.HTML()
        self.timing = w.HTML()
        self.image = w.Image(format="png")
        self.contours = w.Image(format="png")
        if self.surfaces:
            self.contours.value = figure_png(plot_landscape_contours(self.surfaces))
        self.picture = LandscapePosition(self.slices)
        self.widget = w.VBox([w.HTML("move the networks along direction 1 (alpha = 0: the "
                                     "trained weights; each position is a measured point of "
                                     "the slices):"), self.alpha, self.summary, self.timing,
                              w.HBox([self.image, self.contours])])
        self.view: LandscapeView | None = None
        self.seconds: list[float] = []       # wall time of every update, drawing included
        self._cache: dict = {}
        self.alpha.observe(lambda _change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        t0 = time.perf_counter()
        alpha = self.alpha.value
        # A point of the slices: found there, nothing is measured (the cache stays empty).
        current, seconds = _landscape_points(self.models, self.directions, alpha, self.images,
                                             self.labels, self.slices, self._cache)
        figure = self.picture.move(alpha, current)
        self.view = LandscapeView(round(float(alpha), 6), current, seconds, figure)
        self.image.value = figure_png(figure)
        self.summary.value = "<br>".join(html.escape(line)
                                         for line in self.view.text().splitlines())
        self.seconds.append(time.perf_counter() - t0)
        self.timing.value = (f"<small>this update took {self.seconds[-1]:.2f} s (looked up on "
                             "the slices and drawn)</small>")
