"""The figures of notebook 07 plot what they are given, on labelled axes, comparably."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from resnet_nb.probes import (GradientCorrelation, LayerResponses, LossSlice,  # noqa: E402
                              LossSurface, PathGradients, SampledPaths)
from resnet_nb.viz_lab import (LandscapePosition, figure_png,  # noqa: E402
                               plot_landscape_contours)
from resnet_nb.viz_why import (plot_gradient_correlation, plot_gradient_lines,  # noqa: E402
                               plot_layer_responses, plot_loss_slices, plot_loss_surfaces,
                               plot_path_gradients)


def test_layer_responses_in_order_and_sorted_plain_dashed():
    rs = [LayerResponses("plain-8", ("stem", "1.1a", "1.1b"), (0.5, 0.9, 0.7), 10),
          LayerResponses("ResNet-8 (A)", ("stem", "1.1a", "1.1b"), (0.4, 0.2, 0.3), 10)]
    fig = plot_layer_responses(rs)
    left, right = fig.axes[:2]
    assert np.allclose(left.get_lines()[0].get_ydata(), [0.5, 0.9, 0.7])
    assert np.allclose(right.get_lines()[0].get_ydata(), [0.9, 0.7, 0.5])     # sorted
    assert left.get_lines()[0].get_linestyle() == "--"
    assert left.get_lines()[1].get_linestyle() == "-"
    # Twins share a colour (one per depth).
    assert left.get_lines()[0].get_color() == left.get_lines()[1].get_color()
    assert "std" in left.get_ylabel() and "layer" in left.get_xlabel()
    assert "sorted" in right.get_xlabel()


def _slice(name, scale):
    a = (-1.0, -0.5, 0.0, 0.5, 1.0)
    return LossSlice(name, a, tuple(0.1 + scale * x * x for x in a),
                     tuple(0.9 - 0.1 * abs(x) for x in a), 32)


def _surface(name, scale):
    a = (-1.0, 0.0, 1.0)
    loss = tuple(tuple(0.1 + scale * (x * x + y * y) for y in a) for x in a)
    return LossSurface(name, a, a, loss, tuple(tuple(0.5 for _ in a) for _ in a), 32)


def test_loss_slices_draw_loss_on_a_log_scale_and_accuracy_in_percent():
    fig = plot_loss_slices([_slice("plain-56", 10), _slice("ResNet-56 (A)", 1)],
                           marker={"plain-56": (0.5, 2.6, 0.85)})
    loss_ax, acc_ax = fig.axes[:2]
    assert loss_ax.get_yscale() == "log" and "loss" in loss_ax.get_ylabel()
    assert np.allclose(loss_ax.get_lines()[0].get_ydata(), [10.1, 2.6, 0.1, 2.6, 10.1])
    assert np.allclose(acc_ax.get_lines()[0].get_ydata(), [80, 85, 90, 85, 80])
    marker = [l for l in loss_ax.get_lines() if list(l.get_xdata()) == [0.5]]
    assert marker and list(marker[0].get_ydata()) == [2.6]
    assert "alpha" in loss_ax.get_xlabel() and "%" in acc_ax.get_ylabel()


def test_contours_of_several_networks_share_their_levels():
    fig = plot_loss_surfaces([_surface("plain-56", 10), _surface("ResNet-56 (A)", 1)],
                             marker=(0.5, 0.0))
    sets = [c for ax in fig.axes[:2] for c in ax.collections if hasattr(c, "levels")]
    filled = [c for c in sets if getattr(c, "filled", False)]
    assert len(filled) == 2 and np.allclose(filled[0].levels, filled[1].levels)
    # From the lowest loss of any panel (0.1) to the highest (20.1, below 1000 x 0.1).
    assert filled[0].levels[0] == pytest.approx(0.1)
    assert filled[0].levels[-1] == pytest.approx(20.1)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["plain-56", "ResNet-56 (A)"]
    assert "alpha" in fig.axes[0].get_xlabel() and "beta" in fig.axes[0].get_ylabel()
    assert "loss" in fig.axes[-1].get_ylabel()                  # the colour bar


def test_the_widget_picture_marks_the_current_point():
    slices = [_slice("plain-56", 10), _slice("ResNet-56 (A)", 1)]
    surfaces = [_surface("plain-56", 10), _surface("ResNet-56 (A)", 1)]
    fig = LandscapePosition(slices, surfaces).move(0.25, {"plain-56": (0.25, 0.7, 0.9),
                                                          "ResNet-56 (A)": (0.25, 0.2, 0.9)})
    assert len(fig.axes) == 3 and "+0.25" in fig.axes[0].get_title()
    points = [(list(l.get_xdata()), list(l.get_ydata())) for l in fig.axes[0].get_lines()]
    assert ([0.25], [0.7]) in points and ([0.25], [0.2]) in points
    for ax in fig.axes[1:]:                              # and (alpha, 0) on the contours
        assert ([0.25], [0.0]) in [(list(l.get_xdata()), list(l.get_ydata()))
                                   for l in ax.get_lines()]
    assert figure_png(fig)[:4] == b"\x89PNG"
    fig = plot_landscape_contours(surfaces)              # the widget's fixed picture
    assert [ax.get_title() for ax in fig.axes[:2]] == ["plain-56: loss contours",
                                                      "ResNet-56 (A): loss contours"]
    line = [l for l in fig.axes[0].get_lines() if list(l.get_ydata()) == [0, 0]]
    assert line and line[0].get_linestyle() == "--"      # where the slider moves


def _corr(name, c):
    t = tuple(np.linspace(0, 1, 9))
    return GradientCorrelation(name, t, tuple(np.sin(np.arange(9.0))), (1, 2, 4),
                               (c, c / 2, c / 4))


def test_gradient_figures_plain_row_first_and_correlation_by_depth():
    results = [_corr("plain-8", 0.9), _corr("plain-56", 0.01), _corr("ResNet-8 (A)", 0.95),
               _corr("ResNet-56 (A)", 0.8)]
    fig = plot_gradient_lines(results)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["plain-8: corr. 0.90", "plain-56: corr. 0.01"]
    d = fig.axes[0].get_lines()[0].get_ydata()
    assert np.sqrt(np.mean(d ** 2)) == pytest.approx(1)           # scaled to RMS 1
    fig = plot_gradient_correlation(results)
    left, right = fig.axes[:2]
    assert np.allclose(left.get_lines()[0].get_xdata(), [1 / 8, 2 / 8, 4 / 8])
    plain, res = right.get_lines()[:2]
    assert list(plain.get_xdata()) == [8, 56] and np.allclose(plain.get_ydata(), [0.9, 0.01])
    assert plain.get_linestyle() == "--" and res.get_linestyle() == "-"
    assert "depth" in right.get_xlabel()


def test_path_figure_counts_paths_and_normalises_the_shares():
    n = 4
    s = SampledPaths("ResNet-14 (A)", n, tuple(range(n + 1)), (1.0, 0.5, 0.25, 0.125, 0.0625),
                     samples=2, images=3)
    e = PathGradients("ResNet-14 (A)", n, (1.0, 2.0, 1.0, 0.5, 0.1), 3.0, 3)
    fig = plot_path_gradients([s], [e], labels=["trained"])
    count_ax, per_ax, total_ax = fig.axes[:3]
    heights = [p.get_height() for p in count_ax.patches]
    assert heights == pytest.approx([math.comb(n, k) / 2 ** n for k in range(n + 1)])
    assert per_ax.get_yscale() == "log"
    shares = total_ax.get_lines()[0].get_ydata()
    assert sum(shares) == pytest.approx(1)
    assert shares == pytest.approx(np.array(s.total) / sum(s.total))
    assert sum(total_ax.get_lines()[1].get_ydata()) == pytest.approx(1)
    assert [t.get_text() for t in per_ax.get_legend().get_texts()] == ["trained"]
    assert len(total_ax.get_legend().get_texts()) == 2        # sampled lines, exact circles
