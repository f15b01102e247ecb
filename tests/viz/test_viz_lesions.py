"""The lesion figure (notebook 06, view 4) names everything it draws, and says what a lesion does."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from resnet_nb.probes import LesionResult  # noqa: E402
from resnet_nb.viz_lab import LESION_XLABEL, figure_png, plot_lesions  # noqa: E402

DOWN = tuple(i in (3, 6) for i in range(9))          # blocks 4 and 7 downsample (ResNet-20)
RESULTS = {"ResNet-20 (A)": LesionResult("ResNet-20 (A)", 0.5, (0.15, 0.25, 0.43, 0.45, 0.41,
                                                                 0.48, 0.40, 0.42, 0.45), DOWN),
           "plain-20": LesionResult("plain-20", 0.44, (0.11, 0.13, 0.11, 0.13, 0.10, 0.12,
                                                       0.11, 0.22, 0.06), DOWN)}


def _legend(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_curves_are_the_measured_accuracies_in_percent():
    fig = plot_lesions(RESULTS)
    lines = {l.get_label(): l for l in fig.axes[0].get_lines()}
    res = lines["ResNet-20 (A): one block removed"]
    assert list(res.get_xdata()) == list(range(1, 10))
    assert res.get_ydata() == pytest.approx([100 * a for a in RESULTS["ResNet-20 (A)"].lesioned_acc])
    assert lines["plain-20: one block removed"].get_linestyle() == "--"
    assert lines["chance (10%)"].get_ydata() == pytest.approx([10, 10])


def test_downsampling_blocks_and_chance_are_in_the_legend_not_on_the_curves():
    fig = plot_lesions(RESULTS)
    ax = fig.axes[0]
    legend = _legend(fig)
    assert "chance (10%)" in legend
    assert any(t.startswith("downsampling block") and t.endswith(": 4, 7") for t in legend)
    # No cryptic markers or labels drawn inside the axes, where they would overlap the curves.
    assert [t.get_text() for t in ax.texts] == []
    # The two downsampling blocks are shaded, centred on blocks 4 and 7.
    spans = [p for p in ax.patches if p.get_facecolor()[3] < 1]
    centres = sorted(round(p.get_x() + p.get_width() / 2, 3) for p in spans)
    assert centres == [4.0, 7.0]
    png = figure_png(fig)
    assert png[:4] == b"\x89PNG"


def test_the_axis_says_what_removing_a_block_does_in_either_network():
    ax = plot_lesions(RESULTS).axes[0]
    assert ax.get_xlabel() == LESION_XLABEL
    # F(x) = 0 describes only the residual network's lesion, not the plain one's.
    assert "F(x) = 0" not in LESION_XLABEL
    assert "plain" in LESION_XLABEL and "shortcut" in LESION_XLABEL
    assert ax.get_ylabel() == "test accuracy (%)"


def test_blocks_switched_off_and_the_combined_result():
    fig = plot_lesions(RESULTS, off=(1, 3), current={"ResNet-20 (A)": 0.3, "plain-20": 0.1})
    legend = _legend(fig)
    assert "switched off by you: 2, 4" in legend
    assert "ResNet-20 (A): your blocks removed" in legend
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "yours"
    star = {l.get_label(): l for l in ax.get_lines()}["plain-20: your blocks removed"]
    assert list(star.get_xdata()) == [10] and star.get_ydata() == pytest.approx([10])
