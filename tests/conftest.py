import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache folder and a fixed seed; env settings of the shell don't leak."""
    monkeypatch.setenv("RESNET_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    torch.manual_seed(0)


@pytest.fixture
def real_data_path():
    """The real CIFAR-10 copy named by RESNET_NB_DATA, or skip."""
    path = os.environ.get("RESNET_NB_DATA")
    if not path or not os.path.exists(path):
        pytest.skip("RESNET_NB_DATA does not point at a CIFAR-10 copy")
    return path
