"""Where and in what arithmetic a run computes: the device, mixed precision, torch.compile.

    pick_device()                        CUDA, then Apple MPS, then the CPU
    resolve_precision(device, "auto")    "bf16", "fp16" or "fp32" for that device
    autocast_for(device, precision)      the autocast context of the forward pass
    grad_scaler(device, precision)       loss scaling (only fp16 needs it)

Nothing here is probed at import: each function looks at the machine when it is called.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead")


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then the CPU (or `prefer`, e.g. "cpu", checked to exist here)."""
    if prefer:
        return _checked_device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(text) -> torch.device:
    """The device named by `text` (any case), or a ValueError saying which devices exist here."""
    usage = "cpu, cuda, cuda:N or mps"
    try:
        device = torch.device(str(text).strip().lower())
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be {usage}, got {str(text)!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "" if torch.version.cuda else " (this torch is built without CUDA)"
            raise ValueError(f"device {str(text)!r}: no CUDA GPU is available here{built}; use "
                             "cpu, or leave the device out to use the best one available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(text)!r}: this machine has {count} CUDA GPU(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {str(text)!r}: Apple's MPS is not available here; use cpu, "
                             "or leave the device out to use the best one available")
    elif device.type != "cpu":
        raise ValueError(f"device must be {usage}, got {str(text)!r}")
    return device


def resolve_precision(device: torch.device | str, precision: str = "auto") -> str:
    """The arithmetic a run on `device` uses: "bf16", "fp16" or "fp32".

    "auto" picks bf16 mixed precision on CUDA GPUs that compute in bf16 natively (compute
    capability >= 8.0: A100, L4, H100, RTX 30xx and newer), fp16 mixed precision with loss
    scaling on older CUDA GPUs (e.g. Colab's T4, which only emulates bf16), and float32
    elsewhere (CPUs, Apple GPUs). Asking for bf16 or fp16 off a CUDA GPU is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    device = torch.device(device)
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise ValueError(f"{precision} mixed precision needs a CUDA GPU; on {device.type} "
                             "use precision 'fp32' (or 'auto')")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    return precision


def autocast_for(device: torch.device | str, precision: str = "auto"):
    """The autocast context for `device` and `precision` (see resolve_precision).

    Under it, convolutions and matrix products run in bf16 or fp16 while reductions such as
    the loss stay in float32; with "fp32" it does nothing.
    """
    p = resolve_precision(device, precision)
    if p == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if p == "bf16" else torch.float16)


def grad_scaler(device: torch.device | str, precision: str = "auto"):
    """Loss scaling for fp16, whose small range lets small gradients underflow to 0.

    scaler.scale(loss).backward() multiplies the loss (so every gradient) by a large factor;
    scaler.step(optimizer) divides the gradients back first, and skips the step when one
    overflowed; scaler.update() adapts the factor. Off fp16 the scaler does nothing, so the
    same loop serves every precision.
    """
    enabled = resolve_precision(device, precision) == "fp16"
    if hasattr(torch.amp, "GradScaler"):            # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def check_compile(compile: str | None) -> None:
    """ValueError unless `compile` is None (eager) or one of COMPILE_MODES."""
    if compile is not None and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be None or one of {', '.join(map(repr, COMPILE_MODES))}, "
                         f"got {compile!r}")
