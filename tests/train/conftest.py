import pytest

from resnet_nb import make_synthetic


@pytest.fixture
def tiny():
    """A small synthetic CIFAR-10 (256 training, 64 test images): runs of a few seconds."""
    return make_synthetic(256, 64)
