"""Matplotlib figures built from histories, probes and measurements.

Every function draws into the axes it is given (or a new figure), labels its axes
with units, and returns the figure, so a notebook cell is one call. This course
draws plain networks dashed and residual networks solid (its own convention, so
that twins can share a colour); `plot_fig6` instead follows He et al. (2015),
Fig. 6: plain networks and ResNets in separate panels, dashed training error and
bold test error. Figures are small (inline, ~100 dpi) so that committed
notebooks stay small.
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
    fig, axes = _new_axes(panels)
    for label, h in histories.items():
        steps = np.arange(1, len(h.step_loss) + 1)
        w = window or max(1, len(steps) // 20)
        axes[0].plot(steps, smooth(h.step_loss, w), label=label, **_style(label))
    smoothing = [(h.config or {}).get("label_smoothing") for h in histories.values()]
    axes[0].set(xlabel="iteration (mini-batch step)",
                title=f"training loss, moving average over {window or 'about 1/20 of the run'}"
                      f"{' steps' if window else ''}")
    axes[0].set_ylabel(loss_label(smoothing), wrap=True)    # a long label, kept on the figure
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


def _network_name(label, history) -> str:
    """The label given, else the network's name from the history's model configuration."""
    if isinstance(label, str):
        return label
    from .models import ResNetConfig
    return ResNetConfig(**history.model).name


def _depth_of(name: str, history=None) -> int | None:
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
                     if (d := _depth_of(name, h)) is not None})
    colour = {d: f"C{i % 10}" for i, d in enumerate(depths)}
    if axes is None:
        fig, axes = _new_axes(2, width=4.8, height=3.6)
    else:
        fig = axes[0].figure
    from matplotlib.lines import Line2D
    for ax, runs, panel in ((axes[0], plain, "plain networks"), (axes[1], resnet, "ResNets")):
        handles = []
        for name, h in runs:
            c = colour.get(_depth_of(name, h), "0.3")
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


# --- 03: the architecture, drawn from the model itself ---------------------------------

from dataclasses import dataclass as _dataclass  # noqa: E402  (used by the section below)

@_dataclass(frozen=True)
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


def plot_architecture(model, blocks_shown: int = 3):
    """The network as a left-to-right diagram: stem, three stages of blocks, pooling and fc.

    Each block is a box; its shortcut is the arc above it (grey: identity,
    orange dashed: option A's zero padding, red: a 1x1 projection; no arc: no
    shortcut). Stages with more than `blocks_shown` blocks show the first
    blocks, the last one, and how many are left out. Shapes are C x H x W.
    Notebook 05's lab draws the same figure (`plot_network_strip`).
    """
    import matplotlib.pyplot as plt
    return _draw_architecture(model, blocks_shown, lambda size: plt.subplots(
        figsize=size, dpi=90, layout="constrained"))


def _draw_architecture(model, blocks_shown: int, new_figure, model_summary=None):
    """plot_architecture's drawing; new_figure(figsize) -> (figure, axes) makes the canvas."""
    from matplotlib.patches import Arc, FancyBboxPatch

    from .models import count_parameters, summarize
    model_summary = model_summary or summarize(model)   # one forward pass, used twice
    summary = {r.name: r for r in model_summary.rows}
    infos = architecture_blocks(model, model_summary)
    shape = lambda s: "x".join(map(str, s))
    # Column positions: input, stem, then each stage's shown blocks (and a gap), then head.
    items = [("input", None), ("stem", None)]
    for s in (1, 2, 3):
        stage = [b for b in infos if b.stage == s]
        if len(stage) > blocks_shown:
            keep = stage[:blocks_shown - 1]
            items += [("block", b) for b in keep]
            items.append(("gap", len(stage) - len(keep) - 1))
            items.append(("block", stage[-1]))
        else:
            items += [("block", b) for b in stage]
    items += [("pool", None), ("fc", None)]
    fig, ax = new_figure((0.95 * len(items) + 1, 3.6))
    x_of = {}
    block_label = ("BN-ReLU-conv\nx2" if model.config.preact else "conv-BN-ReLU\nconv-BN")
    x = 0.0
    for kind, info in items:
        w = 0.55 if kind == "gap" else 0.95
        x_of[id(info) if info is not None else kind] = x
        face = {"input": "white", "stem": "0.92", "pool": "0.92", "fc": "0.92",
                "block": "#dbe9f6", "gap": "white"}[kind]
        if kind != "gap":
            ax.add_patch(FancyBboxPatch((x, -0.45), w, 0.9, boxstyle="round,pad=0.03",
                                        facecolor=face, edgecolor="0.2", linewidth=1))
        text = {"input": f"image\n{model.stem[0].in_channels}x32x32",
                "stem": f"conv 3x3\n{summary['stem'].output_shape[0]} filters",
                "pool": "global\navg pool",
                "fc": f"fc\n{model.fc.out_features} classes"}.get(kind)
        if kind == "block":
            text = f"block {info.stage}.{info.index}\n{block_label}"
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
            ax.text(x + w / 2, -0.62, shape(summary["stem"].output_shape), ha="center",
                    va="top", fontsize=7)
        elif kind == "pool":
            ax.text(x + w / 2, -0.62, str(summary["stage3"].output_shape[0]), ha="center",
                    va="top", fontsize=7)
        if kind not in ("input",):
            ax.annotate("", xy=(x, 0), xytext=(x - 0.25, 0),
                        arrowprops={"arrowstyle": "->", "color": "0.2", "lw": 0.8})
        x += w + 0.25
    # Stage brackets with their shapes and parameter counts, from the summary.
    for s in (1, 2, 3):
        xs = [x_of[id(b)] for b in infos if b.stage == s and id(b) in x_of]
        left, right = min(xs) - 0.08, max(xs) + 0.95 + 0.08
        ax.plot([left, left, right, right], [-0.95, -1.05, -1.05, -0.95], color="0.3", lw=0.8)
        row = summary[f"stage{s}"]
        n = sum(b.stage == s for b in infos)
        ax.text((left + right) / 2, -1.12,
                f"stage {s}: {n} blocks, {shape(row.output_shape)}, "
                f"{row.parameters:,} parameters", ha="center", va="top", fontsize=7.5)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, linestyle=ls, lw=1.6) for c, ls, _ in
               _SHORTCUT_STYLE.values()]
    ax.legend(handles, ["shortcut: identity", "shortcut: option A (zero padding)",
                        "shortcut: projection (B, C)"], loc="upper right", fontsize=7,
              ncols=3, frameon=False)
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-1.5, 1.75)
    ax.axis("off")
    total = count_parameters(model)
    switched = "" if all(b.shortcut != "off" for b in infos) else ", shortcuts switched off"
    ax.set_title(f"{model.name}{switched}: {len(infos)} blocks, depth {model.config.depth}, "
                 f"{total:,} parameters (shapes: channels x height x width)", fontsize=9)
    return fig


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


# --- the interactive lab's figures (notebook 06; resnet_nb.widgets wires them to controls) ----
# Built on matplotlib.figure.Figure, not pyplot: the lab redraws from a training thread, and a
# Figure that pyplot does not track is safe there and is never shown twice by the inline backend.

_STAGE_COLOURS = ("#4C72B0", "#55A868", "#C44E52")   # stage 1, 2, 3
_RESIDUAL_COLOUR, _PLAIN_COLOUR = "#1f77b4", "#d62728"


def figure_png(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (what an ipywidgets.Image shows), at a modest dpi."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _lab_figure(width: float, height: float, ncols: int = 1):
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


def plot_network_strip(model, blocks_shown: int = 3, summary=None):
    """The lab's view 1: the same drawing as `plot_architecture` (notebook 03), on a Figure.

    The Figure is not tracked by pyplot, so that the lab can redraw it from any thread
    and the inline backend never shows it twice (see the note above `figure_png`).
    summary: the model's `summarize(model)`, if already computed.
    """
    from matplotlib.figure import Figure

    def new_figure(size):
        fig = Figure(figsize=size, dpi=90, layout="constrained")
        return fig, fig.subplots()
    return _draw_architecture(model, blocks_shown, new_figure, summary)


def plot_signal_comparison(current, reference, current_label: str, reference_label: str):
    """Per-block activation RMS and gradient norm at initialisation, two networks on one scale.

    `current` and `reference` are probes.SignalProfile's of the same depth; the current
    setting is drawn in colour, the reference (its plain or residual twin) in grey.
    """
    fig, (a1, a2) = _lab_figure(10, 3.1, ncols=2)
    colour = _PLAIN_COLOUR if "plain" in current_label else _RESIDUAL_COLOUR
    x = current.depth_index
    for ax, key, title in ((a1, "activation_rms", "forward signal at initialisation"),
                           (a2, "grad_norm", "gradient at initialisation")):
        ax.plot(x, getattr(reference, key), color="0.55", marker=".", ms=3, lw=1,
                label=reference_label, **_style(reference_label))
        ax.plot(x, getattr(current, key), color=colour, marker="o", ms=3.5, lw=1.8,
                label=current_label, **_style(current_label))
        _log_axis(ax)
        _stage_bounds(ax, current.stages)
        ax.set_xlabel("block (1 = next to the input)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    a1.set_ylabel("RMS of the block's output")
    a2.set_ylabel("||dL/dx|| per image")
    a2.legend(fontsize=8)
    return fig


def plot_training_race(runs):
    """Training loss against epochs for several runs (the lab's race), one line each.

    runs: objects with .label (str), .step_loss (list of floats) and .steps_per_epoch (int),
    and optionally .setting (dict) with the run's "label_smoothing", named on the loss axis.
    """
    fig, ax = _lab_figure(8, 3.4)
    colours = [f"C{k % 10}" for k in range(len(runs))]
    for run, c in zip(runs, colours):
        if not run.step_loss:
            continue
        epochs = [(k + 1) / run.steps_per_epoch for k in range(len(run.step_loss))]
        window = max(1, run.steps_per_epoch // 4)   # a quarter of an epoch
        ax.plot(epochs, smooth(run.step_loss, window), color=c, lw=1.5, label=run.label,
                **_style(run.label))
    ax.set_xlabel("epochs of the training subset")
    ax.set_ylabel(loss_label([(getattr(r, "setting", None) or {}).get("label_smoothing")
                              for r in runs if r.step_loss]))
    ax.grid(alpha=0.3)
    if any(r.step_loss for r in runs):
        ax.legend(fontsize=8, loc="upper right")
    else:
        ax.text(0.5, 0.5, "press Train to start a run", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    ax.set_title("training runs of this session (moving average over 1/4 epoch)", fontsize=10)
    return fig


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
    fig, ax = _lab_figure(10, 3.2)
    for k, (label, r) in enumerate(results.items()):
        c = _PLAIN_COLOUR if "plain" in label else _RESIDUAL_COLOUR
        x = list(range(1, len(r.lesioned_acc) + 1))
        ax.plot(x, [100 * a for a in r.lesioned_acc], color=c, marker="o", ms=4,
                label=f"{label}: one block removed", **_style(label))
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


# --- 02: the unrolled view (helper A) ------------------------------------------------------

def plot_path_lengths(norms: Sequence[float], title: str = ""):
    """Paths of each length through n blocks: how many there are, and what they carry.

    norms[k]: the norm of the summed Jacobian-vector products of all paths of length k
    (formulation.path_length_terms), k = 0..n. Bars: the number of paths, C(n, k).
    """
    import math
    n = len(norms) - 1
    lengths = np.arange(n + 1)
    fig, (ax,) = _new_axes(1, width=6.0)
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


# --- 07: why it works (layer responses, loss landscapes, shattered gradients, paths) ----------

def _depth_colour(name: str, depths: Sequence[int]) -> str:
    """One colour per depth, so that a network and its twin share it (plain dashed, as always)."""
    import re
    m = re.search(r"-(\d+)", name)
    depth = int(m.group(1)) if m else 0
    order = sorted(set(depths))
    return f"C{order.index(depth) % 10}" if depth in order else "C7"


def _depth_in_name(name: str) -> int:
    """The depth in a network's name ("ResNet-56 (A)" -> 56), 0 if it names none."""
    return _depth_of(name, None) or 0


def plot_layer_responses(responses: Sequence["LayerResponses"]):
    """He et al. (2015), Fig. 7: the std of each 3x3 layer's response, in order and sorted.

    responses: from probes.layer_responses, e.g. plain-20/56 and ResNet-20/56. Left: the layers
    in the order the signal passes them; right: each network's values sorted from the largest.
    Plain networks dashed, residual solid; one colour per depth.
    """
    fig, (left, right) = _new_axes(2, width=5.4, height=3.6)
    depths = [_depth_in_name(r.model_name) for r in responses]
    for r in responses:
        style = {"color": _depth_colour(r.model_name, depths), **_style(r.model_name)}
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


def _draw_slices(loss_ax, acc_ax, slices, marker=None) -> None:
    """Loss (log scale) and accuracy along each slice; marker: {name: (alpha, loss, acc)}."""
    depths = [_depth_in_name(s.model_name) for s in slices]
    for s in slices:
        colour = _PLAIN_COLOUR if "plain" in s.model_name.lower() else _RESIDUAL_COLOUR
        if len(set(depths)) > 1:
            colour = _depth_colour(s.model_name, depths)
        style = {"color": colour, **_style(s.model_name)}
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
    fig, (loss_ax, acc_ax) = _new_axes(2, width=5.2, height=3.5)
    _draw_slices(loss_ax, acc_ax, slices, marker)
    n = slices[0].images if slices else 0
    loss_ax.set_title("loss along one random direction")
    acc_ax.set_title("accuracy along the same direction")
    fig.suptitle(f"theta + alpha d, d filter-normalised; {n:,} fixed training images, "
                 "BN in eval mode", fontsize=10)
    return fig


def _surface_levels(surfaces, count: int = 16) -> np.ndarray:
    """Contour levels shared by every surface: log-spaced from the lowest loss of any of them to
    the highest (at most 1000 times the lowest; higher losses get the top colour)."""
    low = max(min(min(min(row) for row in s.loss) for s in surfaces), 1e-4)
    high = max(max(max(row) for row in s.loss) for s in surfaces)
    top = min(high, 1000 * low)
    return np.geomspace(low, max(top, low * 1.01), count)


def _draw_surface(ax, surface, levels, marker=None):
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
    fig, axes = _new_axes(len(surfaces), width=4.0, height=3.7)
    levels = _surface_levels(surfaces)
    filled = None
    for ax, s in zip(axes, surfaces):
        filled = _draw_surface(ax, s, levels, marker)
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


def plot_landscape_position(slices, surfaces, alpha: float, current: dict):
    """The landscape widget's picture: 1-D slices with the current point, and the contours.

    current: {model_name: (alpha, loss, accuracy)} at the slider's alpha. A Figure not
    tracked by pyplot (safe to draw for a widget; never shown twice).
    """
    fig, axes = _lab_figure(4.2 * (1 + len(surfaces)), 3.6, ncols=1 + len(surfaces))
    axes = list(np.atleast_1d(axes))
    _draw_slices(axes[0], None, slices, current)
    axes[0].axvline(alpha, color="tab:red", lw=0.8, ls=":")
    axes[0].set_title(f"loss along direction 1, alpha = {alpha:+.2f}", fontsize=10)
    if surfaces:
        levels = _surface_levels(surfaces)
        for ax, s in zip(axes[1:], surfaces):
            _draw_surface(ax, s, levels, marker=(alpha, 0.0))
            ax.set_title(f"{s.model_name}: loss contours", fontsize=10)
    return fig


class LandscapePosition:
    """The landscape widget's moving picture: the 1-D slices drawn once, a marker moved.

    `move(alpha, current)` only moves the circles on the curves and the dotted line at alpha
    and retitles the axes, so an update costs one PNG encoding (`figure_png`), not a new
    figure. The layout is fixed after the first drawing: a title that changes length does
    not shift the axes. current: {model_name: (alpha, loss, accuracy)}, as for
    `plot_landscape_position`. `figure` is a Figure not tracked by pyplot.
    """

    def __init__(self, slices):
        fig, ax = _lab_figure(4.2, 3.6)
        self.figure, self.ax = fig, ax
        _draw_slices(ax, None, slices)
        ax.set_xlabel("alpha (1 = one filter norm)")     # the long label is cut at this width
        self.markers = {}
        for s, line in zip(slices, ax.get_lines()):
            marker, = ax.plot([], [], "o", ms=9, mfc="none", mew=2, color=line.get_color())
            self.markers[s.model_name] = marker
        self.line = ax.axvline(0.0, color="tab:red", lw=0.8, ls=":")
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
    fig, axes = _lab_figure(3.6 * len(surfaces), 3.4, ncols=len(surfaces))
    axes = list(np.atleast_1d(axes))
    levels = _surface_levels(surfaces)
    for ax, s in zip(axes, surfaces):
        _draw_surface(ax, s, levels)
        ax.axhline(0, color="tab:red", lw=1.2, ls="--", label="the slider's line (beta = 0)")
        ax.set_title(f"{s.model_name}: loss contours", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper left")
    return fig


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
            colour = _PLAIN_COLOUR if "plain" in r.model_name.lower() else _RESIDUAL_COLOUR
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
    fig, (left, right) = _new_axes(2, width=5.2, height=3.5)
    depths = [_depth_in_name(r.model_name) for r in results]
    for r in results:
        style = {"color": _depth_colour(r.model_name, depths), **_style(r.model_name)}
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
            colour = _PLAIN_COLOUR if kind == "plain" else _RESIDUAL_COLOUR
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
    fig, (count_ax, per_ax, total_ax) = _new_axes(3, width=4.1, height=3.4)
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
