"""The figures of notebooks 01-02 plot what they are given, with labelled axes."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from resnet_nb import cifar_resnet, make_synthetic, plain_net  # noqa: E402
from resnet_nb.data import normalize  # noqa: E402
from resnet_nb.probes import signal_profile  # noqa: E402
from resnet_nb.runs import History  # noqa: E402
from resnet_nb.viz import plot_curves, plot_signal_profiles, plot_training_curves, smooth  # noqa


def test_smooth_is_a_trailing_mean_of_the_same_length():
    assert np.allclose(smooth([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    assert np.allclose(smooth([1, 2, 3], 1), [1, 2, 3])
    assert np.allclose(smooth([4, 0, 2], 10), [4, 2, 2])
    assert len(smooth([], 5)) == 0


def test_training_curves_plot_loss_and_error_with_labels():
    h = History(step_loss=[2.3, 2.2, 2.0, 1.9])
    fig = plot_training_curves({"plain-20": h, "ResNet-20 (A)": h},
                               {"plain-20": ([2, 4], [0.9, 0.8]),
                                "ResNet-20 (A)": ([2, 4], [0.8, 0.5])}, window=2)
    loss_ax, err_ax = fig.axes[:2]
    assert "iteration" in loss_ax.get_xlabel() and "loss" in loss_ax.get_ylabel()
    assert "%" in err_ax.get_ylabel()
    plain, res = err_ax.get_lines()[:2]
    assert plain.get_linestyle() == "--" and res.get_linestyle() == "-"
    assert np.allclose(res.get_ydata(), [80, 50])            # fractions drawn in percent
    assert np.allclose(loss_ax.get_lines()[0].get_ydata(), smooth(h.step_loss, 2))


def test_signal_profiles_one_curve_per_network_log_gradient():
    data = make_synthetic(16, 4)
    x, y = normalize(data.train.images), data.train.labels
    profiles = [signal_profile(m, x, y) for m in (plain_net(8), cifar_resnet(8))]
    fig = plot_signal_profiles(profiles)
    act, grad = fig.axes[:2]
    assert grad.get_yscale() == "log" and "dL/dx" in grad.get_ylabel()
    assert len(act.get_lines()) == len(grad.get_lines()) == 2
    assert np.allclose(grad.get_lines()[0].get_ydata(), profiles[0].grad_norm)


def test_plot_curves():
    fig = plot_curves({"plain stack": [1.0, 0.5], "residual stack": [2.0, 0.1]}, "step",
                      "error", logy=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"
    assert [l.get_linestyle() for l in ax.get_lines()] == ["--", "-"]


def test_path_lengths_bars_count_the_paths():
    from resnet_nb.viz import plot_path_lengths
    fig = plot_path_lengths([1.0, 3.0, 3.0, 1.0])
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [1, 3, 3, 1]
    assert "path length" in fig.axes[0].get_xlabel()


def test_the_loss_axis_names_label_smoothing_when_the_runs_used_it():
    """04's and 06's runs use the fast recipe (label smoothing 0.1): a loss that cannot reach
    0, so the axis must say so; a history without smoothing (or not recording it) is plain."""
    from resnet_nb import recipe
    from resnet_nb.runs import _plain
    from dataclasses import asdict
    fast = _plain(asdict(recipe("fast")))
    plain_ce = {**fast, "label_smoothing": 0.0}
    loss = [2.3, 2.2, 2.0, 1.9]
    label = lambda *configs: plot_training_curves(
        {f"run {i}": History(config=c, step_loss=loss) for i, c in enumerate(configs)},
        window=2).axes[0].get_ylabel()
    assert fast["label_smoothing"] == 0.1
    assert label(fast, fast) == "training loss (cross-entropy, label smoothing 0.1)"
    assert label(plain_ce) == "training loss (cross-entropy)"
    assert label({}) == "training loss (cross-entropy)"               # not recorded
    assert label(plain_ce, fast) == "training loss (cross-entropy, label smoothing 0 or 0.1 by run)"


def test_a_long_loss_label_stays_on_the_figure():
    """'training loss (cross-entropy, label smoothing 0 or 0.1 by run)' is taller than the
    figure when drawn on one line: the label wraps, so no part of it is cut off."""
    from resnet_nb import recipe
    from resnet_nb.runs import _plain
    from dataclasses import asdict
    fast = _plain(asdict(recipe("fast")))
    fig = plot_training_curves({"a": History(config=fast, step_loss=[2.3, 2.0]),
                                "b": History(config={**fast, "label_smoothing": 0.0},
                                             step_loss=[2.3, 2.1])}, window=1)
    fig.canvas.draw()
    label = fig.axes[0].yaxis.label
    box, figure = label.get_window_extent(), fig.bbox
    assert box.y0 >= figure.y0 and box.y1 <= figure.y1, (box, figure)
    assert "by run" in label.get_text()


def test_the_race_names_label_smoothing_from_the_runs_setting():
    from types import SimpleNamespace
    from resnet_nb.viz_lab import plot_training_race
    run = lambda smoothing: SimpleNamespace(label="ResNet-20 (A), lr 0.2", steps_per_epoch=2,
                                            step_loss=[2.3, 2.1, 2.0],
                                            setting={"label_smoothing": smoothing})
    ylabel = lambda fig: fig.axes[0].get_ylabel().replace("\n", " ")
    assert ylabel(plot_training_race([run(0.1)])) == "training loss (cross-entropy, label smoothing 0.1)"
    assert ylabel(plot_training_race([run(0.0)])) == "training loss (cross-entropy)"


def test_the_race_loss_label_fits_in_its_figure():
    """The race's figure is short (3.4 inches): its loss label, with label smoothing named,
    must lie inside the figure, not be cut off at the top."""
    from types import SimpleNamespace
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from resnet_nb.viz_lab import plot_training_race
    run = SimpleNamespace(label="ResNet-20 (A), lr 0.2", steps_per_epoch=2, step_loss=[2.3, 2.0],
                          setting={"label_smoothing": 0.1})
    fig = plot_training_race([run])
    FigureCanvasAgg(fig).draw()
    box = fig.axes[0].yaxis.label.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.y0 and box.y1 <= fig.bbox.height and 0 <= box.x0, (box, fig.bbox)
