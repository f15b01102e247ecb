"""resnet_nb.device: the device preferred and the ones refused, and the arithmetic each
GPU gets (bf16 where native, fp16 with loss scaling elsewhere)."""
import contextlib
import warnings

import pytest
import torch

from resnet_nb.device import autocast_for, grad_scaler, pick_device, resolve_precision


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = type("MPS", (), {"is_available": staticmethod(lambda: True)})
    monkeypatch.setattr(torch.backends, "mps", mps, raising=False)
    assert pick_device() == torch.device("mps")
    mps.is_available = staticmethod(lambda: False)
    assert pick_device() == torch.device("cpu")
    assert pick_device("") == torch.device("cpu")


def test_autocast_bf16_on_gpus_with_native_bf16_fp16_with_loss_scaling_on_older_ones(monkeypatch):
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    assert not grad_scaler("cpu").is_enabled()
    for capability, dtype in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                              ((7, 5), torch.float16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        with warnings.catch_warnings():     # "CUDA is not available": fine, it is not entered
            warnings.simplefilter("ignore")
            ctx = autocast_for(torch.device("cuda"))
            fp32 = autocast_for(torch.device("cuda"), "fp32")
        # The scaler switches itself off where CUDA is missing: pretend it is there (nothing
        # here runs on it).
        with monkeypatch.context() as m:
            m.setattr(torch.cuda, "is_available", lambda: True)
            scaler = grad_scaler(torch.device("cuda"))
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == dtype
        assert ctx.device == "cuda"
        assert resolve_precision("cuda", "auto") == ("bf16" if dtype == torch.bfloat16 else "fp16")
        assert isinstance(fp32, contextlib.nullcontext)
        # Only fp16 needs loss scaling.
        assert scaler.is_enabled() == (dtype == torch.float16)


def test_precision_is_checked():
    assert resolve_precision("cpu", "auto") == "fp32" == resolve_precision("cpu", "fp32")
    with pytest.raises(ValueError, match="fp16 mixed precision needs a CUDA GPU"):
        resolve_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'bf16', 'fp16', "
                                         "'fp32', got 'half'"):
        resolve_precision("cpu", "half")


def test_devices_are_checked_where_they_are_named(monkeypatch):
    assert pick_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N or mps, got 'gpu'"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        pick_device("cuda")
