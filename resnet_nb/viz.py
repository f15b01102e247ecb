"""Matplotlib figures built from histories, probes and measurements.

Every function draws into the axes it is given (or a new figure), labels its axes
with units, and returns the figure, so a notebook cell is one call. Plain
networks are drawn dashed and residual networks solid, as in He et al. (2015),
Figs. 1 and 6 (thin/bold there). Figures are small (inline, ~100 dpi) so that
committed notebooks stay small.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

PLAIN_STYLE = {"linestyle": "--"}
RESIDUAL_STYLE = {"linestyle": "-"}


def _new_axes(ncols: int = 1, width: float = 5.0, height: float = 3.4):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), dpi=90,
                             layout="constrained", squeeze=False)
    return fig, list(axes[0])


def _style(label: str) -> dict:
    """Dashed for plain networks (a label containing 'plain'), solid otherwise."""
    return PLAIN_STYLE if "plain" in label.lower() else RESIDUAL_STYLE


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average: out[i] = mean(values[max(0, i-window+1) : i+1]).

    Same length as `values`; the first points average over what exists so far,
    so the curve starts at the first value instead of lagging behind.
    """
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(0, i - window)
    return (c[i] - c[lo]) / (i - lo)


def plot_training_curves(histories: Mapping[str, "History"], error_curves: Mapping[str, tuple]
                         | None = None, window: int | None = None):
    """Training loss per iteration (smoothed) and, given `error_curves`, training error.

    histories: label -> History (from `fit`); its `step_loss` has one value per step.
    error_curves: label -> (steps, errors), e.g. from probes.TrainingErrorProbe, errors
    as fractions (plotted in %). window: the smoothing window in steps (default: about
    a twentieth of the run).
    """
    panels = 2 if error_curves else 1
    fig, axes = _new_axes(panels)
    for label, h in histories.items():
        steps = np.arange(1, len(h.step_loss) + 1)
        w = window or max(1, len(steps) // 20)
        axes[0].plot(steps, smooth(h.step_loss, w), label=label, **_style(label))
    axes[0].set(xlabel="iteration (mini-batch step)", ylabel="training loss (cross-entropy)",
                title=f"training loss, moving average over {window or 'about 1/20 of the run'}"
                      f"{' steps' if window else ''}")
    if error_curves:
        for label, (steps, errors) in error_curves.items():
            axes[1].plot(steps, 100 * np.asarray(errors), marker=".", label=label,
                         **_style(label))
        axes[1].set(xlabel="iteration (mini-batch step)", ylabel="training error (%)",
                    title="error on fixed training images")
        axes[1].set_ylim(0, 100)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def plot_signal_profiles(profiles: Sequence["SignalProfile"]):
    """Two panels per block index: forward activation RMS, and ||dL/dx|| (log scale).

    profiles: from probes.signal_profile, e.g. plain networks of growing depth.
    Block 1 is next to the input; the last block is next to the classifier.
    """
    fig, (a, g) = _new_axes(2)
    for p in profiles:
        style = _style(p.model_name)
        a.plot(p.depth_index, p.activation_rms, marker=".", label=p.model_name, **style)
        g.plot(p.depth_index, p.grad_norm, marker=".", label=p.model_name, **style)
    a.set(xlabel="block (1 = next to the input)", ylabel="RMS of the block's output",
          title="forward signal at initialisation")
    a.set_ylim(bottom=0)
    g.set(xlabel="block (1 = next to the input)", ylabel="||dL/dx|| per image (log scale)",
          title="gradient at initialisation", yscale="log")
    for ax in (a, g):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def plot_curves(curves: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, *,
                logy: bool = False, title: str | None = None, x: Sequence[float] | None = None,
                ax=None):
    """Several curves against a shared x (default 1, 2, 3, ...). Returns the figure."""
    if ax is None:
        fig, (ax,) = _new_axes(1)
    else:
        fig = ax.figure
    for label, ys in curves.items():
        xs = np.arange(1, len(ys) + 1) if x is None else x
        ax.plot(xs, ys, label=label, **_style(label))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
