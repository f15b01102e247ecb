"""Checkers for the notebooks' exercises whose answer is code.

Each checker takes the student's function or class, runs it on cases whose
right answer is known, and either returns a short success message or raises
`ExerciseError` (an AssertionError) whose message says what went wrong and
gives a hint, never the answer. In a notebook:

    from resnet_nb.exercises import check_loss_floor
    def loss_floor(num_classes, smoothing): ...
    check_loss_floor(loss_floor)          # 'correct: ...' or an explanation

Convention for every checker here (notebooks 01-05 add theirs below):
`check_<name>(answer) -> str`, deterministic (seeded), seconds at most on a CPU,
and a test in tests/exercises/test_exercises.py showing a right answer passes and a
typical wrong one fails.
"""
from __future__ import annotations

import math


class ExerciseError(AssertionError):
    """A wrong answer: the message says what was checked and how the answer differs."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ExerciseError(message)


def _passed(message: str) -> str:
    return f"correct: {message}"


# --- 02: the residual formulation ------------------------------------------------------

def _as_number(value, name: str) -> float:
    """A float from a student's answer: a number or a tensor of one element without a graph."""
    import torch
    if isinstance(value, torch.Tensor):
        _expect(value.numel() == 1, f"{name} returned a tensor of shape {tuple(value.shape)}, "
                                    "not one number")
        _expect(value.grad_fn is None, f"{name} returned a tensor that carries a graph. Hint: "
                                       "measure inside `with torch.no_grad():`.")
        return float(value)
    _expect(isinstance(value, (int, float)), f"{name} returned {value!r}, not a number")
    return float(value)


def check_distance_from_identity(distance_from_identity) -> str:
    """Exercise 02.1: distance_from_identity(stack, x) = ||stack(x) - x|| / ||x||.

    The norms are over the whole batch (all images, channels and pixels together); the stack
    is measured in the mode it is in (training mode normalises with the batch's statistics,
    as at the first step of a fit) and left in that mode; no graph is recorded.
    """
    import copy

    import torch
    from torch import nn

    from .blocks import BasicBlock

    class Affine(nn.Module):                 # x -> a x + b: known distances
        def __init__(self, a, b=0.0):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, x):
            return self.a * x + self.b

    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(4, 8, 6, 6, generator=g))
    x[0] *= 10                               # images of very different sizes
    cases = [(nn.Sequential(), 0.0, "an empty stack (it returns its input)"),
             (nn.Identity(), 0.0, "nn.Identity()"),
             (Affine(3.0), 2.0, "a stack that triples its input"),
             (Affine(0.0), 1.0, "a stack that outputs zeros")]
    for stack, want, what in cases:
        got = _as_number(distance_from_identity(stack, x.clone()), "distance_from_identity")
        _expect(abs(got - want) < 1e-5,
                f"for {what} you measured {got:.4g}, expected {want:g}. Hint: the norm of "
                "the difference stack(x) - x divided by the norm of x (not squared).")
    shift = Affine(1.0, 0.5)
    want = float((0.5 * torch.ones_like(x)).norm() / x.norm())
    got = _as_number(distance_from_identity(shift, x.clone()), "distance_from_identity")
    _expect(abs(got - want) < 1e-5 * max(want, 1),
            f"for a stack that adds 0.5 to every value you measured {got:.4g}, expected "
            f"{want:.4g}. Hint: take both norms over the whole batch at once "
            "((stack(x) - x).norm() / x.norm()), not image by image.")
    torch.manual_seed(0)
    for training in (True, False):
        stack = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8)).train(training)
        with torch.no_grad():
            want = float((copy.deepcopy(stack)(x) - x).norm() / x.norm())
        modes = [m.training for m in stack.modules()]
        got = _as_number(distance_from_identity(stack, x.clone()), "distance_from_identity")
        mode = "training" if training else "eval"
        _expect([m.training for m in stack.modules()] == modes,
                f"the stack was in {mode} mode and your function changed that. Hint: measure "
                "it in the mode it is in; don't call .train() or .eval().")
        _expect(abs(got - want) < 1e-4 * max(want, 1),
                f"for two BasicBlocks in {mode} mode you measured {got:.4g}, expected "
                f"{want:.4g}. Hint: run the stack as it is, on x itself.")
    return _passed("||stack(x) - x|| / ||x|| over the batch, in the stack's own mode")


# --- 03: building blocks -----------------------------------------------------------------

def check_parameter_count(parameter_count) -> str:
    """Exercise 03.1: parameter_count(depth) = trainable parameters of the option-A ResNet.

    The answer is a formula (no model built): stem, 3 stages of (depth-2)/6 blocks,
    the classifier. It must equal count_parameters(cifar_resnet(depth)) for every depth.
    """
    from .models import cifar_resnet, count_parameters
    for depth in (8, 14, 20, 32, 44, 56, 110):
        want = count_parameters(cifar_resnet(depth))
        got = parameter_count(depth)
        _expect(got == want,
                f"parameter_count({depth}) returned {got!r}, but ResNet-{depth} has {want:,} "
                "trainable parameters. Hint: count each 3x3 convolution (9 * C_in * C_out, no "
                "bias), each BatchNorm (a scale and a shift per channel), and the fc layer "
                "(weights and biases); the first block of stages 2 and 3 takes the narrower "
                "input. Option A's shortcut has no parameters.")
    return _passed("your formula matches ResNet-8 to ResNet-110; e.g. ResNet-20 has "
                   f"{count_parameters(cifar_resnet(20)):,} parameters")


def check_receptive_field(receptive_field) -> str:
    """Exercise 03.2: receptive_field(module, in_channels, size) = the side, in input pixels,
    of the square of input pixels that can change the centre output pixel of `module`.

    Measured with autograd on one (1, in_channels, size, size) input, in eval mode (in
    training mode BatchNorm's batch statistics tie every pixel to every other), and the module
    left in the mode it was in. Each 3x3 convolution widens the field by 2 x the product of
    the strides before it.
    """
    import torch
    from torch import nn

    from .blocks import BasicBlock

    def conv(c_in, c_out, k=3, stride=1):
        return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)

    torch.manual_seed(0)
    cases = [(conv(1, 1), 1, 3, "one 3x3 convolution"),
             (nn.Sequential(conv(1, 1), conv(1, 1)), 1, 5, "two 3x3 convolutions"),
             (conv(2, 4, k=1), 2, 1, "one 1x1 convolution"),
             (nn.Sequential(conv(1, 2, stride=2), conv(2, 2)), 1, 7,
              "a 3x3 convolution with stride 2, then a 3x3 convolution"),
             (nn.Sequential(conv(3, 8), nn.BatchNorm2d(8), nn.ReLU(), conv(8, 8)), 3, 5,
              "conv, BN, ReLU, conv, in training mode"),
             (BasicBlock(8, 16, stride=2), 8, 7, "BasicBlock(8, 16, stride=2)")]
    for module, in_channels, want, what in cases:
        modes = [m.training for m in module.modules()]
        got = receptive_field(module, in_channels, 33)
        _expect(got is not None, "receptive_field returned None: did you forget `return`?")
        _expect([m.training for m in module.modules()] == modes,
                f"for {what} your function left the module in another mode than it was in. "
                "Hint: remember module.training, switch to eval mode, and switch back.")
        bn_hint = (" In training mode BatchNorm normalises with statistics over every pixel "
                   "of the batch, so every input pixel reaches every output: measure in eval "
                   "mode." if got == 33 and want < 33 else "")
        _expect(got == want,
                f"for {what} you measured {got!r} pixels, expected {want}.{bn_hint} Hint: "
                "backpropagate from the centre pixel of the output (summed over channels) and "
                "take the extent of the rows of the input whose gradient is not zero.")
    return _passed("each 3x3 convolution widens the field by 2 x the strides before it")


# --- 04: training on CIFAR-10 ------------------------------------------------------------

def check_step_schedule(step_lr) -> str:
    """Exercise 04.1: step_lr(step, total_steps, base_lr), the paper's schedule.

    He et al. (2015, sec. 4.2): base_lr until half the run, base_lr/10 until three
    quarters, then base_lr/100 (32k and 48k of 64k iterations).
    """
    from .train import lr_at, recipe
    for total, base in ((64_000, 0.1), (1_000, 0.05), (7, 0.2)):
        cfg = recipe("paper", lr=base)
        for step in sorted({0, 1, total // 2 - 1, total // 2, 3 * total // 4 - 1,
                            3 * total // 4, total - 1}):
            want, got = lr_at(step, total, cfg), step_lr(step, total, base)
            _expect(got is not None and abs(got - want) <= 1e-9 * base,
                    f"step_lr({step}, {total}, {base}) returned {got!r}, expected {want:g}. "
                    "Hint: compare step / total_steps with 1/2 and 3/4; divide by 10 at "
                    "each milestone passed (step 32,000 of 64,000 already has the lower rate).")
    return _passed("base rate, /10 at 1/2 of the run, /100 at 3/4")


def check_accuracy(accuracy) -> str:
    """Exercise 04.2: accuracy(model, batches) = the fraction of images classified right.

    It must put the model in eval mode (BN's running statistics, not the batch's),
    switch gradients off, count over every batch, the last smaller one included, and
    leave the model in the mode it was in.
    """
    import torch

    from .data import Batches, make_synthetic
    from .models import cifar_resnet
    from .train import evaluate
    data = make_synthetic(128, 50, seed=3)
    torch.manual_seed(0)
    model = cifar_resnet(8)
    # A few training steps so that the running statistics differ from a fresh network's.
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in Batches(data.train, 64, train=True, seed=0):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.train()                                     # as it would be after training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = Batches(data.test, 16)                  # 50 images: the last batch holds 2
    got = accuracy(model, batches)
    after = model.state_dict()
    _expect(all(torch.equal(before[k], after[k]) for k in before),
            "your function changed the model (its weights or BN running statistics). "
            "Hint: call model.eval() before the forward passes; in train mode BatchNorm "
            "updates its running statistics.")
    _expect(all(m.training for m in model.modules()),
            "your function left the model in eval mode; it was in training mode. Training "
            "that goes on after it would then run BatchNorm on its running statistics. Hint: "
            "remember model.training first, and call model.train(was_training) at the end.")
    want = evaluate(model, batches)["acc"]
    _expect(got is not None and abs(float(got) - want) < 1e-6,
            f"accuracy returned {got!r}, expected {want:.4f} (a fraction between 0 and 1). "
            "Hint: sum (logits.argmax(1) == y) over all batches and divide by the number of "
            "images, not by the number of batches.")
    return _passed(f"{want:.1%} on the check's 50 images, in eval mode; the model unchanged "
                   "and back in training mode")


def check_loss_floor(loss_floor) -> str:
    """Exercise 04.3: loss_floor(num_classes, smoothing) = the lowest cross-entropy a network
    can reach when trained with label smoothing.

    PyTorch's label smoothing (F.cross_entropy(..., label_smoothing=e)) trains against the
    target q = (1 - e) one_hot + e / C: the true class gets 1 - e + e/C, every other class
    e/C. The cross-entropy against q is smallest when the predicted probabilities equal q,
    and there it equals q's entropy, -sum q log q (natural log).
    """
    import torch
    import torch.nn.functional as F
    for classes, smoothing in ((10, 0.0), (10, 0.1), (2, 0.2), (100, 0.1), (10, 1.0),
                               (1000, 0.1)):
        q = torch.full((classes,), smoothing / classes, dtype=torch.float64)
        q[0] += 1 - smoothing
        # The floor as PyTorch computes it: the loss of logits whose softmax is q itself.
        want = float(F.cross_entropy(q.log()[None], torch.tensor([0]),
                                     label_smoothing=smoothing))
        got = _as_number(loss_floor(classes, smoothing), "loss_floor")
        if abs(got - want) < 1e-6:
            continue
        off = 1 - smoothing
        other = smoothing / (classes - 1)
        szegedy = -(off * math.log(off) if off else 0) - (
            (classes - 1) * other * math.log(other) if other else 0)
        hint = (" You gave the true class 1 - e and spread e over the other classes; PyTorch "
                "spreads e over all C classes, the true one included (1 - e + e/C)."
                if abs(got - szegedy) < 1e-6 else
                " With no smoothing the target is one-hot, and a network can approach loss 0."
                if smoothing == 0 else "")
        raise ExerciseError(
            f"loss_floor({classes}, {smoothing}) returned {got:.6g}, expected {want:.6g}.{hint} "
            "Hint: the loss is smallest when the predicted probabilities equal the smoothed "
            "target q; then it is q's entropy, -sum q log q, over all classes (natural log).")
    return _passed("the entropy of the smoothed target: with e = 0.1 and 10 classes, "
                   f"{float(loss_floor(10, 0.1)):.3f}")


# --- 00, 01, 02 (helper A): depth, gradients, the residual block ------------------------

def check_weighted_layers(count_weighted_layers) -> str:
    """Exercise 00.1: count_weighted_layers(model) -> the depth as the paper counts it.

    He et al. (2015) count the weighted layers on the main path: every 3x3
    convolution and the final fully connected layer. BatchNorm, ReLU, pooling
    and the 1x1 projection shortcuts (options B, C) do not count.
    """
    from .models import cifar_resnet
    for depth, shortcut in ((8, "A"), (20, "none"), (32, "B"), (14, "C"), (56, "A")):
        model = cifar_resnet(depth, shortcut)
        got = count_weighted_layers(model)
        hint = ("Hint: count nn.Conv2d and nn.Linear modules (model.modules()), but not the "
                "convolutions inside the shortcuts." if shortcut in ("B", "C") else
                "Hint: count nn.Conv2d and nn.Linear modules (model.modules()); BatchNorm "
                "and ReLU have no weights of their own in this count.")
        _expect(got == depth, f"for {model.name} you counted {got!r} weighted layers, the "
                              f"paper counts {depth}. {hint}")
    return _passed("3x3 convolutions plus the classifier; shortcuts and BN are not counted")


def check_weight_gradient_ratio(weight_gradient_ratio) -> str:
    """Exercise 01.1: weight_gradient_ratio(model, images, labels) -> ||dL/dW_1|| / ||dL/dW_L||.

    W_i are all the parameters of block i (its convolutions and batch norms; block 1 next to
    the input, block L the last), L the mean cross-entropy of the batch, one forward and
    backward pass with the model in training mode (as at the first training step). The answer
    must match probes.signal_profile(...).weight_grad_norm[0] / [-1].
    """
    import torch

    from .data import make_synthetic, normalize
    from .models import cifar_resnet
    from .probes import signal_profile
    data = make_synthetic(32, 8, seed=3)
    images, labels = normalize(data.train.images), data.train.labels
    for depth, shortcut in ((20, "none"), (20, "A"), (32, "none")):
        torch.manual_seed(0)
        model = cifar_resnet(depth, shortcut)
        norms = signal_profile(model, images, labels).weight_grad_norm
        want = norms[0] / norms[-1]
        torch.manual_seed(0)
        got = float(weight_gradient_ratio(cifar_resnet(depth, shortcut).train(), images.clone(),
                                          labels.clone()))
        _expect(abs(got - want) <= 1e-3 * abs(want),
                f"for {model.name} you got {got:.4g}, expected {want:.4g}. Hint: one forward "
                "and backward pass with the model in training mode; then the norm of all of "
                "the first block's parameter gradients together (torch.cat of p.grad.flatten() "
                "for p in model.blocks[0].parameters()), over the same for the last block"
                + (" (you have the last block over the first)" if got and abs(1 / got - want)
                   < 1e-3 * abs(want) else "") + ".")
    return _passed("the first block's weight gradient over the last block's, as signal_profile "
                   "measures it")


def check_fixed_block(block_class) -> str:
    """Exercise 02.2: a corrected version of the widely copied block computes relu(F(x) + x).

    block_class(channels) must build a block with attributes conv1, bn1, conv2, bn2
    (as resnet_nb.blocks.BasicBlock, identity shortcut) whose forward is
    relu(bn2(conv2(relu(bn1(conv1(x))))) + x).
    """
    import torch

    from .blocks import BasicBlock
    torch.manual_seed(0)
    reference = BasicBlock(8, 8).eval()
    for bn in (reference.bn1, reference.bn2):   # non-trivial BN statistics and scales
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    block = block_class(8)
    missing = [n for n in ("conv1", "bn1", "conv2", "bn2") if not hasattr(block, n)]
    _expect(not missing, f"the block has no {', '.join(missing)}: keep the names of the "
                         "original so the check can copy the weights in")
    for name in ("conv1", "bn1", "conv2", "bn2"):
        getattr(block, name).load_state_dict(getattr(reference, name).state_dict())
    block.eval()
    x = torch.relu(torch.randn(4, 8, 6, 6))
    with torch.no_grad():
        want = reference(x)
        got = block(x)
        f = reference.bn2(reference.conv2(torch.relu(reference.bn1(reference.conv1(x)))))
        doubled = torch.relu(2 * f + x)      # what the copied snippet computes
    _expect(got.shape == want.shape, f"output shape {tuple(got.shape)}, expected "
                                     f"{tuple(want.shape)}")
    _expect(not torch.allclose(got, doubled, atol=1e-5),
            "your block still computes relu(2 F(x) + x): the second shortcut adds F(x) again. "
            "Hint: one shortcut, applied to the block's input x.")
    _expect(torch.allclose(got, want, atol=1e-5),
            f"your block differs from relu(F(x) + x) by up to {float((got - want).abs().max()):.3g}. "
            "Hint: save identity = x first, compute F(x) = bn2(conv2(relu(bn1(conv1(x))))), "
            "then return relu(F(x) + identity).")
    return _passed("relu(F(x) + x): one identity shortcut, F counted once")


# --- 06: the interactive lab -------------------------------------------------------------

def check_additive_accuracy(additive_accuracy) -> str:
    """Exercise 06.3: additive_accuracy(result, blocks) = the accuracy predicted with the
    blocks `blocks` (numbered from 1, as in the lab) removed together, if the accuracy each
    costs alone (result.drop) simply added up: baseline_acc - the sum of their drops.

    `result` is a probes.LesionResult: baseline_acc, and lesioned_acc[i], the accuracy
    without block i (0-based).
    """
    from .probes import LesionResult
    cases = [  # (lesioned accuracies, blocks removed, the prediction)
        ((0.90, 0.80, 0.86, 0.70), [2], 0.80),
        ((0.90, 0.80, 0.86, 0.70), [1, 3], 0.84),
        ((0.91, 0.90, 0.89, 0.30, 0.90, 0.80), (2, 3, 6), 0.75),
        ((0.91, 0.90, 0.89, 0.30, 0.90, 0.80), range(1, 4), 0.86),
        ((0.91, 0.90, 0.89, 0.30, 0.90, 0.80), [], 0.92),
    ]
    for accs, blocks, answer in cases:
        r = LesionResult("test-net", 0.92, accs, tuple(False for _ in accs))
        shown = list(blocks)
        got = additive_accuracy(r, blocks)
        _expect(got is not None, "additive_accuracy returned None: did you forget `return`?")
        _expect(isinstance(got, (int, float)) or hasattr(got, "__float__"),
                f"additive_accuracy returned {got!r}: return one number, an accuracy from 0 to 1")
        shifted = 0.92 - sum(0.92 - accs[b] for b in shown if b < len(accs))
        _expect(not (shown and abs(float(got) - shifted) < 1e-9 and abs(shifted - answer) > 1e-9),
                f"blocks {shown} of lesioned accuracies {accs}: you read block b at index b; "
                "the blocks are numbered from 1 in the lab and in the figure, and "
                "lesioned_acc (and drop) from 0")
        _expect(abs(float(got) - answer) < 1e-9,
                f"blocks {shown} removed from a network with lesioned accuracies {accs} "
                f"(all blocks: 0.92): you returned {got!r}. Hint: removing block b alone costs "
                "result.drop[b - 1]; start from baseline_acc and take off each block's cost.")
    return _passed("the baseline minus the single-block drops of the blocks removed")


# --- 05_tutorial_forensics: the widely shared snippet, taken apart ---------------------

def _doubled_blocks():
    """Blocks that add F twice (the snippet's fault 4), and blocks that add it once."""
    import torch.nn.functional as F

    from .blocks import BasicBlock
    from .snippet import SnippetBlock

    class OnceNoBN(SnippetBlock):             # the snippet's block with fault 4 fixed
        def forward(self, x):
            return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))

    class TwiceWithBN(BasicBlock):            # notebook 02's copied block: relu(2 F(x) + x)
        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + self.identity(x) + out)

    def zero_start(block):                    # zero_init_residual: F(x) = 0 at the start
        block.bn2.weight.data.zero_()
        return block

    once = [("BasicBlock(8, 8)", lambda: BasicBlock(8, 8)),
            ("BasicBlock(4, 8, stride=2)", lambda: BasicBlock(4, 8, stride=2)),
            ("the snippet's block with one shortcut, SnippetBlock(8, 8) fixed",
             lambda: OnceNoBN(8, 8)),
            ("BasicBlock(8, 8) with bn2.weight = 0", lambda: zero_start(BasicBlock(8, 8)))]
    twice = [("the snippet's SnippetBlock(8, 8)", lambda: SnippetBlock(8, 8)),
             ("a BasicBlock that adds F twice (notebook 02's copied block)",
              lambda: TwiceWithBN(8, 8))]
    trap = ("a BasicBlock that adds F twice, with bn2.weight = 0 as zero_init_residual sets "
            "it", lambda: zero_start(TwiceWithBN(8, 8)))
    return once, twice, trap


def check_adds_branch_once(adds_branch_once) -> str:
    """Exercise 1 of 05_tutorial_forensics: a test that catches relu(2 F(x) + shortcut(x)).

    adds_branch_once(block) -> True when the block computes relu(F(x) + shortcut(x)), with
    F(x) = [bn2](conv2(relu([bn1](conv1(x))))) from its own layers (BN where it has them),
    False when it adds F twice. The blocks come fresh from their constructors, in training
    mode; one of the faulty ones starts with F = 0 (the last BN's scale zero), which a test
    must see through: with F = 0 the two formulas agree, so the test has to give F weights.
    """
    import torch
    once, twice, trap = _doubled_blocks()
    for (name, make), want in [(c, True) for c in once] + [(c, False) for c in twice + [trap]]:
        torch.manual_seed(0)
        try:
            got = adds_branch_once(make())
        except Exception as e:   # the student's test: report it, do not crash the check
            raise ExerciseError(f"your test raised {type(e).__name__} on {name}: {e}. Hint: "
                                "the input needs block.conv1.in_channels channels; a block "
                                "without bn1, bn2 has none to apply.") from None
        _expect(isinstance(got, (bool, torch.Tensor)) and torch.as_tensor(got).numel() == 1,
                f"your test returned {got!r} for {name}; return True or False")
        if bool(got) == want:
            continue
        if (name, make) == trap:
            raise ExerciseError(
                f"your test passed {name}. Its branch starts at F = 0, and then relu(2 F(x) + "
                "x) = relu(F(x) + x): a test on it cannot fail. Hint: give the branch non-zero "
                "weights first (e.g. torch.nn.init.normal_ on each parameter, on a copy of the "
                "block), then compare.")
        _expect(want, f"your test passed {name}, which computes relu(2 F(x) + shortcut(x)). "
                      "Hint: compute F(x) from the block's own layers and compare block(x) with "
                      "relu(F(x) + block.shortcut(x)).")
        raise ExerciseError(f"your test failed {name}, which computes relu(F(x) + shortcut(x)). "
                            "Hint: compute F in the block's own mode (or put it in eval mode "
                            "first), with BN where the block has it, and compare with a "
                            "tolerance (torch.allclose(..., atol=1e-5)).")
    return _passed("your test tells one F from two, even when the branch starts at zero")


def _small_networks():
    """(name, network, whether its outputs ignore the batch): with and without BN, both modes."""
    from torch import nn

    def net(bn: bool) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *([nn.BatchNorm2d(8)] if bn else []),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    return [("a network with BN, in training mode", net(True).train(), False),
            ("a network with BN, in evaluation mode", net(True).eval(), True),
            ("a network without BN, in training mode", net(False).train(), True),
            ("a network without BN, in evaluation mode", net(False).eval(), True)]


def check_batch_independent(batch_independent) -> str:
    """Exercise 2 of 05_tutorial_forensics: does a network's output for an image depend on the
    other images in its batch, in the mode the network is in?

    batch_independent(net, images) -> True when each image's output is the same whatever
    images share its batch, False when not; and `net` must come back as it was given: the same
    mode and the same state (a forward pass in training mode updates BN's running statistics).
    """
    import torch
    images = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for name, net, want in _small_networks():
        torch.manual_seed(0)
        for p in net.parameters():
            p.data.normal_(0, 0.5)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        mode = net.training
        try:
            got = batch_independent(net, images.clone())
        except Exception as e:
            raise ExerciseError(f"your test raised {type(e).__name__} on {name}: {e}") from None
        _expect(isinstance(got, (bool, torch.Tensor)) and torch.as_tensor(got).numel() == 1,
                f"your test returned {got!r} for {name}; return True or False")
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        _expect(not changed, f"your test changed {name}: {', '.join(changed)}. A forward pass in "
                             "training mode updates BN's running statistics, so the network "
                             "you tested is no longer the one you were given. Hint: run your "
                             "forward passes on copy.deepcopy(net).")
        _expect(net.training == mode, f"your test put {name} into "
                                      f"{'training' if net.training else 'evaluation'} mode and "
                                      "left it there. Hint: test a copy, in the network's own "
                                      "mode.")
        hint = (" Hint: compare the outputs of the images in one batch with those of the same "
                "images in smaller batches (e.g. each half alone), with a tolerance "
                "(torch.allclose(..., atol=1e-5)).")
        _expect(bool(got) or not want,
                f"your test says the outputs of {name} depend on the batch; they do not: "
                "in evaluation mode BN uses its running statistics, and without BN no layer "
                "looks at the other images." + hint)
        _expect(not bool(got) or want,
                f"your test says the outputs of {name} do not depend on the batch; they do: "
                "in training mode BN normalises with the batch's own mean and variance." + hint)
    return _passed("training mode with BN depends on the batch; evaluation mode and no BN do "
                   "not; the network is left as it was")
