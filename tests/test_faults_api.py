"""Bad arguments at the package's boundary (issue 9): refused at once, naming the argument."""
import pytest
import torch

from resnet_nb import cifar_resnet, get_profile, make_synthetic, pick_device, recipe
from resnet_nb.data import Batches


@pytest.mark.parametrize("overrides,needle", [
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"epochs": True}, "epochs must be a positive integer, got True"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"seed": -1}, "seed must be an integer from 0 to 4294967295, got -1"),
    ({"seed": 2**32}, "seed must be an integer from 0 to 4294967295, got 4294967296"),
    ({"seed": 1.0}, "seed must be an integer"),
    ({"lr": float("nan")}, "lr must be a positive number, got nan"),
    ({"lr": "0.1"}, "lr must be a positive number, got '0.1'"),
    ({"momentum": 1.5}, "momentum must be a number from 0 to below 1, got 1.5"),
    ({"weight_decay": -1e-4}, "weight_decay must be a number >= 0"),
    ({"label_smoothing": 1.0}, "label_smoothing must be a number from 0 to below 1"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov=True needs a momentum above 0"),
    ({"milestones": (0.75, 0.5)}, "milestones must be increasing fractions"),
    ({"milestones": (50, 75)}, "milestones must be increasing fractions"),
    ({"warmup_steps": -3}, "warmup_steps must be an integer >= 0"),
    ({"epoch": 3}, "recipe() has no setting 'epoch'; the settings are recipe, epochs,"),
])
def test_bad_recipe_values_are_refused_naming_the_setting(overrides, needle):
    with pytest.raises(ValueError) as info:
        recipe("fast", **overrides)
    assert needle in str(info.value)


@pytest.mark.parametrize("kwargs,needle", [
    ({"preact": "False"}, "preact must be True or False, got 'False'"),
    ({"preact": 1}, "preact must be True or False, got 1"),
    ({"zero_init_residual": "yes"}, "zero_init_residual must be True or False"),
])
def test_flags_must_be_booleans(kwargs, needle):
    with pytest.raises(ValueError) as info:
        cifar_resnet(8, **kwargs)
    assert needle in str(info.value)


def test_devices_are_checked_where_they_are_named(monkeypatch):
    assert pick_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N or mps, got 'gpu'"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        pick_device("cuda")


def test_a_bad_profile_name_blames_the_argument_not_the_variable(monkeypatch):
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    with pytest.raises(ValueError, match="^profile must be one of smoke, cpu, gpu, got 'bogus'"):
        get_profile("bogus")
    monkeypatch.setenv("RESNET_NB_PROFILE", "bogus")
    with pytest.raises(ValueError, match="^RESNET_NB_PROFILE must be one of"):
        get_profile()


@pytest.mark.parametrize("call,needle", [
    (lambda d: Batches(d.train, batch_size=2.5), "batch_size must be a positive integer, got 2.5"),
    (lambda d: Batches(d.train, batch_size=True), "batch_size must be a positive integer"),
    (lambda d: d.subset(train=2.5), "subset train size must be a positive integer (or None: "
                                    "all), got 2.5"),
    (lambda d: d.subset(test=0), "subset test size must be a positive integer"),
    (lambda d: d.split_validation(2.5), "validation size must be an integer between 1 and 99, "
                                        "got 2.5"),
])
def test_sizes_of_data_must_be_whole_numbers(call, needle):
    with pytest.raises(ValueError) as info:
        call(make_synthetic(100, 20))
    assert needle in str(info.value)


def test_sizes_may_be_numpy_integers():
    import numpy as np
    d = make_synthetic(100, 20).subset(train=np.int64(50)).split_validation(np.int64(10))
    assert (len(d.train), len(d.val), len(Batches(d.train, batch_size=np.int64(8)))) == (40, 10, 5)
    # A recipe takes them too, and stores Python integers (a history's JSON holds them).
    import json
    from dataclasses import asdict
    cfg = recipe("fast", epochs=np.int64(2), batch_size=np.int32(8), seed=np.uint8(3))
    assert json.loads(json.dumps(asdict(cfg)))["batch_size"] == 8 and type(cfg.seed) is int


def test_a_lesion_lab_without_networks_says_so():
    from resnet_nb.data import Batches
    from resnet_nb.widgets import LesionLab, lesion_view
    batches = Batches(make_synthetic(16, 16).test, 16)
    for call in (lambda: LesionLab({}, batches), lambda: lesion_view({}, batches)):
        with pytest.raises(ValueError, match=r"models must be a non-empty dict \{label: trained "
                                             r"network\}"):
            call()
    with pytest.raises(ValueError, match="'resnet' is a Linear"):
        LesionLab({"resnet": torch.nn.Linear(2, 2)}, batches)


@pytest.mark.parametrize("kwargs,needle", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 64.0}, "batch_size must be a positive integer, got 64.0"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"lr": -0.1}, "lr must be a positive number, got -0.1"),
    ({"update_every": 0}, "update_every must be a positive number, got 0"),
])
def test_a_training_lab_with_bad_settings_says_so_when_built(kwargs, needle):
    from resnet_nb.widgets import TrainingLab
    with pytest.raises(ValueError) as info:
        TrainingLab(None, make_synthetic(64, 16), **kwargs)
    assert needle in str(info.value)
