"""The residual formulation's identities hold on real networks, and the demos measure what they say."""
import math

import pytest
import torch

from resnet_nb import cifar_resnet
from resnet_nb.blocks import BasicBlock
from resnet_nb.formulation import (DenselyConnected, fit_map, identity_fit_stacks, jvp_check,
                                   path_length_terms, path_terms, residual_decomposition)


def _stage1(preact: bool, depth: int = 20):
    torch.manual_seed(0)
    model = cifar_resnet(depth, preact=preact).eval()
    with torch.no_grad():
        x = model.stem(torch.randn(2, 3, 32, 32))
    return list(model.stage1), x


def test_eq4_and_eq5_hold_exactly_for_preactivation_blocks_only():
    blocks, x = _stage1(preact=True)
    x_L, branch_sum = residual_decomposition(blocks, x)
    assert torch.allclose(x_L, x + branch_sum, atol=1e-5)
    v = torch.randn_like(x)
    assert jvp_check(blocks, x, v)["relative_error"] < 1e-5
    # After-addition ReLUs (the original block) break the identity term of eq. 5.
    post, xp = _stage1(preact=False)
    assert jvp_check(post, xp, torch.randn_like(xp))["relative_error"] > 0.1


def test_paths_sum_to_the_jacobian_vector_product():
    blocks, x = _stage1(preact=True)
    v = torch.randn_like(x)
    full = jvp_check(blocks, x, v)["lhs"].detach()
    terms = path_terms(blocks, x, v)
    assert len(terms) == 2 ** len(blocks)
    assert torch.equal(terms[()], v)                      # the path through every shortcut
    rel = lambda a: float((a.detach() - full).norm() / full.norm())
    assert rel(sum(terms.values())) < 1e-5
    by_length = path_length_terms(blocks, x, v)
    assert len(by_length) == len(blocks) + 1
    assert rel(sum(by_length)) < 1e-5
    for k in range(len(blocks) + 1):
        same_k = sum(t for p, t in terms.items() if len(p) == k)
        assert torch.allclose(same_k, by_length[k], rtol=1e-4, atol=1e-4)
        assert sum(len(p) == k for p in terms) == math.comb(len(blocks), k)


def test_a_block_with_zero_residual_is_the_identity_on_relu_outputs():
    block = BasicBlock(8, 8).eval()
    torch.nn.init.zeros_(block.bn2.weight)
    torch.nn.init.zeros_(block.bn2.bias)
    x = torch.relu(torch.randn(2, 8, 5, 5))
    assert torch.equal(block(x), x)


@pytest.mark.slow
def test_identity_fit_stacks_share_weights_and_residual_fits_the_identity_better():
    torch.manual_seed(0)
    plain, residual = identity_fit_stacks(8, 2)
    for a, b in zip(plain.state_dict().values(), residual.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.relu(torch.randn(128, 8, 6, 6))
    lp = fit_map(plain, x, steps=60, batch_size=32)
    lr = fit_map(residual, x, steps=60, batch_size=32)
    assert len(lp) == len(lr) == 60
    assert lr[-1] < lp[-1]


def test_concatenation_grows_channels_and_parameters():
    dense = DenselyConnected(16, growth=16, layers=3)
    assert dense(torch.zeros(1, 16, 8, 8)).shape == (1, 64, 8, 8)
    assert sum(p.numel() for p in dense.parameters()) == (16 + 32 + 48) * 16 * 9
