"""Compute profiles: one setting, RESNET_NB_PROFILE, scales every notebook and the CLI.

    smoke   tests and CI: seconds per notebook, on small real subsets
    cpu     a laptop: 10,000 training images, 3 epochs; a few minutes per training cell
    gpu     a GPU: 20,000 training images, 5 epochs, the whole test set

Unset, it is "gpu" when CUDA is available, else "cpu".
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

PROFILE_NAMES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """The sizes a notebook or the command line reads. None means "all of it"."""

    name: str
    train_size: int | None      # training images used by default
    test_size: int | None       # test images used for reporting
    epochs: int                 # epochs of a default training run
    batch_size: int
    depths: tuple[int, ...]     # depths compared side by side (plain vs residual)
    probe_batch: int            # images in a batch used to measure a network at initialisation
    fit_steps: int = 300        # optimisation steps of the small fitting demos (notebook 02)
    bench_images: int = 1024    # images timed per setting when a notebook measures images/s
    lab_probe_batch: int = 32   # images per live update of the lab's signal view (notebook 06):
                                # small enough to answer in about a second on a laptop CPU
    lesion_images: int | None = None    # test images of the lab's lesion study (notebook 06:
                                # 2 networks x 28 evaluations); None: all of test_size
    # Notebook 07 ("why it works"): sizes of its measurements, each figure about a minute at
    # most on a laptop CPU (`cpu`: 13-53 s, medians of benchmarks/why_it_works.py on the
    # shared 2-core test machine, notebooks/timings.json), a few seconds under `smoke`.
    landscape_images: int = 128     # training images the loss landscape is evaluated on
    landscape_points: int = 21      # points of each 1-D loss slice
    landscape_grid: int = 7         # points per axis of each 2-D loss contour (2 x 49 at cpu)
    shatter_points: int = 128       # inputs along the line of the gradient-correlation probe
    shatter_depths: tuple[int, ...] = (8, 20, 56, 110)   # depths compared at initialisation
    path_images: int = 8            # images of the path-length gradient probes
    path_samples: int = 10          # sampled paths per length (Veit et al.'s estimate)

    def __str__(self) -> str:
        size = lambda n: "all" if n is None else f"{n:,}"
        return (f"profile {self.name!r}: train {size(self.train_size)} images, test "
                f"{size(self.test_size)}, {self.epochs} epoch(s), batch {self.batch_size}, "
                f"depths {self.depths}")


PROFILES = {
    "smoke": Profile("smoke", train_size=512, test_size=256, epochs=1, batch_size=64,
                     depths=(8, 14), probe_batch=16, bench_images=64, fit_steps=30,
                     lab_probe_batch=16, lesion_images=64, landscape_images=32, landscape_points=5,
                     landscape_grid=3, shatter_points=16, shatter_depths=(8, 14), path_images=4,
                     path_samples=2),
    "cpu": Profile("cpu", train_size=10_000, test_size=2_000, epochs=3, batch_size=128,
                   depths=(20, 56), probe_batch=64, bench_images=1024, fit_steps=300,
                   lab_probe_batch=32, landscape_images=128, landscape_points=21,
                   landscape_grid=7, shatter_points=128, shatter_depths=(8, 20, 56, 110),
                   path_images=8, path_samples=10),
    # gpu: what a notebook trains live in about a minute on an H100 and several on Colab's
    # T4; the converged picture is the reference runs' (resnet_nb.reference).
    "gpu": Profile("gpu", train_size=20_000, test_size=None, epochs=5, batch_size=128,
                   depths=(20, 56), probe_batch=128, bench_images=4096, fit_steps=300,
                   lab_probe_batch=128, landscape_images=1024, landscape_points=41,
                   landscape_grid=21, shatter_points=256, shatter_depths=(8, 20, 56, 110),
                   path_images=64, path_samples=16),
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile, else RESNET_NB_PROFILE, else gpu with CUDA and cpu without."""
    where = "profile" if name else "RESNET_NB_PROFILE"   # name the setting that is wrong
    name = name or os.environ.get("RESNET_NB_PROFILE") or None
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{where} must be one of {', '.join(PROFILE_NAMES)}, got {name!r}")
    return PROFILES[name]
