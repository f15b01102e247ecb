"""The residual formulation in code: the experiments of notebook 02.

    identity_fit_stacks(...)      the same k blocks with and without identity shortcuts
    fit_map(model, inputs, ...)   train a network to reproduce its input (the identity map)
    residual_decomposition(...)   x_L and x_l + sum_i F(x_i) for a chain of blocks (eq. 4)
    jvp_check(...)                d x_L / d x_l  v  versus  v + d/dx_l sum_i F(x_i) v  (eq. 5)
    path_terms(...)               the Jacobian-vector product, one term per path (Veit et al.)
    path_length_terms(...)        the same, summed over the paths of each length
    DenselyConnected              concatenation instead of addition (DenseNet's idea)

Equations are those of He et al. (2016), "Identity Mappings in Deep Residual
Networks": with identity shortcuts and nothing after the addition (the
pre-activation block), x_{i+1} = x_i + F(x_i), so

    x_L = x_l + sum_{i=l}^{L-1} F(x_i)                                  (their eq. 4)
    d x_L / d x_l = I + d/dx_l sum_{i=l}^{L-1} F(x_i)                    (their eq. 5)
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, NoShortcut


def _jvp():
    """torch.func.jvp (forward-mode autodiff), imported without its FutureWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from torch.func import jvp
        jvp(torch.sin, (torch.zeros(1),), (torch.ones(1),))   # its lazy imports warn on first use
    return jvp


def identity_fit_stacks(channels: int = 16, blocks: int = 4) -> tuple[nn.Sequential,
                                                                      nn.Sequential]:
    """Two networks of `blocks` BasicBlocks (2 conv layers each): plain, and residual.

    The same code with one argument changed: the plain stack's blocks get
    NoShortcut(), the residual stack's the identity. Both start from the same
    weights, so any difference comes from the shortcut alone.
    (N, channels, H, W) -> (N, channels, H, W).
    """
    residual = nn.Sequential(*[BasicBlock(channels, channels) for _ in range(blocks)])
    plain = nn.Sequential(*[BasicBlock(channels, channels, shortcut=NoShortcut())
                            for _ in range(blocks)])
    plain.load_state_dict(residual.state_dict())
    return plain, residual


def fit_map(model: nn.Module, inputs: torch.Tensor, target: Callable[[torch.Tensor],
            torch.Tensor] = lambda x: x, steps: int = 300, lr: float = 1e-3,
            batch_size: int = 64, seed: int = 0) -> list[float]:
    """Train `model` to map inputs to target(inputs) (default: the identity) with Adam.

    inputs: (N, C, H, W). Each step draws a mini-batch (seeded); the loss is the mean
    squared error. Returns the loss of every step; the model is trained in place.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(inputs), (batch_size,), generator=g)
        x = inputs[idx]
        loss = F.mse_loss(model(x), target(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@contextlib.contextmanager
def branch_only(block: nn.Module) -> Iterator[nn.Module]:
    """Inside the `with`, block(x) returns its residual branch: F(x) (+ 0 for the shortcut).

    Exact for a pre-activation block, which adds nothing after the sum. For a
    post-activation BasicBlock it gives relu(F(x)), since the ReLU follows the sum.
    """
    before = block.use_shortcut
    block.use_shortcut = False
    try:
        yield block
    finally:
        block.use_shortcut = before


def residual_decomposition(blocks: Sequence[nn.Module], x: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run x_l = x through the chain of blocks; return (x_L, sum_i F(x_i)).

    F(x_i) is the residual branch of block i at that block's actual input x_i,
    computed with the shortcut switched off. For identity shortcuts (eq. 4)
    x_L = x_l + sum_i F(x_i) exactly.
    """
    total = torch.zeros_like(x)
    for block in blocks:
        with branch_only(block):
            total = total + block(x)
        x = block(x)
    return x, total


@torch.no_grad()   # forward-mode AD needs no backward graph: 4x faster
def jvp_check(blocks: Sequence[nn.Module], x: torch.Tensor, v: torch.Tensor) -> dict:
    """Compare both sides of eq. 5 along a direction v, with forward-mode autodiff.

    Returns {"lhs": (d x_L/d x_l) v, "rhs": v + (d/dx_l sum_i F(x_i)) v,
    "identity_term": v, "relative_error": ||lhs - rhs|| / ||lhs||}.
    The blocks should be in eval mode (BN with fixed statistics), so that each
    image's output depends on that image alone.
    """
    jvp = _jvp()
    lhs = jvp(lambda t: residual_decomposition(blocks, t)[0], (x,), (v,))[1]
    branch = jvp(lambda t: residual_decomposition(blocks, t)[1], (x,), (v,))[1]
    rhs = v + branch
    return {"lhs": lhs, "rhs": rhs, "identity_term": v, "branch_term": branch,
            "relative_error": float((lhs - rhs).detach().norm() / lhs.detach().norm())}


@torch.no_grad()   # forward-mode AD needs no backward graph: 4x faster
def path_length_terms(blocks: Sequence[nn.Module], x: torch.Tensor, v: torch.Tensor
                      ) -> list[torch.Tensor]:
    """Split (d x_L / d x_l) v into the sums over paths of length k = 0, 1, ..., n.

    With x_{i+1} = x_i + F_i(x_i), the chain rule gives d x_L/d x_l = prod_i (I + J_i),
    J_i = dF_i/dx at x_i. Multiplying out the n factors gives 2**n products, one per
    path (Veit et al. 2016): a path of length k takes the J of k blocks and the
    identity of the others. terms[k] sums the C(n, k) paths of length k, built up
    block by block: after block i, terms[k] <- terms[k] + J_i terms[k-1].
    sum(terms) equals (d x_L / d x_l) v. Blocks in eval mode, identity shortcuts.
    """
    jvp = _jvp()
    terms = [v]
    for block in blocks:
        with branch_only(block):
            # J_i applied to each current term: one forward-mode product per term.
            moved = [jvp(block, (x,), (t,))[1] for t in terms]
        terms = [terms[0]] + [terms[k] + moved[k - 1] for k in range(1, len(terms))] \
            + [moved[-1]]
        x = block(x)
    return terms


@torch.no_grad()   # forward-mode AD needs no backward graph: 4x faster
def path_terms(blocks: Sequence[nn.Module], x: torch.Tensor, v: torch.Tensor
               ) -> dict[tuple[int, ...], torch.Tensor]:
    """Every one of the 2**n paths through n blocks, as its own Jacobian-vector product.

    The key is the tuple of blocks whose residual branch the path passes through
    (the others are passed on the shortcut); the value is J_{i_k} ... J_{i_1} v,
    each J_i = dF_i/dx taken at that block's input x_i on the forward pass.
    Summed, the terms equal (d x_L / d x_l) v. Meant for small n (2**n products).
    """
    from itertools import combinations

    jvp = _jvp()
    inputs = []
    for block in blocks:                    # the point x_i at which each J_i is taken
        inputs.append(x)
        x = block(x)
    terms = {}
    for k in range(len(blocks) + 1):
        for path in combinations(range(len(blocks)), k):
            t = v
            for i in path:                  # in the order the signal passes the blocks
                with branch_only(blocks[i]):
                    t = jvp(blocks[i], (inputs[i],), (t,))[1]
            terms[path] = t
    return terms


class DenselyConnected(nn.Module):
    """DenseNet's connection (Huang et al. 2017): concatenate, don't add.

    Layer i sees all earlier outputs stacked along the channels, so its input
    has in_channels + i * growth channels, and the output of the whole stack
    has in_channels + layers * growth. (N, C, H, W) -> (N, C + layers*growth, H, W).
    """

    def __init__(self, in_channels: int, growth: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels + i * growth, growth, 3, padding=1, bias=False)
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.cat([x, F.relu(conv(x))], dim=1)   # channels grow by `growth`
        return x
