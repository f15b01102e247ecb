import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from resnet_nb import cifar_resnet, make_synthetic, plain_net  # noqa: E402
from resnet_nb import viz  # noqa: E402
from resnet_nb.metrics import confusion_matrix  # noqa: E402


def test_architecture_blocks_of_resnet20_option_a():
    blocks = viz.architecture_blocks(cifar_resnet(20))
    assert len(blocks) == 9 and [b.stage for b in blocks] == [1] * 3 + [2] * 3 + [3] * 3
    assert [b.shortcut for b in blocks] == ["identity"] * 3 + (["zero-pad"] + ["identity"] * 2) * 2
    assert blocks[3].in_shape == (16, 32, 32) and blocks[3].out_shape == (32, 16, 16)
    assert blocks[6].in_shape == (32, 16, 16) and blocks[6].out_shape == (64, 8, 8)
    # 2 convolutions of 3x3x16x16 and 2 BNs of 16 channels
    assert blocks[0].parameters == 2 * 9 * 16 * 16 + 2 * 2 * 16


@pytest.mark.parametrize("option, first_of_stage, other", [("B", "projection", "identity"),
                                                           ("C", "projection", "projection"),
                                                           ("none", "none", "none")])
def test_architecture_blocks_follow_the_shortcut_option(option, first_of_stage, other):
    blocks = viz.architecture_blocks(cifar_resnet(14, option))
    assert blocks[2].shortcut == blocks[4].shortcut == first_of_stage
    assert blocks[1].shortcut == blocks[3].shortcut == other


def test_architecture_blocks_see_the_shortcut_switch():
    model = cifar_resnet(8).set_shortcuts(False)
    assert {b.shortcut for b in viz.architecture_blocks(model)} == {"off"}
    fig = viz.plot_architecture(model)
    assert "shortcuts switched off" in fig.axes[0].get_title()
    assert "shortcut off" in " ".join(t.get_text() for t in fig.axes[0].texts)
    matplotlib.pyplot.close(fig)


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title])


@pytest.mark.parametrize("model", [cifar_resnet(20), cifar_resnet(110, "B"), plain_net(8)])
def test_plot_architecture_names_every_stage_and_its_shape(model):
    fig = viz.plot_architecture(model)
    text = _texts(fig)
    n = model.config.blocks_per_stage
    for s, shape in ((1, "16x32x32"), (2, "32x16x16"), (3, "64x8x8")):
        assert f"stage {s}: {n} blocks, {shape}" in text
    assert model.name in text
    if n > 3:
        assert f"{n - 3} more" in text
    matplotlib.pyplot.close(fig)


def test_image_figures_run_and_label_their_axes():
    data = make_synthetic(60, 20)
    classes = [f"class {i}" for i in range(10)]
    figs = [viz.show_examples_per_class(data.train, classes, per_class=3),
            viz.show_augmentations(data.train.images[:2], [data.train.images[:2]] * 2),
            viz.show_channels(torch.zeros(4, 8, 8)),
            viz.show_misclassified(data.test.images, data.test.labels,
                                   (data.test.labels + 1) % 10, classes, n=5)]
    cm = confusion_matrix(data.test.labels, data.test.labels)
    fig = viz.plot_confusion_matrix(cm, classes)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "100" in _texts(fig)
    assert "5 of 20" in figs[-1]._suptitle.get_text()
    for f in figs + [fig]:
        matplotlib.pyplot.close(f)


def _shown(ax):
    """The pixels an axes shows, as a (C, H, W) tensor (C = 1 for a grey map)."""
    a = torch.as_tensor(np.asarray(ax.images[0].get_array()))
    return a.permute(2, 0, 1) if a.dim() == 3 else a[None]


def test_examples_per_class_shows_images_of_that_class_in_its_row():
    data = make_synthetic(60, 20)
    classes = [f"class {i}" for i in range(10)]
    fig = viz.show_examples_per_class(data.train, classes, per_class=3)
    axes = fig.axes
    assert len(axes) == 30
    for i, ax in enumerate(axes):
        k = i // 3                                    # row k: class k
        pixels = _shown(ax)
        of_class = data.train.images[data.train.labels == k]
        assert any(torch.equal(pixels, img) for img in of_class), f"row {k}, column {i % 3}"
        assert ax.get_title() == (classes[k] if i % 3 == 0 else "")
    # Three different images per class, not one repeated.
    assert all(not torch.equal(_shown(axes[3 * k]), _shown(axes[3 * k + 1])) for k in range(10))
    matplotlib.pyplot.close(fig)


def test_augmentations_figure_shows_each_original_then_its_versions():
    data = make_synthetic(10, 10)
    originals = data.train.images[:2]
    versions = [torch.flip(originals, dims=[-1]), originals.roll(3, dims=-2)]
    fig = viz.show_augmentations(originals, versions, labels=["cat", "dog"])
    axes = fig.axes
    assert len(axes) == 6                              # 2 rows of original + 2 versions
    for row in range(2):
        assert torch.equal(_shown(axes[3 * row]), originals[row])
        for j in range(2):
            assert torch.equal(_shown(axes[3 * row + 1 + j]), versions[j][row])
    assert [ax.get_title() for ax in axes] == ["cat", "augmented 1", "augmented 2", "dog", "", ""]
    matplotlib.pyplot.close(fig)


def test_channels_figure_scales_each_channel_and_marks_zero_channels():
    maps = torch.randn(5, 6, 6, generator=torch.Generator().manual_seed(0))
    maps[3] = 0                                        # a padded channel (option A)
    fig = viz.show_channels(maps, title="five channels", ncols=4)
    axes = fig.axes
    assert len(axes) == 8 and [ax.axison for ax in axes[5:]] == [False] * 3
    for c in range(5):
        ax = axes[c]
        assert torch.allclose(_shown(ax)[0].double(), maps[c].double())
        lo, hi = ax.images[0].get_clim()
        if c == 3:
            assert (lo, hi) == (0.0, 1.0) and ax.title.get_color() == "tab:orange"
        else:
            assert (lo, hi) == pytest.approx((float(maps[c].min()), float(maps[c].max())))
            assert ax.title.get_color() == "black"
        assert ax.get_title() == str(c)
    assert fig._suptitle.get_text() == "five channels"
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("model", [cifar_resnet(56, "B"), plain_net(20)])
def test_the_lab_draws_the_architecture_as_notebook_03_does(model):
    """Notebooks 03 and 05 show one drawing: the lab's (on a pyplot-free Figure) has the same
    boxes, labels, arcs and colours as plot_architecture's."""
    from matplotlib.figure import Figure
    ours, labs = viz.plot_architecture(model), viz.plot_architecture(model, pyplot=False)
    assert type(labs) is Figure            # not a pyplot figure: safe to redraw from a thread
    assert _texts(ours) == _texts(labs)
    arcs = lambda f: [(p.get_edgecolor(), p.get_linestyle()) for p in f.axes[0].patches
                      if type(p).__name__ == "Arc"]
    assert arcs(ours) == arcs(labs)
    assert len(arcs(ours)) == (0 if model.config.shortcut == "none" else 9)   # 3 blocks shown per stage
    assert labs.get_size_inches().tolist() == ours.get_size_inches().tolist()
    matplotlib.pyplot.close(ours)
