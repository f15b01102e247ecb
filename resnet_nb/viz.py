"""Matplotlib figures of notebooks 01-05, built from histories, probes and measurements.

Every function draws into the axes it is given (or a new figure), labels its axes
with units, and returns the figure, so a notebook cell is one call. This course
draws plain networks dashed and residual networks solid (its own convention, so
that twins can share a colour); `plot_fig6` instead follows He et al. (2015),
Fig. 6: plain networks and ResNets in separate panels, dashed training error and
bold test error. Figures are small (inline, ~100 dpi) so that committed
notebooks stay small. Notebook 07's figures are in viz_why.py; the lab's widgets draw
theirs with viz_lab.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

PLAIN_STYLE = {"linestyle": "--"}
RESIDUAL_STYLE = {"linestyle": "-"}
#: One colour for plain networks and one for residual ones, where depth does not decide it.
RESIDUAL_COLOUR, PLAIN_COLOUR = "#1f77b4", "#d62728"


def new_axes(ncols: int = 1, width: float = 5.0, height: float = 3.4):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), dpi=90,
                             layout="constrained", squeeze=False)
    return fig, list(axes[0])


def line_style(label: str) -> dict:
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


def loss_label(label_smoothing) -> str:
    """The y-axis label of a training-loss plot, naming the label smoothing the loss includes.

    label_smoothing: the smoothing of each run plotted (None where a run does not record it).
    Label smoothing keeps the loss above 0 even for perfect predictions, so a reader comparing
    levels must know it is there.
    """
    values = sorted({float(v) for v in label_smoothing if v is not None})
    if not any(values):
        return "training loss (cross-entropy)"
    if len(values) == 1:
        return f"training loss (cross-entropy, label smoothing {values[0]:g})"
    return ("training loss (cross-entropy, label smoothing "
            + " or ".join(f"{v:g}" for v in values) + " by run)")


def plot_training_curves(histories: Mapping[str, "History"], error_curves: Mapping[str, tuple]
                         | None = None, window: int | None = None):
    """Training loss per iteration (smoothed) and, given `error_curves`, training error.

    histories: label -> History (from `fit`); its `step_loss` has one value per step.
    error_curves: label -> (steps, errors), e.g. from probes.TrainingErrorProbe, errors
    as fractions (plotted in %). window: the smoothing window in steps (default: about
    a twentieth of the run).
    """
    panels = 2 if error_curves else 1
    fig, axes = new_axes(panels)
    for label, h in histories.items():
        steps = np.arange(1, len(h.step_loss) + 1)
        w = window or max(1, len(steps) // 20)
        axes[0].plot(steps, smooth(h.step_loss, w), label=label, **line_style(label))
    smoothing = [(h.config or {}).get("label_smoothing") for h in histories.values()]
    axes[0].set(xlabel="iteration (mini-batch step)",
                title=f"training loss, moving average over {window or 'about 1/20 of the run'}"
                      f"{' steps' if window else ''}")
    axes[0].set_ylabel(loss_label(smoothing), wrap=True)    # a long label, kept on the figure
    if error_curves:
        for label, (steps, errors) in error_curves.items():
            axes[1].plot(steps, 100 * np.asarray(errors), marker=".", label=label,
                         **line_style(label))
        axes[1].set(xlabel="iteration (mini-batch step)", ylabel="training error (%)",
                    title="error on fixed training images")
        axes[1].set_ylim(0, 100)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def _network_name(label, history) -> str:
    """The label given, else the network's name from the history's model configuration."""
    if isinstance(label, str):
        return label
    from .models import ResNetConfig
    return ResNetConfig(**history.model).name


def depth_of(name: str, history=None) -> int | None:
    """The depth a History records, else the one in its name ("plain-56" -> 56), else None."""
    depth = (history.model or {}).get("depth") if history is not None else None
    if depth is None:
        import re
        found = re.search(r"-(\d+)", name)
        depth = int(found.group(1)) if found else None
    return depth


def _as_named(histories) -> list[tuple[str, "History"]]:
    """{label: History} or a sequence of History objects -> [(label, History), ...]."""
    if isinstance(histories, Mapping):
        return [(_network_name(k, h), h) for k, h in histories.items()]
    return [(_network_name(None, h), h) for h in histories]


def fig6_points(history, key: str = "test_acc") -> tuple[np.ndarray, np.ndarray]:
    """(iterations, error in %) of one run, one point per finished epoch.

    The point of epoch e (1-based, as in `History.epochs`) lies at
    e * steps_per_epoch iterations; its error is 100 * (1 - history's `key`).
    Epochs without `key` (e.g. no test set evaluated) are left out.
    """
    rows = [e for e in history.epochs if e.get(key) is not None]
    its = np.array([e["epoch"] * history.steps_per_epoch for e in rows], dtype=float)
    err = np.array([100.0 * (1.0 - e[key]) for e in rows], dtype=float)
    return its, err


def plot_fig6(histories_plain, histories_resnet, *, title: str | None = None,
              ylim: tuple[float, float] | None = None, axes=None):
    """Training curves drawn as He et al. (2015), Fig. 6 draws them.

    Left panel: the plain networks; right panel: the ResNets. For each network,
    a thin dashed line is its training error and a bold line its test error, in
    % against iterations (mini-batch steps); colours stand for depths, the same
    in both panels. histories_plain, histories_resnet: {label: History} or a
    sequence of `History` objects (from `fit`, or loaded from JSON); each
    finished epoch gives one point (`fig6_points`). The training error is
    1 - `train_acc`, the accuracy on the augmented mini-batches of that epoch
    while they were trained on; the test error is 1 - `test_acc`.
    axes: two matplotlib axes to draw into (default: a new figure).
    """
    plain, resnet = _as_named(histories_plain), _as_named(histories_resnet)
    depths = sorted({d for name, h in plain + resnet
                     if (d := depth_of(name, h)) is not None})
    colour = {d: f"C{i % 10}" for i, d in enumerate(depths)}
    if axes is None:
        fig, axes = new_axes(2, width=4.8, height=3.6)
    else:
        fig = axes[0].figure
    from matplotlib.lines import Line2D
    for ax, runs, panel in ((axes[0], plain, "plain networks"), (axes[1], resnet, "ResNets")):
        handles = []
        for name, h in runs:
            c = colour.get(depth_of(name, h), "0.3")
            its, train_err = fig6_points(h, "train_acc")
            ax.plot(its, train_err, color=c, linestyle="--", linewidth=1.0, marker=".",
                    markersize=3, label=f"{name}: training error")
            its, test_err = fig6_points(h, "test_acc")
            if len(its):
                ax.plot(its, test_err, color=c, linestyle="-", linewidth=2.4, marker=".",
                        markersize=6, label=f"{name}: test error")
            handles.append(Line2D([], [], color=c, linewidth=2.4, label=name))
        handles += [Line2D([], [], color="0.3", linestyle="--", linewidth=1.0,
                           label="dashed: training error"),
                    Line2D([], [], color="0.3", linestyle="-", linewidth=2.4,
                           label="bold: test error")]
        ax.legend(handles=handles, fontsize="small")
        ax.set(xlabel="iterations (mini-batch steps)", ylabel="error (%)", title=panel)
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        if ylim is not None:
            ax.set_ylim(*ylim)
        else:
            ax.set_ylim(bottom=0)
    if ylim is None:   # one error scale for both panels, so that they compare at a glance
        top = max(ax.get_ylim()[1] for ax in axes[:2])
        for ax in axes[:2]:
            ax.set_ylim(0, top)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_signal_profiles(profiles: Sequence["SignalProfile"]):
    """Two panels per block index: forward activation RMS, and ||dL/dx|| (log scale).

    profiles: from probes.signal_profile, e.g. plain networks of growing depth.
    Block 1 is next to the input; the last block is next to the classifier.
    """
    fig, (a, g) = new_axes(2)
    for p in profiles:
        style = line_style(p.model_name)
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
        fig, (ax,) = new_axes(1)
    else:
        fig = ax.figure
    for label, ys in curves.items():
        xs = np.arange(1, len(ys) + 1) if x is None else x
        ax.plot(xs, ys, label=label, **line_style(label))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# --- 02: the unrolled view ----------------------------------------------------------------

def plot_path_lengths(norms: Sequence[float], title: str = ""):
    """Paths of each length through n blocks: how many there are, and what they carry.

    norms[k]: the norm of the summed Jacobian-vector products of all paths of length k
    (formulation.path_length_terms), k = 0..n. Bars: the number of paths, C(n, k).
    """
    import math
    n = len(norms) - 1
    lengths = np.arange(n + 1)
    fig, (ax,) = new_axes(1, width=6.0)
    ax.bar(lengths, [math.comb(n, int(k)) for k in lengths], color="lightgrey",
           label=f"number of paths, C({n}, k)")
    ax.set(xlabel="path length k (residual branches passed)", ylabel="number of paths",
           title=title)
    twin = ax.twinx()
    twin.plot(lengths, norms, "o-", color="C0", label="norm of their summed JVP")
    twin.set_ylabel("norm of the summed JVP")
    twin.set_ylim(bottom=0, top=1.3 * max(norms))
    ax.set_ylim(top=1.3 * math.comb(n, n // 2))        # room for the legend above the peak
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


# --- 03: the architecture, drawn from the model itself ------------------------------------

@dataclass(frozen=True)
class BlockInfo:
    """One residual block as the architecture figure draws it."""

    stage: int                      # 1, 2 or 3
    index: int                      # 1-based within its stage
    in_shape: tuple[int, int, int]  # C x H x W entering the block
    out_shape: tuple[int, int, int]
    shortcut: str                   # "identity", "zero-pad", "projection", "none" or "off"
    parameters: int


def _shortcut_kind(block) -> str:
    from .blocks import IdentityShortcut, NoShortcut, ProjectionShortcut, ZeroPadShortcut
    if not block.use_shortcut:
        return "off"
    kinds = {IdentityShortcut: "identity", ZeroPadShortcut: "zero-pad",
             ProjectionShortcut: "projection", NoShortcut: "none"}
    return kinds.get(type(block.shortcut), type(block.shortcut).__name__)


def architecture_blocks(model, summary=None) -> list[BlockInfo]:
    """Every block of a CifarResNet with its input/output shape and its kind of shortcut.

    Shapes come from `models.summarize` (one image run through the model), so the
    list is right for any depth, width and shortcut option, and it reflects the
    shortcut switches (`set_shortcuts(False)` turns every shortcut into "off").
    summary: the model's `summarize(model)`, if already computed.
    """
    from .models import count_parameters, summarize
    rows = {r.name: r.output_shape for r in (summary or summarize(model)).rows}
    stages = (model.stage1, model.stage2, model.stage3)
    before = ("stem", "stage1", "stage2")
    out = []
    for s, (stage, prev) in enumerate(zip(stages, before), 1):
        c_in, h_in, w_in = rows[prev]
        c_out, h_out, w_out = rows[f"stage{s}"]
        for i, block in enumerate(stage, 1):
            shape_in = (c_in, h_in, w_in) if i == 1 else (c_out, h_out, w_out)
            out.append(BlockInfo(s, i, shape_in, (c_out, h_out, w_out), _shortcut_kind(block),
                                 count_parameters(block)))
    return out


_SHORTCUT_STYLE = {   # colour, line style, label drawn over the arc
    "identity": ("0.35", "-", "x"),
    "zero-pad": ("tab:orange", "--", "A: subsample,\npad zeros"),
    "projection": ("tab:red", "-", "1x1 conv, BN"),
}


def plot_architecture(model, blocks_shown: int = 3, *, summary=None, pyplot: bool = True):
    """The network as a left-to-right diagram: stem, three stages of blocks, pooling and fc.

    Each block is a box; its shortcut is the arc above it (grey: identity,
    orange dashed: option A's zero padding, red: a 1x1 projection; no arc: no
    shortcut). Stages with more than `blocks_shown` blocks show the first
    blocks, the last one, and how many are left out. Shapes are C x H x W.
    summary: the model's `summarize(model)`, if already computed. pyplot=False draws on a
    Figure that pyplot does not track, as the lab's widgets need (see viz_lab.figure_png).
    """
    from .models import summarize
    summary = summary or summarize(model)   # one forward pass, used twice
    rows = {r.name: r for r in summary.rows}
    infos = architecture_blocks(model, summary)
    columns = _architecture_columns(infos, blocks_shown)
    fig, ax = _architecture_canvas((0.95 * len(columns) + 1, 3.6), pyplot)
    x_of = {}
    x = 0.0
    for kind, info in columns:
        x_of[id(info) if info is not None else kind] = x
        x += _draw_column(ax, x, kind, info, model, rows) + 0.25
    _draw_stage_brackets(ax, infos, x_of, rows)
    _finish_architecture(ax, model, infos, x)
    return fig


def _architecture_columns(infos: list[BlockInfo], blocks_shown: int) -> list[tuple]:
    """(kind, what) per column: input, stem, each stage's shown blocks (and a gap), head."""
    columns = [("input", None), ("stem", None)]
    for s in (1, 2, 3):
        stage = [b for b in infos if b.stage == s]
        if len(stage) > blocks_shown:
            keep = stage[:blocks_shown - 1]
            columns += [("block", b) for b in keep]
            columns.append(("gap", len(stage) - len(keep) - 1))
            columns.append(("block", stage[-1]))
        else:
            columns += [("block", b) for b in stage]
    return columns + [("pool", None), ("fc", None)]


def _architecture_canvas(size: tuple[float, float], pyplot: bool):
    """(figure, axes) of `size` inches: pyplot's, or a Figure that pyplot does not track."""
    if pyplot:
        import matplotlib.pyplot as plt
        return plt.subplots(figsize=size, dpi=90, layout="constrained")
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=90, layout="constrained")
    return fig, fig.subplots()


def _draw_column(ax, x: float, kind: str, info, model, rows: dict) -> float:
    """One column of the diagram at `x`: its box, its text and shape, and for a block its
    shortcut. Returns the column's width."""
    from matplotlib.patches import Arc, FancyBboxPatch
    w = 0.55 if kind == "gap" else 0.95
    shape = lambda s: "x".join(map(str, s))
    face = {"input": "white", "stem": "0.92", "pool": "0.92", "fc": "0.92",
            "block": "#dbe9f6", "gap": "white"}[kind]
    if kind != "gap":
        ax.add_patch(FancyBboxPatch((x, -0.45), w, 0.9, boxstyle="round,pad=0.03",
                                    facecolor=face, edgecolor="0.2", linewidth=1))
    text = {"input": f"image\n{model.stem[0].in_channels}x32x32",
            "stem": f"conv 3x3\n{rows['stem'].output_shape[0]} filters",
            "pool": "global\navg pool",
            "fc": f"fc\n{model.fc.out_features} classes"}.get(kind)
    if kind == "block":
        text = (f"block {info.stage}.{info.index}\n"
                + ("BN-ReLU-conv\nx2" if model.config.preact else "conv-BN-ReLU\nconv-BN"))
    elif kind == "gap":
        text = f"...\n{info} more\n..."
    ax.text(x + w / 2, 0, text, ha="center", va="center", fontsize=7)
    if kind == "block":
        ax.text(x + w / 2, -0.62, shape(info.out_shape), ha="center", va="top", fontsize=7)
        style = _SHORTCUT_STYLE.get(info.shortcut)
        if style is not None:
            color, ls, label = style
            ax.add_patch(Arc((x + w / 2, 0.45), w * 1.1, 0.9, theta1=0, theta2=180,
                             color=color, linestyle=ls, linewidth=1.6))
            if info.shortcut != "identity":
                ax.text(x + w / 2, 0.95, label, ha="center", va="bottom", fontsize=6.5,
                        color=color)
        else:
            ax.text(x + w / 2, 0.55, "no shortcut" if info.shortcut == "none" else
                    "shortcut off", ha="center", va="bottom", fontsize=6.5, color="0.4")
    elif kind == "stem":
        ax.text(x + w / 2, -0.62, shape(rows["stem"].output_shape), ha="center",
                va="top", fontsize=7)
    elif kind == "pool":
        ax.text(x + w / 2, -0.62, str(rows["stage3"].output_shape[0]), ha="center",
                va="top", fontsize=7)
    if kind not in ("input",):
        ax.annotate("", xy=(x, 0), xytext=(x - 0.25, 0),
                    arrowprops={"arrowstyle": "->", "color": "0.2", "lw": 0.8})
    return w


def _draw_stage_brackets(ax, infos: list[BlockInfo], x_of: dict, rows: dict) -> None:
    """Stage brackets with their shapes and parameter counts, from the summary."""
    for s in (1, 2, 3):
        xs = [x_of[id(b)] for b in infos if b.stage == s and id(b) in x_of]
        left, right = min(xs) - 0.08, max(xs) + 0.95 + 0.08
        ax.plot([left, left, right, right], [-0.95, -1.05, -1.05, -0.95], color="0.3", lw=0.8)
        row = rows[f"stage{s}"]
        n = sum(b.stage == s for b in infos)
        ax.text((left + right) / 2, -1.12,
                f"stage {s}: {n} blocks, {'x'.join(map(str, row.output_shape))}, "
                f"{row.parameters:,} parameters", ha="center", va="top", fontsize=7.5)


def _finish_architecture(ax, model, infos: list[BlockInfo], right: float) -> None:
    """The shortcuts' legend, the limits, and a title with the depth and parameter count."""
    from matplotlib.lines import Line2D

    from .models import count_parameters
    handles = [Line2D([], [], color=c, linestyle=ls, lw=1.6) for c, ls, _ in
               _SHORTCUT_STYLE.values()]
    ax.legend(handles, ["shortcut: identity", "shortcut: option A (zero padding)",
                        "shortcut: projection (B, C)"], loc="upper right", fontsize=7,
              ncols=3, frameon=False)
    ax.set_xlim(-0.2, right)
    ax.set_ylim(-1.5, 1.75)
    ax.axis("off")
    total = count_parameters(model)
    switched = "" if all(b.shortcut != "off" for b in infos) else ", shortcuts switched off"
    ax.set_title(f"{model.name}{switched}: {len(infos)} blocks, depth {model.config.depth}, "
                 f"{total:,} parameters (shapes: channels x height x width)", fontsize=9)


# --- 03 and 04: images, feature maps and what the network gets wrong ----------------------

def show_channels(maps, title: str = "", ncols: int = 16, labels: Sequence[str] | None = None):
    """Each channel of one feature map (C, H, W) as a small grey image.

    Each channel is scaled to its own range (black = its minimum), so weak channels
    stay visible. A channel that is exactly zero everywhere (option A's padding) is
    drawn black and outlined in orange, so the added channels stand out.
    labels: one short title per channel (default: the channel number).
    """
    import matplotlib.pyplot as plt
    maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
    c = maps.shape[0]
    nrows = -(-c // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.62 * ncols, 0.72 * nrows + 0.45), dpi=90,
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= c:
            ax.axis("off")
            continue
        lo, hi = float(maps[i].min()), float(maps[i].max())
        ax.imshow(maps[i], cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        zero = not np.any(maps[i])
        for spine in ax.spines.values():
            spine.set_color("tab:orange" if zero else "0.6")
            spine.set_linewidth(2 if zero else 0.5)
        ax.set_title(labels[i] if labels is not None else str(i), fontsize=6,
                     color="tab:orange" if zero else "black", pad=2)
    fig.suptitle(title, fontsize=9)
    return fig


def show_images(images, titles: Sequence[str] | None = None, ncols: int = 10,
                title: str = "", scale: float = 1.0):
    """A grid of uint8 images (N, 3, H, W), each with an optional short title."""
    import matplotlib.pyplot as plt
    images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.05 * ncols * scale,
                                                    (1.05 * nrows + 0.3) * scale + 0.1),
                             dpi=90, squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].transpose(1, 2, 0), interpolation="nearest")  # the real pixels
            if titles is not None:
                ax.set_title(titles[i], fontsize=7, pad=2)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def show_examples_per_class(data_set, classes: Sequence[str], per_class: int = 8,
                            seed: int = 0):
    """`per_class` random images of each class, one row per class (uint8 ImageSet)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    rows, titles = [], []
    for k, name in enumerate(classes):
        idx = (data_set.labels == k).nonzero().flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        rows.append(data_set.images[pick])
        titles += [name if j == 0 else "" for j in range(len(pick))]
    return show_images(torch.cat(rows), titles, ncols=per_class, scale=0.8,
                       title=f"{per_class} random training images per class (32x32 pixels)")


def show_augmentations(images, augmented: Sequence, labels: Sequence[str] | None = None):
    """Row i: image i, then several augmented versions of it (uint8 (N, 3, H, W) each).

    augmented: a list of tensors, each (N, 3, H, W), e.g. several calls of data.augment.
    """
    import torch
    n, k = len(images), len(augmented)
    grid = torch.stack([images, *augmented], dim=1).flatten(0, 1)     # (N * (k+1), 3, H, W)
    titles = [("original" if j == 0 else f"augmented {j}") if i == 0 else ""
              for i in range(n) for j in range(k + 1)]
    if labels is not None:
        titles = [f"{labels[i]}" if j == 0 else t for i in range(n) for j, t in
                  zip(range(k + 1), titles[i * (k + 1):(i + 1) * (k + 1)])]
    return show_images(grid, titles, ncols=k + 1, scale=0.9,
                       title="random crop (4-pixel zero padding) and horizontal flip")


def plot_confusion_matrix(counts, classes: Sequence[str], title: str = ""):
    """Rows: the true class; columns: the predicted class. Cells: % of the row's images."""
    import matplotlib.pyplot as plt
    counts = np.asarray(counts.cpu() if hasattr(counts, "cpu") else counts, dtype=float)
    share = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.6, 4.8), dpi=90, layout="constrained")
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 60 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=title or f"confusion matrix ({int(counts.sum()):,} test images)")
    fig.colorbar(im, ax=ax, label="% of the true class's images")
    return fig


def show_misclassified(images, labels, predictions, classes: Sequence[str], n: int = 20,
                       ncols: int = 10, seed: int = 0):
    """`n` wrongly classified images picked at random (seeded), titled 'true -> predicted'.

    Random rather than the first ones: a data set stored in class order would
    otherwise show only its first class. Shown in the order of the true class.
    """
    import torch
    labels, predictions = torch.as_tensor(labels).cpu(), torch.as_tensor(predictions).cpu()
    wrong = (labels != predictions).nonzero().flatten()
    pick = torch.randperm(len(wrong), generator=torch.Generator().manual_seed(seed))[:n]
    wrong = wrong[pick]
    wrong = wrong[torch.argsort(labels[wrong] * len(labels) + wrong)]
    titles = [f"{classes[int(labels[i])]}\n-> {classes[int(predictions[i])]}" for i in wrong]
    return show_images(images[wrong], titles, ncols=ncols, scale=0.95,
                       title=f"misclassified test images (true -> predicted), "
                             f"{len(wrong)} of {int((labels != predictions).sum()):,}")
