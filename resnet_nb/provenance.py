"""Where a result came from: versions, hardware, git commit, time. Attached to every run."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch


def device_name(device: torch.device | str) -> str:
    """A human-readable name of the device, e.g. 'cuda: NVIDIA H100' or 'cpu: 2 threads'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu: {platform.machine()}, {torch.get_num_threads()} threads"
    return device.type


def git_commit() -> str:
    """The commit of the resnet_nb checkout ('+dirty' with local changes), or 'unknown'.

    RESNET_NB_GIT_COMMIT overrides it, for a copy of a checkout without its .git folder
    (e.g. a working tree sent to a GPU machine).
    """
    if os.environ.get("RESNET_NB_GIT_COMMIT"):
        return os.environ["RESNET_NB_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    import torchvision
    from . import __version__
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "resnet_nb": __version__}


def provenance(device: torch.device | str, **extra) -> dict:
    """Everything needed to say where a number came from."""
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": device_name(device), "platform": platform.platform(),
            "git_commit": git_commit(), "versions": versions(),
            "command": _command(), **extra}


def _command() -> str:
    """The command line that produced the result (`python -m resnet_nb ...` for the CLI)."""
    first = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if first == "__main__.py":
        first = "python -m resnet_nb"
    return " ".join([first, *sys.argv[1:]])
