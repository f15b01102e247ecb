"""viz.plot_fig6 draws training curves with the conventions of He et al. (2015), Fig. 6."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from resnet_nb.runs import History  # noqa: E402
from resnet_nb.viz import fig6_points, plot_fig6  # noqa: E402


def _history(depth, shortcut, train_acc, test_acc, steps_per_epoch=50):
    epochs = [{"epoch": i + 1, "train_acc": a, "test_acc": t}
              for i, (a, t) in enumerate(zip(train_acc, test_acc))]
    return History(model={"depth": depth, "shortcut": shortcut}, steps_per_epoch=steps_per_epoch,
                   epochs=epochs)


PLAIN = {"plain-20": _history(20, "none", [0.3, 0.5, 0.6], [0.35, 0.5, 0.55]),
         "plain-56": _history(56, "none", [0.2, 0.3, 0.4], [0.25, 0.3, 0.35])}
RESNET = {"ResNet-20 (A)": _history(20, "A", [0.4, 0.6, 0.7], [0.45, 0.6, 0.65]),
          "ResNet-56 (A)": _history(56, "A", [0.3, 0.6, 0.8], [0.3, 0.6, 0.7])}


def _lines(ax):
    """(label, line) of every drawn curve (the legend's proxy handles are not on the axes)."""
    return {line.get_label(): line for line in ax.get_lines()}


def test_points_are_the_error_in_percent_at_the_end_of_each_epoch():
    its, err = fig6_points(PLAIN["plain-20"], "train_acc")
    assert its.tolist() == [50, 100, 150]                    # epoch * steps_per_epoch
    assert np.allclose(err, [70, 50, 40])                    # 100 * (1 - accuracy)
    h = _history(20, "none", [0.5, 0.6], [0.5, None])        # an epoch without a test result
    assert fig6_points(h, "test_acc")[0].tolist() == [50]


def test_plain_left_resnets_right_dashed_training_bold_test():
    fig = plot_fig6(PLAIN, RESNET)
    left, right = fig.axes[:2]
    assert "plain" in left.get_title() and "ResNet" in right.get_title()
    assert set(_lines(left)) == {f"{n}: {k} error" for n in PLAIN for k in ("training", "test")}
    assert set(_lines(right)) == {f"{n}: {k} error" for n in RESNET for k in ("training", "test")}
    for ax in (left, right):
        assert ax.get_ylabel() == "error (%)" and "iterations" in ax.get_xlabel()
        for label, line in _lines(ax).items():
            if label.endswith("training error"):
                assert line.get_linestyle() == "--"
            else:
                assert line.get_linestyle() == "-"
        train = [l for n, l in _lines(ax).items() if n.endswith("training error")]
        test = [l for n, l in _lines(ax).items() if n.endswith("test error")]
        assert max(l.get_linewidth() for l in train) < min(l.get_linewidth() for l in test)
    line = _lines(right)["ResNet-56 (A): test error"]
    assert line.get_xdata().tolist() == [50, 100, 150]
    assert np.allclose(line.get_ydata(), [70, 40, 30])
    matplotlib.pyplot.close(fig)


def test_one_colour_per_depth_in_both_panels_and_a_legend_that_says_so():
    fig = plot_fig6(PLAIN, RESNET)
    left, right = fig.axes[:2]
    colour = lambda ax, name: _lines(ax)[f"{name}: test error"].get_color()
    assert colour(left, "plain-20") == colour(right, "ResNet-20 (A)")
    assert colour(left, "plain-56") == colour(right, "ResNet-56 (A)")
    assert colour(left, "plain-20") != colour(left, "plain-56")
    assert _lines(left)["plain-20: training error"].get_color() == colour(left, "plain-20")
    for ax, names in ((left, PLAIN), (right, RESNET)):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert set(names) <= set(texts)
        assert "dashed: training error" in texts and "bold: test error" in texts
    assert left.get_ylim() == right.get_ylim() and left.get_ylim()[0] == 0
    matplotlib.pyplot.close(fig)


def test_histories_without_labels_are_named_from_their_configuration():
    fig = plot_fig6([PLAIN["plain-56"]], [RESNET["ResNet-56 (A)"]], title="budget")
    left, right = fig.axes[:2]
    assert "plain-56: test error" in _lines(left)
    assert "ResNet-56 (A): test error" in _lines(right)
    assert fig._suptitle.get_text() == "budget"
    matplotlib.pyplot.close(fig)


def test_it_draws_into_given_axes():
    fig, axes = matplotlib.pyplot.subplots(2, 2)
    out = plot_fig6(PLAIN, RESNET, axes=axes[1], ylim=(0, 100))
    assert out is fig and axes[1][0].get_ylim() == (0, 100)
    assert not axes[0][0].get_lines() and _lines(axes[1][1])
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("bad", [{"x": History()}])
def test_a_run_without_epochs_draws_nothing_and_fails_nothing(bad):
    fig = plot_fig6(bad, RESNET)
    assert all(len(l.get_xdata()) == 0 for l in fig.axes[0].get_lines())
    matplotlib.pyplot.close(fig)
