"""resnet_nb: the helper package of the resnet-nb course on residual networks.

Importing it does no work: no device probing, no downloads, no data loading.
"""
from .blocks import (BasicBlock, Bottleneck, IdentityShortcut, NoShortcut, PreActBlock,
                     ProjectionShortcut, ZeroPadShortcut, make_shortcut)
from .data import Batches, CifarData, DataError, ImageSet, load_cifar10, make_synthetic
from .models import (CifarResNet, ResNetConfig, count_parameters, cifar_resnet, lesioned,
                     plain_net, shortcuts_off, summarize)
from .profiles import Profile, get_profile
from .train import (History, TrainConfig, TrainingDiverged, evaluate, fit, load_checkpoint,
                    pick_device, recipe, train_one_epoch)

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
