"""The figures the widgets draw (the lab of notebook 06, the landscape slider of notebook 07).

Built on matplotlib.figure.Figure, not pyplot: the lab redraws from a training thread, and a
Figure that pyplot does not track is safe there and is never shown twice by the inline
backend. A widget shows a figure as PNG bytes (`figure_png`) on an ipywidgets.Image. The
lab's drawing of the architecture is notebook 03's (viz.plot_architecture, pyplot=False).
"""
from __future__ import annotations

import numpy as np

from .viz import PLAIN_COLOUR, RESIDUAL_COLOUR, line_style, loss_label, smooth
from .viz_why import draw_slices, draw_surface, surface_levels


def figure_png(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (what an ipywidgets.Image shows), at a modest dpi."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def lab_figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _stage_bounds(ax, stages) -> None:
    """Dotted lines where a new stage (and a downsampling block) begins; x is the block number."""
    for i in range(1, len(stages)):
        if stages[i] != stages[i - 1]:
            ax.axvline(i + 0.5, color="0.6", lw=0.8, ls=":")


def _log_axis(ax) -> None:
    """A log y-axis labelled in plain numbers: at 1, 2, 5 x 10^k over a short range, at the
    powers of ten over more than two decades (call it after plotting)."""
    import math
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_yscale("log")
    low, high = ax.dataLim.intervaly
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


# --- view 2: signal and gradient at initialisation ----------------------------------------

def plot_signal_comparison(current, reference, current_label: str, reference_label: str):
    """Per-block activation RMS and gradient norm at initialisation, two networks on one scale.

    `current` and `reference` are probes.SignalProfile's of the same depth; the current
    setting is drawn in colour, the reference (its plain or residual twin) in grey.
    """
    fig, (a1, a2) = lab_figure(10, 3.1, ncols=2)
    colour = PLAIN_COLOUR if "plain" in current_label else RESIDUAL_COLOUR
    x = current.depth_index
    for ax, key, title in ((a1, "activation_rms", "forward signal at initialisation"),
                           (a2, "grad_norm", "gradient at initialisation")):
        ax.plot(x, getattr(reference, key), color="0.55", marker=".", ms=3, lw=1,
                label=reference_label, **line_style(reference_label))
        ax.plot(x, getattr(current, key), color=colour, marker="o", ms=3.5, lw=1.8,
                label=current_label, **line_style(current_label))
        _log_axis(ax)
        _stage_bounds(ax, current.stages)
        ax.set_xlabel("block (1 = next to the input)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    a1.set_ylabel("RMS of the block's output")
    a2.set_ylabel("||dL/dx|| per image")
    a2.legend(fontsize=8)
    return fig


# --- view 3: the training race ------------------------------------------------------------

def plot_training_race(runs):
    """Training loss against epochs for several runs (the lab's race), one line each.

    runs: objects with .label (str), .step_loss (list of floats) and .steps_per_epoch (int),
    and optionally .setting (dict) with the run's "label_smoothing", named on the loss axis.
    """
    fig, ax = lab_figure(8, 3.4)
    colours = [f"C{k % 10}" for k in range(len(runs))]
    for run, c in zip(runs, colours):
        if not run.step_loss:
            continue
        epochs = [(k + 1) / run.steps_per_epoch for k in range(len(run.step_loss))]
        window = max(1, run.steps_per_epoch // 4)   # a quarter of an epoch
        ax.plot(epochs, smooth(run.step_loss, window), color=c, lw=1.5, label=run.label,
                **line_style(run.label))
    ax.set_xlabel("epochs of the training subset")
    label = loss_label([(getattr(r, "setting", None) or {}).get("label_smoothing")
                        for r in runs if r.step_loss])
    ax.set_ylabel(label.replace(" (", "\n(", 1))      # two lines: it fits the short axis
    ax.grid(alpha=0.3)
    if any(r.step_loss for r in runs):
        ax.legend(fontsize=8, loc="upper right")
    else:
        ax.text(0.5, 0.5, "press Train to start a run", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    ax.set_title("training runs of this session (moving average over 1/4 epoch)", fontsize=10)
    return fig


# --- view 4: lesions ----------------------------------------------------------------------

#: The x-axis label of the lesion plot: what removing a block does, in both kinds of network.
LESION_XLABEL = ("block removed: its convolutions are skipped and its input is passed on, through\n"
                 "its shortcut (ResNet) or the parameter-free option-A map (plain network)")


def plot_lesions(results, off=(), current=None):
    """Test accuracy with one block removed, per block, for each network (Veit et al. 2016).

    results: {label: probes.LesionResult}; off: blocks (0-based) the reader switched off,
    shaded grey; current: {label: accuracy with all of `off` removed}, drawn as a star at
    the right. Downsampling blocks (stride 2, channels doubled) are shaded orange; chance
    level (10%) is a dotted line. Everything is named in the legend, outside the axes.
    """
    from matplotlib.patches import Patch
    fig, ax = lab_figure(10, 3.2)
    for k, (label, r) in enumerate(results.items()):
        c = PLAIN_COLOUR if "plain" in label else RESIDUAL_COLOUR
        x = list(range(1, len(r.lesioned_acc) + 1))
        ax.plot(x, [100 * a for a in r.lesioned_acc], color=c, marker="o", ms=4,
                label=f"{label}: one block removed", **line_style(label))
        ax.axhline(100 * r.baseline_acc, color=c, ls=":", lw=1.2,
                   label=f"{label}: all blocks ({100 * r.baseline_acc:.1f}%)")
        if current is not None and label in current:
            ax.plot([len(x) + 1], [100 * current[label]], marker="*", ms=12, color=c, ls="",
                    label=f"{label}: your blocks removed")
    first = next(iter(results.values()))
    down = [i for i, d in enumerate(first.downsampling) if d]
    for i in down:
        ax.axvspan(i + 0.6, i + 1.4, color="tab:orange", alpha=0.15, lw=0, zorder=0)
    for i in off:
        ax.axvspan(i + 0.6, i + 1.4, color="0.8", zorder=0)
    ax.axhline(10, color="0.5", lw=0.8, ls=(0, (1, 3)), label="chance (10%)")
    handles, labels = ax.get_legend_handles_labels()
    if down:
        handles.append(Patch(color="tab:orange", alpha=0.15))
        labels.append("downsampling block (stride 2, channels x2): "
                      + ", ".join(str(i + 1) for i in down))
    if off:
        handles.append(Patch(color="0.8"))
        labels.append("switched off by you: " + ", ".join(str(i + 1) for i in off))
    n = len(first.lesioned_acc)
    ticks = list(range(1, n + 1)) + ([n + 1] if current else [])
    ax.set_xticks(ticks, [str(t) for t in range(1, n + 1)] + (["yours"] if current else []),
                  fontsize=7 if n > 20 else 8)
    ax.set_ylim(0, 100)
    ax.set_xlabel(LESION_XLABEL, fontsize=9)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


# --- notebook 07: walking through the loss landscape --------------------------------------

class LandscapePosition:
    """The landscape at a position alpha along direction 1: each network's 1-D slice with its
    point marked, and, given `surfaces`, each one's contours with the point (alpha, 0).

    Drawn once: `move(alpha, current)` only moves the circles and the dotted line at alpha
    and retitles the slices, so an update costs one PNG encoding (`figure_png`), not a new
    figure. The layout is fixed after the first drawing: a title that changes length does
    not shift the axes. current: {model_name: (alpha, loss, accuracy)}. `figure` is a
    Figure not tracked by pyplot.
    """

    def __init__(self, slices, surfaces=()):
        fig, axes = lab_figure(4.2 * (1 + len(surfaces)), 3.6, ncols=1 + len(surfaces))
        axes = list(np.atleast_1d(axes))
        self.figure, self.ax = fig, axes[0]
        draw_slices(self.ax, None, slices)
        self.ax.set_xlabel("alpha (1 = one filter norm)")     # the long label is cut at this width
        self.markers = {}
        for s, line in zip(slices, self.ax.get_lines()):
            marker, = self.ax.plot([], [], "o", ms=9, mfc="none", mew=2, color=line.get_color())
            self.markers[s.model_name] = marker
        self.line = self.ax.axvline(0.0, color="tab:red", lw=0.8, ls=":")
        self.points = []            # the point (alpha, 0) on each surface's contours
        levels = surface_levels(surfaces) if surfaces else None
        for ax, s in zip(axes[1:], surfaces):
            draw_surface(ax, s, levels)
            ax.set_title(f"{s.model_name}: loss contours", fontsize=10)
            point, = ax.plot([], [], "o", ms=9, mfc="none", mew=2, color="tab:red")
            self.points.append(point)
        self._fixed = False

    def move(self, alpha: float, current: dict):
        """Mark `current` at `alpha`; returns the figure."""
        for name, marker in self.markers.items():
            if name in current:
                a, loss, _acc = current[name]
                marker.set_data([a], [loss])
            else:
                marker.set_data([], [])
        self.line.set_xdata([alpha, alpha])
        for point in self.points:
            point.set_data([alpha], [0.0])
        self.ax.set_title(f"loss along direction 1, alpha = {alpha:+.2f}", fontsize=10)
        if not self._fixed:      # lay out once, then keep the positions (and skip the solver)
            self.figure.draw_without_rendering()
            self.figure.set_layout_engine("none")
            self._fixed = True
        return self.figure


def plot_landscape_contours(surfaces):
    """The landscape widget's fixed picture: the contours, with the line the slider moves along.

    Drawn once when the widget is built (contours take longest to draw), so that an update
    only redraws the slices. A Figure not tracked by pyplot.
    """
    fig, axes = lab_figure(3.6 * len(surfaces), 3.4, ncols=len(surfaces))
    axes = list(np.atleast_1d(axes))
    levels = surface_levels(surfaces)
    for ax, s in zip(axes, surfaces):
        draw_surface(ax, s, levels)
        ax.axhline(0, color="tab:red", lw=1.2, ls="--", label="the slider's line (beta = 0)")
        ax.set_title(f"{s.model_name}: loss contours", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper left")
    return fig
