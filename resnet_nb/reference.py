"""The stored reference runs: converged networks and histories the course made itself.

    from resnet_nb import reference
    reference.load_model("resnet-56")        # trained ResNet-56 (fig6 set), float32, eval mode
    reference.load_history("plain-56")       # its training history (a resnet_nb.runs.History)
    reference.histories("fig6")              # every finished run of a set

The files live in the repository's `reference/` folder (or the folder named by
RESNET_NB_REFERENCE). Every file is checked against the sha256 in its MANIFEST.json before
it is used, weights load with `torch.load(..., weights_only=True)`, and nothing is ever
downloaded: a missing or damaged file is an error that names the command that remakes it.
`python -m tools reproduce` (tools/reproduce.py, in the repository) makes them and writes
them where this module looks: the names and paths below are shared by both.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .models import CifarResNet, ResNetConfig
from .runs import HISTORY, History

#: The sets of reference runs (tools/reproduce.py defines their budgets).
SET_NAMES = ("fig6", "table6")
#: The list of every stored file and its sha256, at the top of the reference folder.
MANIFEST = "MANIFEST.json"
#: A set's record (<set>/set.json): its budget, the command that made it, its sittings.
SET_INFO = "set.json"
#: The folder of the stored weights.
WEIGHTS = "weights"
#: Documentation beside the runs: not data, so not in the manifest.
README = "README.md"


class ReferenceError(RuntimeError):
    """A reference file is missing or damaged. The message says how to get it back."""


def reference_dir() -> Path:
    """RESNET_NB_REFERENCE, else the `reference/` folder of the checkout holding resnet_nb,
    else the one beside the notebooks being run: a class release pulled into a student's home
    on a hub (nbgitpuller), where the package is installed apart from it."""
    env = os.environ.get("RESNET_NB_REFERENCE")
    if env:
        return Path(env).expanduser()
    checkout = _checkout_reference()
    if not (checkout / MANIFEST).is_file():
        here = Path.cwd()                      # a notebook's kernel runs in its folder
        for folder in (here, here.parent):
            if (folder / "reference" / MANIFEST).is_file():
                return folder / "reference"
    return checkout


def _checkout_reference() -> Path:
    return Path(__file__).resolve().parent.parent / "reference"


def weights_path(out: Path, set_name: str, network: str, seed: int) -> Path:
    """Where the weights of a run are stored under the reference folder `out`."""
    return Path(out) / WEIGHTS / f"{set_name}-{network}-seed{seed}.pt"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remake_command(set_name: str = "fig6", seed: int = 0) -> str:
    return f"python -m tools reproduce {set_name} --seeds {seed} --out reference/"


def _how_to_fix(set_name: str, seed: int) -> str:
    return (f"restore it (git checkout -- reference/) or remake it with "
            f"`{remake_command(set_name, seed)}` (a GPU is advised)")


def _manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.exists():
        raise ReferenceError(f"no reference runs at {root} ({MANIFEST} is missing): point "
                             "RESNET_NB_REFERENCE at the course's reference/ folder, or make "
                             f"them with `{remake_command()}`")
    try:
        return json.loads(path.read_text())["files"]
    except (ValueError, KeyError) as e:
        raise ReferenceError(f"{path} is damaged ({e}): restore it with "
                             "`git checkout -- reference/`") from None


def _verified(relative: str, set_name: str, seed: int) -> Path:
    """The path of a stored file, after checking it against the manifest."""
    root = reference_dir()
    files = _manifest(root)
    path = root / relative
    if relative not in files or not path.exists():
        raise ReferenceError(f"the reference file {relative} is missing: "
                             f"{_how_to_fix(set_name, seed)}")
    if sha256(path) != files[relative]["sha256"]:
        raise ReferenceError(f"the reference file {relative} is damaged (its sha256 differs "
                             f"from {MANIFEST}): {_how_to_fix(set_name, seed)}")
    return path


def has_model(network: str, set: str = "fig6", seed: int = 0) -> bool:
    """True when trained weights of `network` ("plain-56", "resnet-20", ...) are stored."""
    root = reference_dir()
    relative = weights_path(Path("."), set, network, seed).as_posix()
    try:
        return relative in _manifest(root) and (root / relative).exists()
    except ReferenceError:
        return False


def load_model(network: str, set: str = "fig6", seed: int = 0) -> CifarResNet:
    """The trained network, in float32 and eval mode, on the CPU (its file is checked first)."""
    relative = weights_path(Path("."), set, network, seed).as_posix()
    path = _verified(relative, set, seed)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        model = CifarResNet(ResNetConfig(**stored["model_config"]))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in stored["state_dict"].items()})
    except Exception as e:   # a file that matches its sum but not this version of the code
        raise ReferenceError(f"{relative} does not load into this version of resnet_nb "
                             f"({type(e).__name__}: {e}): {_how_to_fix(set, seed)}") from None
    return model.eval()


def load_history(network: str, set: str = "fig6", seed: int = 0) -> History:
    """The training history of a stored run (train and test accuracy per epoch, provenance)."""
    relative = f"{set}/{network}-seed{seed}/{HISTORY}"
    path = _verified(relative, set, seed)
    return History.load(path)


def histories(set: str = "fig6", seed: int | None = None) -> dict[str, list[History]]:
    """Every stored history of a set, by network ("plain-20", ...), one entry per seed."""
    if set not in SET_NAMES:
        raise ValueError(f"reference set must be one of {', '.join(SET_NAMES)}, got {set!r}")
    files = _manifest(reference_dir())
    found: dict[str, list[History]] = {}
    for relative in sorted(files):
        parts = relative.split("/")
        if len(parts) != 3 or parts[0] != set or parts[2] != HISTORY:
            continue
        network, _, run_seed = parts[1].rpartition("-seed")
        if seed is not None and int(run_seed) != seed:
            continue
        found.setdefault(network, []).append(load_history(network, set, int(run_seed)))
    return found


def set_info(set: str = "fig6") -> dict:
    """What the set is and its budget, the command that made it, and its sittings."""
    return json.loads(_verified(f"{set}/{SET_INFO}", set, 0).read_text())
