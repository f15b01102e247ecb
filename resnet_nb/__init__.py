"""resnet_nb: the helper package of the resnet-nb course on residual networks.

Importing it does no work: no device probing, no downloads, no data loading.
"""
import sys as _sys


def _quiet_interrupt_while_starting() -> None:
    """`python -m resnet_nb ...`: a Ctrl-C while the libraries load (seconds) ends the command
    with one line instead of a traceback. cli.main installs its own handlers once it runs."""
    argv = getattr(_sys, "orig_argv", [])   # Python >= 3.10
    if _sys.argv[:1] != ["-m"] or "-m" not in argv or argv[argv.index("-m") + 1:][:1] != [
            __name__]:
        return
    import signal

    def stop(_signum, _frame):
        _sys.stderr.write(f"python -m {__name__}: stopped by Ctrl-C while starting\n")
        _sys.stderr.flush()
        # Not SystemExit: raised inside a library's import, it can be caught there (seen
        # once: the message, then the command ran on and exited 0). Nothing has been written
        # yet while starting, so ending the process at once loses nothing.
        import os
        os._exit(130)
    signal.signal(signal.SIGINT, stop)


_quiet_interrupt_while_starting()
from .blocks import (BasicBlock, Bottleneck, IdentityShortcut, NoShortcut, PreActBlock,
                     ProjectionShortcut, ZeroPadShortcut, make_shortcut)
from .data import Batches, CifarData, DataError, ImageSet, load_cifar10, make_synthetic
from .models import (CifarResNet, ResNetConfig, count_parameters, cifar_resnet, lesioned,
                     plain_net, shortcuts_off, summarize)
from .device import pick_device
from .profiles import Profile, get_profile
from .runs import History, TrainingDiverged, load_checkpoint
from .train import TrainConfig, evaluate, fit, recipe, train_one_epoch

__version__ = "0.1.0"

__all__ = [
    "BasicBlock", "Bottleneck", "PreActBlock", "IdentityShortcut", "ZeroPadShortcut",
    "ProjectionShortcut", "NoShortcut", "make_shortcut",
    "CifarResNet", "ResNetConfig", "cifar_resnet", "plain_net", "count_parameters", "summarize",
    "shortcuts_off", "lesioned",
    "CifarData", "ImageSet", "Batches", "DataError", "load_cifar10", "make_synthetic",
    "History", "TrainConfig", "TrainingDiverged", "recipe", "fit", "train_one_epoch",
    "evaluate", "load_checkpoint", "pick_device",
    "Profile", "get_profile",
]
