"""resnet_nb: the helper package of the resnet-nb course on residual networks.

Importing it does no work: no device probing, no downloads, no data loading, no signal
handlers, not even torch. Each name below is imported from its module when it is first used,
e.g. `from resnet_nb import cifar_resnet` imports resnet_nb.models.
"""
import importlib

__version__ = "0.1.0"

#: The package's own names, and the module that defines each.
_MODULE_OF = {
    **dict.fromkeys(("BasicBlock", "Bottleneck", "PreActBlock", "IdentityShortcut",
                     "ZeroPadShortcut", "ProjectionShortcut", "NoShortcut", "make_shortcut"),
                    "blocks"),
    **dict.fromkeys(("CifarResNet", "ResNetConfig", "cifar_resnet", "plain_net",
                     "count_parameters", "summarize", "shortcuts_off", "lesioned"), "models"),
    **dict.fromkeys(("CifarData", "ImageSet", "Batches", "DataError", "load_cifar10",
                     "make_synthetic"), "data"),
    **dict.fromkeys(("History", "TrainingDiverged", "load_checkpoint"), "runs"),
    **dict.fromkeys(("TrainConfig", "recipe", "fit", "train_one_epoch", "evaluate"), "train"),
    "pick_device": "device",
    **dict.fromkeys(("Profile", "get_profile"), "profiles"),
}

__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value          # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
