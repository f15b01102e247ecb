"""Matplotlib figures of notebook 07, why residual networks train: layer responses (He et
al. 2015, Fig. 7), loss landscapes (Li et al. 2018), shattered gradients (Balduzzi et al.
2017) and the paths that carry the gradient (Veit et al. 2016).

As in viz.py, plain networks are dashed and residual ones solid, and one colour stands for
one depth, so that a network and its twin share it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .viz import (PLAIN_COLOUR, PLAIN_STYLE, RESIDUAL_COLOUR, RESIDUAL_STYLE, depth_of,
                  line_style, new_axes)


def _depth_colour(name: str, depths: Sequence[int]) -> str:
    """One colour per depth, so that a network and its twin share it (plain dashed, as always)."""
    import re
    m = re.search(r"-(\d+)", name)
    depth = int(m.group(1)) if m else 0
    order = sorted(set(depths))
    return f"C{order.index(depth) % 10}" if depth in order else "C7"


def _depth_in_name(name: str) -> int:
    """The depth in a network's name ("ResNet-56 (A)" -> 56), 0 if it names none."""
    return depth_of(name, None) or 0


def plot_layer_responses(responses: Sequence["LayerResponses"]):
    """He et al. (2015), Fig. 7: the std of each 3x3 layer's response, in order and sorted.

    responses: from probes.layer_responses, e.g. plain-20/56 and ResNet-20/56. Left: the layers
    in the order the signal passes them; right: each network's values sorted from the largest.
    Plain networks dashed, residual solid; one colour per depth.
    """
    fig, (left, right) = new_axes(2, width=5.4, height=3.6)
    depths = [_depth_in_name(r.model_name) for r in responses]
    for r in responses:
        style = {"color": _depth_colour(r.model_name, depths), **line_style(r.model_name)}
        x = np.arange(1, len(r.std) + 1)
        left.plot(x, r.std, marker=".", ms=3, lw=1.2, label=r.model_name, **style)
        right.plot(x, r.sorted_std, lw=1.5, label=r.model_name, **style)
    left.set(xlabel="layer index (1 = the first 3x3 layer, original order)",
             ylabel="std of the layer's response",
             title="responses in the original order")
    right.set(xlabel="layer index, sorted by std (largest first)",
              ylabel="std of the layer's response", title="responses sorted by magnitude")
    images = responses[0].images if responses else 0
    fig.suptitle(f"std of each 3x3 layer's output after BN, before ReLU and addition "
                 f"({images:,} test images)", fontsize=10)
    for ax in (left, right):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


# --- loss landscapes ----------------------------------------------------------------------

def draw_slices(loss_ax, acc_ax, slices, marker=None) -> None:
    """Loss (log scale) and accuracy along each slice; marker: {name: (alpha, loss, acc)}."""
    depths = [_depth_in_name(s.model_name) for s in slices]
    for s in slices:
        colour = PLAIN_COLOUR if "plain" in s.model_name.lower() else RESIDUAL_COLOUR
        if len(set(depths)) > 1:
            colour = _depth_colour(s.model_name, depths)
        style = {"color": colour, **line_style(s.model_name)}
        loss_ax.plot(s.alphas, s.loss, marker=".", ms=4, lw=1.5, label=s.model_name, **style)
        if acc_ax is not None:
            acc_ax.plot(s.alphas, 100 * np.asarray(s.accuracy), marker=".", ms=4, lw=1.5,
                        label=s.model_name, **style)
        if marker and s.model_name in marker:
            a, loss, acc = marker[s.model_name]
            loss_ax.plot([a], [loss], "o", ms=9, mfc="none", mew=2, color=colour)
            if acc_ax is not None:
                acc_ax.plot([a], [100 * acc], "o", ms=9, mfc="none", mew=2, color=colour)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="step along the direction, alpha (1 = one filter norm)",
                ylabel="training loss (cross-entropy, log scale)")
    loss_ax.grid(alpha=0.3, which="both")
    loss_ax.legend(fontsize="small")
    if acc_ax is not None:
        acc_ax.set(xlabel="step along the direction, alpha (1 = one filter norm)",
                   ylabel="training accuracy (%)")
        acc_ax.set_ylim(0, 100)
        acc_ax.axhline(10, color="0.5", lw=0.8, ls=":")
        acc_ax.grid(alpha=0.3)


def plot_loss_slices(slices: Sequence["LossSlice"], marker=None):
    """Li et al. (2018), 1-D plots: loss and accuracy along a filter-normalised direction.

    slices: probes.LossSlice's (e.g. plain-56 and ResNet-56, each along the same random draw
    scaled to its own filters). marker: {model_name: (alpha, loss, accuracy)}, drawn as circles.
    """
    fig, (loss_ax, acc_ax) = new_axes(2, width=5.2, height=3.5)
    draw_slices(loss_ax, acc_ax, slices, marker)
    n = slices[0].images if slices else 0
    loss_ax.set_title("loss along one random direction")
    acc_ax.set_title("accuracy along the same direction")
    fig.suptitle(f"theta + alpha d, d filter-normalised; {n:,} fixed training images, "
                 "BN in eval mode", fontsize=10)
    return fig


def surface_levels(surfaces, count: int = 16) -> np.ndarray:
    """Contour levels shared by every surface: log-spaced from the lowest loss of any of them to
    the highest (at most 1000 times the lowest; higher losses get the top colour)."""
    low = max(min(min(min(row) for row in s.loss) for s in surfaces), 1e-4)
    high = max(max(max(row) for row in s.loss) for s in surfaces)
    top = min(high, 1000 * low)
    return np.geomspace(low, max(top, low * 1.01), count)


def draw_surface(ax, surface, levels, marker=None):
    from matplotlib.colors import LogNorm
    a, b = np.asarray(surface.alphas), np.asarray(surface.betas)
    z = np.asarray(surface.loss, dtype=float).T          # rows: beta, columns: alpha
    z = np.clip(z, levels[0], levels[-1])                 # above the top level: the top colour
    filled = ax.contourf(a, b, z, levels=levels, norm=LogNorm(levels[0], levels[-1]),
                         cmap="viridis", extend="neither")
    ax.contour(a, b, z, levels=levels, colors="k", linewidths=0.4)
    ax.plot([0], [0], "+", color="w", ms=9, mew=1.5)
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], "o", ms=9, mfc="none", mew=2, color="tab:red")
    ax.set(xlabel="alpha (direction 1)", ylabel="beta (direction 2)", title=surface.model_name)
    ax.set_aspect("equal")
    return filled


def plot_loss_surfaces(surfaces: Sequence["LossSurface"], marker=None):
    """Li et al. (2018), 2-D contours: the loss on the plane of two filter-normalised directions.

    Every panel uses the same log-spaced levels (from the lowest loss of any panel to the
    highest, at most 1000 times the lowest), so the panels compare directly. The trained
    weights are the white cross at (0, 0); marker: (alpha, beta) drawn as a red circle.
    """
    fig, axes = new_axes(len(surfaces), width=4.0, height=3.7)
    levels = surface_levels(surfaces)
    filled = None
    for ax, s in zip(axes, surfaces):
        filled = draw_surface(ax, s, levels, marker)
    if filled is not None:
        bar = fig.colorbar(filled, ax=axes, shrink=0.9)
        bar.set_label("training loss (cross-entropy)")
        bar.set_ticks(levels[::3])
        bar.set_ticklabels([f"{v:.2g}" for v in levels[::3]])
    n = surfaces[0].images if surfaces else 0
    grid = f"{len(surfaces[0].alphas)}x{len(surfaces[0].betas)}" if surfaces else ""
    fig.suptitle(f"loss around the trained weights (+), {grid} points, {n:,} training images",
                 fontsize=10)
    return fig


# --- shattered gradients ------------------------------------------------------------------

def plot_gradient_lines(results: Sequence["GradientCorrelation"], ncols: int | None = None):
    """Balduzzi et al. (2017), Fig. 1 on images: df/dt along a line of inputs, one panel each.

    results: probes.GradientCorrelation's, e.g. plain and residual networks of several depths
    (plain ones in the top row). Each curve is scaled to unit RMS, so shapes compare: a smooth
    curve is a gradient that changes little between nearby inputs, a ragged one is "shattered".
    """
    import matplotlib.pyplot as plt
    plain = [r for r in results if "plain" in r.model_name.lower()]
    residual = [r for r in results if "plain" not in r.model_name.lower()]
    rows = [row for row in (plain, residual) if row]
    ncols = ncols or max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 1.9 * len(rows) + 0.5),
                             dpi=90, layout="constrained", squeeze=False, sharex=True)
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(row):
                ax.axis("off")
                continue
            r = row[j]
            d = np.asarray(r.derivative)
            d = d / (np.sqrt(np.mean(d ** 2)) or 1.0)
            colour = PLAIN_COLOUR if "plain" in r.model_name.lower() else RESIDUAL_COLOUR
            ax.plot(r.t, d, lw=0.9, color=colour)
            ax.axhline(0, color="0.6", lw=0.6)
            ax.set_title(f"{r.model_name}: corr. {r.neighbour_correlation:.2f}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("t (image 1 -> image 2)", fontsize=8)
            if j == 0:
                ax.set_ylabel("df/dt (RMS 1)", fontsize=8)
    fig.suptitle("the gradient along a line of inputs at initialisation "
                 "(corr.: correlation of neighbouring gradients)", fontsize=10)
    return fig


def plot_gradient_correlation(results: Sequence["GradientCorrelation"]):
    """How fast gradients decorrelate: against the distance of two inputs, and against depth.

    Left: mean correlation of the gradients df/dx at two inputs against their distance along
    the line (a fraction of the distance between the two images), one curve per network.
    Right: the correlation of neighbouring inputs' gradients against depth, plain vs residual.
    """
    fig, (left, right) = new_axes(2, width=5.2, height=3.5)
    depths = [_depth_in_name(r.model_name) for r in results]
    for r in results:
        style = {"color": _depth_colour(r.model_name, depths), **line_style(r.model_name)}
        steps = len(r.t) - 1
        left.plot(np.asarray(r.lags) / steps, r.correlation, marker=".", label=r.model_name,
                  **style)
    left.set_xscale("log")
    left.set(xlabel="distance between the two inputs (fraction of the line)",
             ylabel="correlation of their gradients", title="gradient correlation vs distance")
    for kind, style in (("plain", PLAIN_STYLE), ("residual", RESIDUAL_STYLE)):
        rs = sorted((r for r in results if ("plain" in r.model_name.lower()) == (kind == "plain")),
                    key=lambda r: _depth_in_name(r.model_name))
        if rs:
            colour = PLAIN_COLOUR if kind == "plain" else RESIDUAL_COLOUR
            right.plot([_depth_in_name(r.model_name) for r in rs],
                       [r.neighbour_correlation for r in rs], marker="o", color=colour,
                       label=f"{kind} networks", **style)
    right.set(xlabel="depth (weighted layers)", ylabel="correlation of neighbouring gradients",
              title="neighbouring inputs, by depth")
    for ax in (left, right):
        ax.set_ylim(-0.1, 1.05)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("shattered gradients at initialisation: 1 = the same gradient, "
                 "0 = unrelated (white noise)", fontsize=10)
    return fig


# --- paths --------------------------------------------------------------------------------

def plot_path_gradients(sampled: Sequence["SampledPaths"], exact: Sequence["PathGradients"] = (),
                        labels: Sequence[str] | None = None):
    """Veit et al. (2016), Fig. 6: path lengths, gradient per path, and total per length.

    sampled: probes.SampledPaths (e.g. a trained ResNet-56 and the same network at
    initialisation); labels name them (one colour each). Left: how many paths there are of
    each length (a binomial distribution); middle: the gradient one path of that length
    carries (sampled, log scale); right: each length's share of the total gradient magnitude,
    C(n, k) times the middle panel, normalised to sum 1. exact: probes.PathGradients of the
    same networks, in the same order, drawn on the right as open circles: each length's share
    of the norms of the exactly summed paths.
    """
    import math
    fig, (count_ax, per_ax, total_ax) = new_axes(3, width=4.1, height=3.4)
    labels = list(labels or [s.model_name for s in sampled])
    if sampled:
        n = sampled[0].blocks
        k = np.arange(n + 1)
        count_ax.bar(k, [math.comb(n, int(i)) / 2 ** n for i in k], color="lightgrey",
                     edgecolor="0.5")
        count_ax.set(xlabel="path length k (residual branches passed)",
                     ylabel="share of all 2^n paths",
                     title=f"path lengths ({n} blocks, 2^{n} paths)")
    for i, (s, label) in enumerate(zip(sampled, labels)):
        colour = f"C{i}"
        per_ax.plot(s.lengths, s.per_path, marker=".", color=colour, label=label)
        total = np.asarray(s.total)
        total_ax.plot(s.lengths, total / total.sum(), marker=".", color=colour, label=label)
    per_ax.set_yscale("log")
    per_ax.set(xlabel="path length k", ylabel="||gradient|| of one path, per image (log)",
               title="gradient carried by one path")
    for i, e in enumerate(exact):
        norm = np.asarray(e.norm)
        total_ax.plot(e.lengths, norm / norm.sum(), "o", mfc="none", ms=4, color=f"C{i}")
    total_ax.set(xlabel="path length k", ylabel="share of the gradient magnitude",
                 title="total gradient per length")
    for ax in (count_ax, per_ax, total_ax):
        ax.grid(alpha=0.3)
    if sampled:
        per_ax.legend(fontsize="x-small")
    from matplotlib.lines import Line2D
    kinds = [Line2D([], [], color="0.3", marker=".", label="single paths x C(n, k) (sampled)")]
    if exact:
        kinds.append(Line2D([], [], color="0.3", marker="o", mfc="none", ls="",
                            label="summed paths (exact)"))
    total_ax.legend(handles=kinds, fontsize="x-small", loc="upper right")
    fig.suptitle("which paths carry the gradient to the first block? (gradient of the loss, "
                 "per image)", fontsize=10)
    return fig
