"""Checkers for the notebooks' exercises whose answer is code.

Each checker takes the student's function or class, runs it on cases whose
right answer is known, and either returns a short success message or raises
`ExerciseError` (an AssertionError) whose message says what went wrong and
gives a hint, never the answer. In a notebook:

    from resnet_nb.exercises import check_path_count
    def path_count(n, k): ...
    check_path_count(path_count)          # 'correct: ...' or an explanation

Convention for every checker here (notebooks 01-05 add theirs below):
`check_<name>(answer) -> str`, deterministic (seeded), seconds at most on a CPU,
and a test in tests/test_exercises.py showing a right answer passes and a
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

def check_path_count(path_count) -> str:
    """Exercise 02.1: path_count(n, k) = the number of paths of length k through n blocks.

    Unrolled (Veit et al. 2016), n residual blocks give 2**n paths; a path of
    length k passes through the residual branches of k blocks and the shortcuts
    of the others, so there are C(n, k) of them.
    """
    for n in range(0, 9):
        for k in range(0, n + 1):
            got = path_count(n, k)
            _expect(got == math.comb(n, k),
                    f"path_count({n}, {k}) returned {got!r}. Hint: a path picks, at each of "
                    f"the {n} blocks, either the residual branch or the shortcut; how many "
                    f"ways are there to pick the branch in exactly {k} of them?")
        total = sum(path_count(n, k) for k in range(n + 1))
        _expect(total == 2 ** n, f"summed over k, path_count({n}, k) gives {total}, "
                                 f"not 2**{n} = {2 ** n}")
    return _passed("C(n, k) paths of length k; 2**n paths in all")


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


def check_zero_pad(zero_pad) -> str:
    """Exercise 03.2: zero_pad(x, out_channels, stride) = option A's shortcut, written by hand.

    x: (N, C, H, W). Keep every `stride`-th pixel (starting at the first), keep the C
    channels, then append out_channels - C channels of zeros.
    """
    import torch

    from .blocks import ZeroPadShortcut
    g = torch.Generator().manual_seed(0)
    for shape, out_channels, stride in (((2, 16, 32, 32), 32, 2), ((1, 3, 5, 5), 7, 2),
                                        ((2, 8, 6, 6), 8, 1), ((1, 32, 16, 16), 64, 2)):
        x = torch.randn(*shape, generator=g)
        want = ZeroPadShortcut(shape[1], out_channels, stride)(x)
        got = zero_pad(x.clone(), out_channels, stride)
        _expect(isinstance(got, torch.Tensor),
                f"zero_pad returned {type(got).__name__}, not a tensor")
        _expect(tuple(got.shape) == tuple(want.shape),
                f"for x of shape {tuple(shape)}, out_channels={out_channels}, stride={stride} "
                f"the result should have shape {tuple(want.shape)}, got {tuple(got.shape)}. "
                "Hint: x[:, :, ::stride, ::stride] subsamples.")
        c = shape[1]
        _expect(torch.equal(got[:, :c], want[:, :c]),
                f"the first {c} channels should be x itself, subsampled (every {stride}-th "
                "row and column, starting at 0), without any other change. Hint: no "
                "averaging, and the zeros go after the existing channels.")
        _expect(not got[:, c:].any(), f"channels {c}..{out_channels - 1} should be zeros")
    return _passed("subsampled input channels first, then zeros; no parameters")


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
    switch gradients off, and count over every batch, the last smaller one included.
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
    want = evaluate(model, batches)["acc"]
    _expect(got is not None and abs(float(got) - want) < 1e-6,
            f"accuracy returned {got!r}, expected {want:.4f} (a fraction between 0 and 1). "
            "Hint: sum (logits.argmax(1) == y) over all batches and divide by the number of "
            "images, not by the number of batches.")
    return _passed(f"{want:.1%} on the check's 50 images, in eval mode, model unchanged")


def check_per_class_accuracy(per_class) -> str:
    """Exercise 04.3: per_class(counts) -> accuracy within each true class (recall).

    counts[i, j] = images of true class i predicted as j, as from
    metrics.confusion_matrix. The answer is a list or tensor of length C.
    """
    import torch

    from .metrics import per_class_accuracy
    counts = torch.tensor([[8, 1, 1], [0, 5, 5], [2, 0, 18]])
    want = per_class_accuracy(counts)
    got = torch.as_tensor(per_class(counts.clone()), dtype=torch.float64).flatten()
    _expect(got.shape == want.shape, f"expected {len(want)} values, one per class, got "
                                     f"{got.numel()}")
    _expect(torch.allclose(got, want),
            f"per_class returned {got.tolist()}, expected {[round(v, 3) for v in want.tolist()]}. "
            "Hint: the rows are the true classes; divide the diagonal by the row sums "
            "(dividing by column sums gives the precision instead).")
    return _passed("the diagonal over the row sums: of the images of class i, the share "
                   "classified as i")


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


def check_gradient_ratio(gradient_ratio) -> str:
    """Exercise 01.1: gradient_ratio(model, images, labels) -> ||dL/dx_1|| / ||dL/dx_L||.

    x_i is the output of block i (block 1 next to the input, block L the last),
    L the mean cross-entropy of the batch, norms per image, averaged over the
    batch, the model in training mode (as at the first training step). The
    answer must match probes.signal_profile(...).grad_ratio.
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
        want = signal_profile(model, images, labels).grad_ratio
        torch.manual_seed(0)
        got = gradient_ratio(cifar_resnet(depth, shortcut).train(), images.clone(),
                             labels.clone())
        got = float(got)
        _expect(abs(got - want) <= 1e-3 * abs(want),
                f"for {model.name} you got {got:.4g}, expected {want:.4g}. Hint: keep the "
                "block outputs with forward hooks and out.retain_grad(); the loss is a batch "
                "mean, so multiply each gradient by the batch size before taking per-image "
                "norms (x.grad.flatten(1).norm(dim=1)), then average over the images"
                + (" (you are off by the batch size)" if want and abs(got * len(images) - want)
                   < 1e-3 * abs(want) or abs(got / len(images) - want) < 1e-3 * abs(want)
                   else "") + ".")
    return _passed("the first block's gradient over the last block's, as signal_profile "
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


# --- 05: the interactive lab -------------------------------------------------------------

def check_worst_block(worst_block) -> str:
    """Exercise 05.3: worst_block(result) = the 1-based block whose removal costs the most.

    `result` is a probes.LesionResult: baseline_acc, and lesioned_acc[i], the accuracy
    without block i (0-based).
    """
    from .probes import LesionResult
    cases = [  # (lesioned accuracies, the answer); the first would pass a 0-based answer
        ((0.80, 0.90, 0.85), 1),
        ((0.90, 0.50, 0.88, 0.89), 2),
        ((0.91, 0.90, 0.89, 0.30, 0.90, 0.80), 4),
    ]
    for accs, answer in cases:
        r = LesionResult("test-net", 0.92, accs, tuple(False for _ in accs))
        got = worst_block(r)
        _expect(got is not None, "worst_block returned None: did you forget `return`?")
        _expect(got != answer - 1,
                f"for lesioned accuracies {accs} you returned {got!r}: that is the 0-based "
                "index; the blocks are numbered from 1 in the lab and in the figure")
        _expect(got == answer,
                f"for lesioned accuracies {accs} (all blocks: 0.92) you returned {got!r}. "
                "Hint: the cost of removing block i is baseline_acc - lesioned_acc[i] "
                "(result.drop); look for the largest.")
    return _passed("the block with the largest drop, numbered from 1")


# --- 05_tutorial_forensics: the widely shared snippet, taken apart ---------------------

def check_channel_stats(channel_stats) -> str:
    """Exercise 1 of 05_tutorial_forensics: channel_stats(images) -> (mean, std) per channel.

    images: uint8 (N, 3, H, W). The answer is what `transforms.Normalize` needs: the mean and
    the standard deviation of each colour channel over every pixel of every image, on the 0..1
    scale that `ToTensor` produces. Either the population or the sample standard deviation is
    accepted (they differ by less than the tolerance here).
    """
    import torch
    g = torch.Generator().manual_seed(0)
    noisy = torch.randint(0, 256, (8, 3, 6, 5), generator=g, dtype=torch.uint8)
    # Each image one flat colour, a different brightness per image: within an image nothing
    # varies, but over the data set the pixels spread widely.
    levels = torch.arange(0, 250, 25, dtype=torch.uint8)                      # 10 images
    flat = torch.stack([levels, levels // 2, 255 - levels], dim=1).view(10, 3, 1, 1)
    flat = flat.expand(10, 3, 4, 4).clone()
    for images in (noisy, flat):
        x = images.double() / 255
        want_mean = x.mean(dim=(0, 2, 3))
        want_std = (x.std(dim=(0, 2, 3), correction=0), x.std(dim=(0, 2, 3)))
        answer = channel_stats(images.clone())
        _expect(isinstance(answer, (tuple, list)) and len(answer) == 2,
                f"channel_stats returned {type(answer).__name__}; return a pair (mean, std)")
        mean, std = (torch.as_tensor(v, dtype=torch.float64).flatten() for v in answer)
        shape = tuple(images.shape)
        _expect(mean.numel() == 3 and std.numel() == 3,
                f"for images of shape {shape} you returned {mean.numel()} means and "
                f"{std.numel()} standard deviations; expected 3 of each, one per colour channel. "
                "Hint: reduce over dimensions 0, 2 and 3 (images, rows, columns), keep 1.")
        scale_hint = (" Your values look like the 0..255 scale: divide by 255 first, as "
                      "ToTensor does." if float(mean.max()) > 1.5 else "")
        _expect(torch.allclose(mean, want_mean, atol=1e-4),
                f"for images of shape {shape} your means are {[round(v, 4) for v in mean.tolist()]}"
                f", expected {[round(v, 4) for v in want_mean.tolist()]}.{scale_hint}")
        _expect(any(torch.allclose(std, w, atol=1e-4) for w in want_std),
                f"for images of shape {shape} your standard deviations are "
                f"{[round(v, 4) for v in std.tolist()]}, expected "
                f"{[round(v, 4) for v in want_std[0].tolist()]}.{scale_hint} Hint: take the "
                "spread over all pixels of all images together; the average of each image's own "
                "standard deviation misses how much the images differ from one another.")
    return _passed("per-channel mean and standard deviation over all pixels, on the 0..1 scale")


def check_repaired_block(block_class) -> str:
    """Exercise 2 of 05_tutorial_forensics: the snippet's block with its problems fixed.

    block_class(in_channels, out_channels, stride=1) must have conv1, bn1, conv2, bn2
    (3x3 convolutions without bias, each followed by BatchNorm2d) and compute
    relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), where the shortcut is the identity
    when the shape is kept and option A (subsample, zero-pad the new channels) when it
    changes: exactly resnet_nb.blocks.BasicBlock with its default shortcut.
    """
    for c_in, c_out, stride in ((3, 8, 1), (8, 8, 1), (8, 16, 2)):
        call = f"RepairedBlock({c_in}, {c_out}, stride={stride})"
        reference = _reference_block(c_in, c_out, stride)
        try:
            block = block_class(c_in, c_out, stride)
        except Exception as e:   # the student's constructor: report it, do not crash the check
            raise ExerciseError(f"{call} raised {type(e).__name__}: {e}") from None
        _check_repaired_layers(block, reference, call)
        _check_repaired_output(block, reference, call)
    return _passed("BN after each convolution, F(x) counted once, a zero-padding shortcut where "
                   "the shape changes: resnet_nb's BasicBlock")


_REPAIRED_LAYERS = ("conv1", "bn1", "conv2", "bn2")


def _reference_block(c_in: int, c_out: int, stride: int):
    """resnet_nb's BasicBlock in eval mode, with non-trivial statistics, scales and shifts."""
    import torch

    from .blocks import BasicBlock
    torch.manual_seed(0)
    reference = BasicBlock(c_in, c_out, stride).eval()
    for bn in (reference.bn1, reference.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return reference


def _check_repaired_layers(block, reference, call: str) -> None:
    """The student's block has BasicBlock's layers, and takes the reference's weights."""
    from torch import nn

    from .models import count_parameters
    missing = [n for n in _REPAIRED_LAYERS if not hasattr(block, n)]
    _expect(not missing, f"{call} has no {', '.join(missing)}: keep these names so that the "
                         "check can copy the weights in")
    for n in ("conv1", "conv2"):
        _expect(isinstance(getattr(block, n), nn.Conv2d), f"{call}.{n} is not an nn.Conv2d")
        _expect(getattr(block, n).bias is None,
                f"{call}.{n} has a bias. Hint: a BN layer follows it, and BN's shift "
                "replaces the bias (bias=False), as in the paper's networks.")
    for n in ("bn1", "bn2"):
        _expect(isinstance(getattr(block, n), nn.BatchNorm2d),
                f"{call}.{n} is not an nn.BatchNorm2d: problem 5 is the missing batch "
                "normalisation")
    extra = count_parameters(block) - count_parameters(reference)
    _expect(extra == 0, f"{call} has {extra:+,} parameters more than conv1, bn1, conv2 and bn2 "
                        "need. Hint: option A's shortcut has no parameters (no 1x1 "
                        "convolution, no BN).")
    c_in, c_out, stride = (reference.conv1.in_channels, reference.conv1.out_channels,
                           reference.conv1.stride[0])
    try:
        for n in _REPAIRED_LAYERS:
            getattr(block, n).load_state_dict(getattr(reference, n).state_dict())
    except RuntimeError as e:
        raise ExerciseError(f"{call}: the layers' shapes differ from the expected ones "
                            f"({e}). Hint: conv1 maps {c_in} to {c_out} channels with "
                            f"stride {stride}; conv2 maps {c_out} to {c_out}.") from None


def _check_repaired_output(block, reference, call: str) -> None:
    """With the reference's weights, the student's block computes what BasicBlock computes."""
    import torch
    block.eval()
    c_in = reference.conv1.in_channels
    x = torch.relu(torch.randn(2, c_in, 8, 8, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        try:
            got = block(x)
        except RuntimeError as e:
            raise ExerciseError(
                f"{call} failed on an input of shape {tuple(x.shape)}: {e}. Hint: where "
                "the shape changes, the shortcut must produce the output's shape: keep "
                "every stride-th row and column, then append zero channels.") from None
        want = reference(x)
        f = reference.bn2(reference.conv2(torch.relu(reference.bn1(reference.conv1(x)))))
        doubled = torch.relu(2 * f + reference.shortcut(x))
    _expect(tuple(got.shape) == tuple(want.shape),
            f"{call} returned shape {tuple(got.shape)} for an input of shape "
            f"{tuple(x.shape)}, expected {tuple(want.shape)}")
    _expect(not torch.allclose(got, doubled, atol=1e-5),
            f"{call} still computes relu(2 F(x) + shortcut(x)): F(x) is added twice. "
            "Hint: one shortcut, applied to the block's input x.")
    _expect(torch.allclose(got, want, atol=1e-5),
            f"{call} differs from relu(F(x) + shortcut(x)) by up to "
            f"{float((got - want).abs().max()):.3g}. Hint: F(x) = bn2(conv2(relu(bn1(conv1(x)))))"
            "; the shortcut is x itself, or, where the shape changes, x[:, :, ::stride, "
            "::stride] followed by zero channels; then one ReLU after the sum.")
