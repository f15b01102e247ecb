"""The probes of notebook 07 ("why it works"), each checked against an oracle.

- filter normalisation gives each filter of the direction the norm of the weights' filter;
- on a quadratic toy model the 1-D loss slice is the parabola computed by hand;
- the gradient-correlation probe gives exactly 1 for a linear model;
- the gradients of the paths of each length add up to the full gradient;
- a layer's response std is the BN scale it was given, when BN normalises with the data's statistics.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_nb import cifar_resnet, make_synthetic, plain_net
from resnet_nb.data import Batches, normalize
from resnet_nb.probes import (LossSlice, LossSurface, SampledPaths, _local_minima,
                              _loss_and_accuracy, filter_normalized_direction,
                              gradient_correlation, layer_responses, loss_slice, loss_surface,
                              path_gradient_terms, path_length_gradients, sampled_path_gradients,
                              with_batch_statistics)

class _Fixed(nn.Module):
    def __init__(self, dtype=None):
        super().__init__()
        self.w = torch.randn(12, 10, generator=torch.Generator().manual_seed(3))
        self.dtype = dtype

    def forward(self, x):
        out = x.flatten(1) @ self.w
        return out.to(self.dtype) if self.dtype else out


class _Identity(nn.Module):                       # no `name`: the probe falls back on the class
    def forward(self, x):
        return x.flatten(1)


class _Square(nn.Module):
    """z(x) = x^2 / 2, flattened: df/dx = readout * x, by hand."""
    name = "square"

    def forward(self, x):
        return (x * x / 2).flatten(1)


def _pearson_mean(grads, lag):
    return float(np.mean([np.corrcoef(grads[i], grads[i + lag])[0, 1]
                          for i in range(len(grads) - lag)]))


def _resnet8_probe():
    data = make_synthetic(8, 10, seed=0)
    x, y = normalize(data.train.images), data.train.labels
    torch.manual_seed(0)
    model = cifar_resnet(8)
    for m in model.modules():               # give every block a residual branch that counts
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return with_batch_statistics(model, x), x, y




def _images(n=16, seed=0):
    data = make_synthetic(n, 10, seed=seed)
    return normalize(data.train.images), data.train.labels


# --- filter normalisation --------------------------------------------------------------------

def test_filter_normalisation_gives_every_filter_the_norm_of_the_weights_filter():
    torch.manual_seed(0)
    model = cifar_resnet(8)
    d = filter_normalized_direction(model, seed=3)
    params = dict(model.named_parameters())
    assert set(d) == set(params)
    checked = 0
    for name, p in params.items():
        assert d[name].shape == p.shape
        if p.dim() <= 1:                                     # biases, BN scales and shifts
            assert torch.count_nonzero(d[name]) == 0, name
            continue
        want = p.detach().flatten(1).norm(dim=1)             # one norm per filter (output channel)
        got = d[name].flatten(1).norm(dim=1)
        assert torch.allclose(got, want, rtol=1e-5), name
        checked += 1
    assert checked == 1 + 2 * 3 + 1                          # stem conv, 6 block convs, fc
    # The fc layer's filters are its rows: one per output neuron.
    assert d["fc.weight"].flatten(1).norm(dim=1).shape == (10,)
    # Seeded: the same seed gives the same direction, another seed another one.
    assert all(torch.equal(d[k], v) for k, v in filter_normalized_direction(model, 3).items())
    assert not torch.equal(filter_normalized_direction(model, 4)["fc.weight"], d["fc.weight"])
    # The direction is random, not the weights themselves.
    w = params["stage1.0.conv1.weight"].detach()
    assert F.cosine_similarity(d["stage1.0.conv1.weight"].flatten(), w.flatten(), dim=0) < 0.2


def test_twins_get_the_same_draw_scaled_to_their_own_filters():
    torch.manual_seed(0)
    res = cifar_resnet(8)
    torch.manual_seed(1)
    plain = plain_net(8)
    dr, dp = filter_normalized_direction(res, 0), filter_normalized_direction(plain, 0)
    name = "stage2.0.conv2.weight"
    unit = lambda t: t.flatten(1) / t.flatten(1).norm(dim=1, keepdim=True)
    assert torch.allclose(unit(dr[name]), unit(dp[name]), atol=1e-6)
    assert not torch.allclose(dr[name], dp[name])


# --- loss slices -------------------------------------------------------------------------------

def _quadratic_problem():
    """A linear model W x with a squared-error loss: the loss is exactly quadratic in W."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randn(64, 3, generator=g, dtype=torch.float64)
    model = nn.Linear(5, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 5, generator=g, dtype=torch.float64))
    loss_fn = lambda out, target, reduction="sum": ((out - target) ** 2).sum()
    return model, x, y, loss_fn


def test_the_slice_of_a_quadratic_is_the_parabola_computed_by_hand():
    model, x, y, loss_fn = _quadratic_problem()
    d = filter_normalized_direction(model, seed=1)["weight"]
    alphas = torch.linspace(-2, 2, 9).tolist()
    s = loss_slice(model, {"weight": d}, alphas, x, y, loss_fn=loss_fn)
    W = model.weight.detach()
    # L(a) = mean_i ||(W + a D) x_i - y_i||^2 = c + b a + a^2 a2, term by term:
    r, dx = x @ W.T - y, x @ d.T
    c, b, a2 = (r ** 2).sum(1).mean(), 2 * (r * dx).sum(1).mean(), (dx ** 2).sum(1).mean()
    for alpha, loss in zip(s.alphas, s.loss):
        assert loss == pytest.approx(float(c + b * alpha + a2 * alpha ** 2), rel=1e-9)
    assert all(math.isnan(a) for a in s.accuracy)              # regression: no classes
    assert s.images == 64 and len(s.loss) == 9
    assert torch.equal(model.weight.detach(), W)               # the model was not moved


def test_at_the_least_squares_minimum_the_slice_is_a_parabola_centred_on_zero():
    model, x, y, loss_fn = _quadratic_problem()
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    d = filter_normalized_direction(model, seed=2)
    s = loss_slice(model, d, [-1.0, -0.5, 0.0, 0.5, 1.0], x, y, loss_fn=loss_fn)
    assert min(s.loss) == s.loss[2]
    assert s.loss[0] == pytest.approx(s.loss[4], rel=1e-9)     # symmetric: no linear term
    assert s.loss[0] - s.loss[2] == pytest.approx(4 * (s.loss[3] - s.loss[2]), rel=1e-9)


def test_surface_row_through_zero_is_the_slice_and_the_model_is_untouched():
    torch.manual_seed(0)
    model = cifar_resnet(8).eval()
    x, y = _images(16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d1, d2 = filter_normalized_direction(model, 0), filter_normalized_direction(model, 1)
    alphas, betas = [-0.5, 0.0, 0.5], [-0.25, 0.0, 0.25]
    surf = loss_surface(model, d1, d2, alphas, betas, x, y)
    line = loss_slice(model, d1, alphas, x, y)
    assert [row[1] for row in surf.loss] == pytest.approx(list(line.loss), rel=1e-5)
    with torch.no_grad():
        centre = F.cross_entropy(model(x), y).item()
    assert surf.loss[1][1] == pytest.approx(centre, rel=1e-5) == line.loss[1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(surf.loss) == 3 and len(surf.loss[0]) == 3
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).float().mean().item()
    assert [row[1] for row in surf.accuracy] == list(line.accuracy)
    assert surf.accuracy[1][1] == pytest.approx(correct)


def test_local_minima_count_the_basins_of_a_slice_and_of_a_surface():
    one = LossSlice("bowl", (-1, 0, 1), (4.0, 1.0, 4.0), (0, 0, 0), 1)
    bumpy = LossSlice("bumps", tuple(range(7)), (5.0, 2.0, 3.0, 1.0, 4.0, 4.5, 4.2), (0,) * 7, 1)
    assert one.local_minima == 1 and bumpy.local_minima == 3      # at 1, 3 and the right end
    a = (-1.0, 0.0, 1.0)
    bowl = LossSurface("bowl", a, a, tuple(tuple(x * x + y * y for y in a) for x in a),
                       ((0,) * 3,) * 3, 1)
    assert bowl.local_minima == 1
    egg = LossSurface("two", a, a, ((0.5, 2, 3), (2, 4, 2), (3, 2, 0.5)), ((0,) * 3,) * 3, 1)
    assert egg.local_minima == 2                                  # two corners


# --- shattered gradients ---------------------------------------------------------------------

def test_the_gradient_correlation_of_a_linear_model_is_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    x0, x1 = torch.randn(3, 8, 8), torch.randn(3, 8, 8)
    r = gradient_correlation(model, x0, x1, points=33)
    assert r.lags == (1, 2, 4, 8, 16)
    assert r.correlation == pytest.approx([1.0] * 5, abs=1e-9)
    # df/dt along the line is constant: the readout of W (x1 - x0).
    assert max(r.derivative) - min(r.derivative) < 1e-6 * max(abs(v) for v in r.derivative)
    assert r.t[0] == 0 and r.t[-1] == 1 and len(r.derivative) == 33


def test_gradients_of_a_deep_plain_network_decorrelate_faster_than_of_its_residual_twin():
    # Balduzzi et al. 2017: at initialisation, a deep feedforward network's gradients at nearby
    # inputs are much less correlated than those of a residual network of the same depth.
    x, _ = _images(32)
    corr = {}
    for shortcut in ("none", "A"):
        torch.manual_seed(0)
        model = with_batch_statistics(cifar_resnet(56, shortcut), x)
        corr[shortcut] = gradient_correlation(model, x[0], x[1], points=32).neighbour_correlation
    assert corr["none"] < corr["A"] - 0.2, corr


def test_batch_statistics_leave_the_model_alone():
    torch.manual_seed(0)
    model = cifar_resnet(8)
    x, _ = _images(16)
    probe = with_batch_statistics(model, x)
    assert float(model.stem[1].running_var.mean()) == 1.0          # untouched
    assert not probe.training and float(probe.stem[1].running_var.mean()) != 1.0


# --- effective paths ---------------------------------------------------------------------------

def _full_gradient(model, images, labels):
    """dL/dx_1 at the input of the first block, per image, by ordinary backpropagation."""
    model = model.eval()
    with torch.no_grad():
        x1 = model.stem(images)
    x1.requires_grad_(True)
    x = x1
    for block in model.blocks:
        x = block(x)
    out = model.fc(F.adaptive_avg_pool2d(model.final_act(x), 1).flatten(1))
    return torch.autograd.grad(F.cross_entropy(out, labels), x1)[0] * len(images)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_the_paths_of_all_lengths_add_up_to_the_full_gradient(shortcut):
    x, y = _images(8)
    torch.manual_seed(0)
    model = with_batch_statistics(cifar_resnet(14, shortcut), x)   # 6 blocks, 2 of them /2
    terms = path_gradient_terms(model, x, y)
    full = _full_gradient(model, x, y)
    assert len(terms) == 7 and terms[0].shape == full.shape
    assert float((sum(terms) - full).norm() / full.norm()) < 1e-5
    summary = path_length_gradients(model, x, y)
    assert summary.blocks == 6 and summary.lengths == tuple(range(7))
    assert summary.total == pytest.approx(float(full.flatten(1).norm(dim=1).mean()), rel=1e-5)


def test_a_plain_network_has_one_path_through_every_block():
    x, y = _images(8)
    torch.manual_seed(0)
    model = with_batch_statistics(plain_net(14), x)
    terms = path_gradient_terms(model, x, y)
    assert all(float(t.abs().max()) == 0 for t in terms[:-1])
    assert torch.allclose(terms[-1], _full_gradient(model, x, y), rtol=1e-4, atol=1e-7)


def test_sampled_single_paths_match_the_exact_terms_where_a_length_has_one_path():
    x, y = _images(8)
    torch.manual_seed(0)
    model = with_batch_statistics(cifar_resnet(8), x)               # 3 blocks: 8 paths
    exact = path_length_gradients(model, x, y)
    sampled = sampled_path_gradients(model, x, y, samples=3)
    assert sampled.lengths == (0, 1, 2, 3) and sampled.blocks == 3
    # Length 0 and length n have one path each: every sample is that path.
    assert sampled.per_path[0] == pytest.approx(exact.norm[0], rel=1e-5)
    assert sampled.per_path[3] == pytest.approx(exact.norm[3], rel=1e-5)
    assert sampled.total[1] == pytest.approx(3 * sampled.per_path[1])
    assert sampled.samples == 3 and sampled.images == 8


# --- layer responses ---------------------------------------------------------------------------

def test_a_response_std_is_the_bn_scale_when_bn_uses_the_datas_statistics():
    torch.manual_seed(0)
    model = cifar_resnet(8)
    data = make_synthetic(64, 64, seed=0)
    images = normalize(data.test.images)
    bns = [model.stem[1]] + [bn for b in model.blocks for bn in (b.bn1, b.bn2)]
    scales = [0.5 + 0.25 * i for i in range(len(bns))]
    with torch.no_grad():
        for bn, c in zip(bns, scales):
            bn.weight.fill_(c)
            bn.bias.zero_()
    model = with_batch_statistics(model, images)        # BN statistics: those of these images
    r = layer_responses(model, Batches(data.test, 64))
    assert r.layers == ("stem", "1.1a", "1.1b", "2.1a", "2.1b", "3.1a", "3.1b")
    assert r.images == 64
    # Each channel is normalised to mean 0, variance 1 (BN keeps the unbiased variance,
    # hence the small factor), then scaled by c: the response std is c.
    for std, c in zip(r.std, scales):
        assert std == pytest.approx(c, rel=0.02)
    assert r.sorted_std == tuple(sorted(r.std, reverse=True))


def test_layer_responses_need_the_original_blocks_and_restore_the_mode():
    model = cifar_resnet(8).train()
    data = make_synthetic(16, 16)
    layer_responses(model, Batches(data.test, 16))
    assert model.training
    with pytest.raises(ValueError, match="preact=False"):
        layer_responses(cifar_resnet(8, preact=True), Batches(data.test, 16))


def test_a_geometric_decay_is_fitted_exactly_and_moves_the_peak_to_short_paths():
    n = 27
    for r in (1.0, 0.5, 0.25):
        s = SampledPaths("toy", n, tuple(range(n + 1)), tuple(3.0 * r ** k for k in range(n + 1)),
                         samples=1, images=1)
        assert s.decay == pytest.approx(r, rel=1e-9)
        # C(n, k) r^k peaks where k / (n - k + 1) ~ r: n/2 for r = 1, ~n r / (1 + r) below.
        assert abs(s.peak_length - n * r / (1 + r)) <= 1


def test_gradient_correlation_equals_a_hand_computation_on_a_quadratic():
    # kills gradient_correlation 21, 22, 24, 25, 26 (the line x(t)), 72 (df/dt), 74, 75 (centring)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 3, 4, generator=g) + torch.tensor([[1.0], [-2.0]]).view(2, 1, 1)
    r = torch.randn(12, generator=g)
    points = 9
    res = gradient_correlation(_Square(), x0, x1, points, readout=r)
    ts = np.linspace(0, 1, points)
    a0, a1, rn = x0.double().flatten().numpy(), x1.double().flatten().numpy(), r.double().numpy()
    grads = [rn * ((1 - t) * a0 + t * a1) for t in ts]              # df/dx at x(t), by hand
    assert res.t == pytest.approx(tuple(ts), abs=1e-7)
    assert res.derivative == pytest.approx([float(gr @ (a1 - a0)) for gr in grads], rel=1e-5)
    assert res.lags == (1, 2, 4)
    assert res.correlation == pytest.approx([_pearson_mean(grads, l) for l in (1, 2, 4)],
                                            abs=1e-6)
    assert res.model_name == "square"                      # kills 115, 125, 131, 132


def test_gradient_correlation_default_readout_is_the_seeded_unit_vector():
    # f = readout . x: the gradient is the readout itself, at every point; kills 43, 45, 48, 50,
    # 51 (readout's shape), 54 (its norm), 58 (out / readout), 127, 133 (the fallback name)
    x0, x1 = torch.zeros(2, 2, 2), torch.ones(2, 2, 2)
    torch.manual_seed(12345)         # the readout must not come from torch's global generator
    res = gradient_correlation(_Identity(), x0, x1, points=5)
    r = torch.randn(8, generator=torch.Generator().manual_seed(0))
    r = r / r.norm()
    assert res.derivative == pytest.approx([float(r.sum())] * 5, rel=1e-5)
    assert res.correlation == pytest.approx([1.0, 1.0], abs=1e-9)
    assert res.model_name == "_Identity"


def test_gradient_correlation_lags_double_while_half_the_inputs_form_pairs():
    # points = 32: lag 16 would leave 16 of 32 inputs in pairs... 31 // 2 = 15 < 16; kills 100
    res = gradient_correlation(_Identity(), torch.zeros(4), torch.ones(4), points=32)
    assert res.lags == (1, 2, 4, 8)
    res = gradient_correlation(_Identity(), torch.zeros(4), torch.ones(4), points=33)
    assert res.lags == (1, 2, 4, 8, 16)


def test_sampled_paths_depend_on_the_seed_alone_and_keep_the_lengths_asked_for():
    # kills sampled_path_gradients 1 (default seed), 15, 21 (lengths), 22, 42, 44 (generator), 64
    model, x, y = _resnet8_probe()
    torch.manual_seed(1)
    a = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2))
    torch.manual_seed(2)
    b = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2), seed=0)
    assert a.lengths == (1, 2) and len(a.per_path) == 2
    assert a.per_path == b.per_path                # the paths come from `seed`, not torch's RNG
    c = sampled_path_gradients(model, x, y, samples=2, lengths=(1, 2), seed=1)
    assert c.per_path != a.per_path                # ... and another seed picks other paths
    assert a.model_name == model.name


def test_path_probes_leave_the_model_as_it_was():
    # _eval_copy 3: a shallow copy would put the caller's model in eval mode and freeze it
    model, x, y = _resnet8_probe()
    model.train()
    exact = path_length_gradients(model, x, y)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert exact.model_name == model.name and exact.images == 8   # path_length_gradients 8, 12


def test_with_batch_statistics_restores_the_default_momentum():
    # with_batch_statistics 7, 8: the copy trains on like any other model (momentum 0.1)
    model = cifar_resnet(8)
    probe = with_batch_statistics(model, torch.randn(4, 3, 32, 32))
    assert {m.momentum for m in probe.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_loss_and_accuracy_is_the_mean_over_all_images(dtype):
    # kills _loss_and_accuracy 3, 21 (half-precision outputs), 22, 34, 35, 37, 40, 42
    g = torch.Generator().manual_seed(4)
    x = torch.randn(7, 3, 2, 2, generator=g)
    model = _Fixed(dtype)
    out = model(x).float()
    y = out.argmax(1)
    y[:3] = (y[:3] + 1) % 10                            # 4 of 7 right, by construction
    loss, acc = _loss_and_accuracy(model, x, y, F.cross_entropy, batch_size=3)
    assert loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert acc == pytest.approx(4 / 7)


def test_local_minima_are_strict_and_look_along_rows_too():
    # _local_minima 17 (the row neighbours skipped), 26 (ties counted as minima)
    assert _local_minima(np.zeros((3, 3))) == 0
    z = np.array([[5.0, 5.0, 5.0], [0.0, 1.0, 0.5], [5.0, 5.0, 5.0]])
    assert _local_minima(z) == 2       # (1, 0) and (1, 2); (1, 1) is above its row neighbours
