"""Settings for the whole test run (`python -m pytest` from the repository root).

The notebooks run under nbval in kernels started by this process, so they inherit
its environment: setting the defaults here (not in a fixture) is what makes every
notebook run the `smoke` profile, with tqdm's bars off. `setdefault` keeps what the
shell sets, so `RESNET_NB_PROFILE=cpu python -m pytest notebooks/` runs the cpu sizes.
The package tests' own fixtures live in tests/conftest.py.
"""
import os
from pathlib import Path

os.environ.setdefault("RESNET_NB_PROFILE", "smoke")
os.environ.setdefault("TQDM_DISABLE", "1")
# OpenMP threads that spin while waiting make small-batch work many times slower on a
# shared 2-core machine (measured: a depth-110 signal update 8-38 s instead of ~2 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    # addopts names the sanitize file relative to the repository root; resolve it so that
    # pytest also works when started from another folder (e.g. `cd tests && pytest`).
    opt = getattr(config.option, "nbval_sanitize_with", None)
    if opt and not os.path.isabs(opt) and not os.path.exists(opt):
        config.option.nbval_sanitize_with = str(ROOT / opt)
