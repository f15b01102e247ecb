"""The compute profiles: their sizes, the variable that picks one, and a bad name refused."""
import pytest

from resnet_nb.profiles import PROFILES, get_profile



def test_a_bad_profile_name_blames_the_argument_not_the_variable(monkeypatch):
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    with pytest.raises(ValueError, match="^profile must be one of smoke, cpu, gpu, got 'bogus'"):
        get_profile("bogus")
    monkeypatch.setenv("RESNET_NB_PROFILE", "bogus")
    with pytest.raises(ValueError, match="^RESNET_NB_PROFILE must be one of"):
        get_profile()


def test_profiles(monkeypatch):
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.setenv("RESNET_NB_PROFILE", "laptop")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        get_profile()
    monkeypatch.delenv("RESNET_NB_PROFILE")
    import torch
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")
    assert PROFILES["smoke"].train_size < PROFILES["cpu"].train_size
    # gpu: a subset that trains live in about a minute on an H100, tested on the whole test set.
    assert PROFILES["cpu"].train_size < PROFILES["gpu"].train_size == 20_000
    assert PROFILES["gpu"].test_size is None
