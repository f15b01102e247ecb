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


def machine_description() -> str:
    """A one-line description of this machine: CPU model, cores, torch and its threads, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def git_commit(package_dir: str | os.PathLike | None = None) -> str:
    """The commit of the git checkout that holds the imported package ('+dirty' with local
    changes), or 'unknown'.

    Only a checkout that tracks the package's own files counts: a package installed into a
    virtual environment that happens to lie inside some other repository is not part of that
    repository's commit. `package_dir` (default: this package's folder) is for tests.
    RESNET_NB_GIT_COMMIT overrides it, for a copy of a checkout without its .git folder
    (e.g. a working tree sent to a GPU machine).
    """
    if os.environ.get("RESNET_NB_GIT_COMMIT"):
        return os.environ["RESNET_NB_GIT_COMMIT"]
    package = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=package, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "--", "__init__.py")   # fails where it is untracked
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
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
