"""The environment check of notebook 00 gives the right verdict and useful advice."""
from importlib import metadata

from resnet_nb.environment import (OK, PROBLEM, WARNING, check_data, check_environment,
                                   check_numpy, check_package, check_profile, format_checks)


def test_a_complete_environment_with_a_data_copy_is_ready(tmp_path, monkeypatch):
    copy = tmp_path / "cifar10.tar.gz"
    copy.write_bytes(b"")
    monkeypatch.setenv("RESNET_NB_DATA", str(copy))
    monkeypatch.setenv("RESNET_NB_PROFILE", "smoke")
    checks = check_environment()
    assert [c.name for c in checks][:2] == ["python", "torch"]
    assert all(c.status in (OK, WARNING) for c in checks), format_checks(checks)
    assert check_data().status == OK
    assert format_checks(checks).endswith("Ready.")


def test_a_missing_data_copy_says_how_to_set_resnet_nb_data(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_NB_DATA", str(tmp_path / "nowhere"))
    c = check_data()
    assert c.status == PROBLEM and "RESNET_NB_DATA" in c.advice
    report = format_checks([c])
    assert "PROBLEM" in report and "Fix before going on: data." in report


def test_no_data_copy_and_nothing_downloaded_warns_about_the_internet(monkeypatch):
    monkeypatch.delenv("RESNET_NB_DATA", raising=False)   # the cache is an empty tmp folder
    c = check_data()
    assert c.status == WARNING and "internet" in c.advice and "RESNET_NB_DATA" in c.advice


def test_synthetic_data_is_flagged(monkeypatch):
    monkeypatch.setenv("RESNET_NB_DATA", "synthetic")
    assert check_data().status == WARNING


def test_bad_profile_and_missing_or_old_packages_are_problems(monkeypatch):
    monkeypatch.setenv("RESNET_NB_PROFILE", "laptop")
    c = check_profile()
    assert c.status == PROBLEM and "RESNET_NB_PROFILE" in c.advice
    assert check_package("no-such-package-xyz").status == PROBLEM
    assert check_package("torch", minimum="999.0").status == PROBLEM
    assert check_package("torch", minimum="1.0").status == OK


def test_torch_before_2_3_with_numpy_2_is_a_problem(monkeypatch):
    """torch 2.2 (the floor) cannot use NumPy 2: torch.from_numpy raises (seen with 2.2.2 and
    numpy 2.0.2); pip can install that pair, since torch 2.2 does not name numpy at all."""
    def versions(torch, numpy):
        table = {"torch": torch, "numpy": numpy}
        monkeypatch.setattr(metadata, "version", lambda name: table[name])
    versions("2.2.2+cu121", "2.0.2")
    c = check_numpy()
    assert c.status == PROBLEM and '"numpy>=1.26,<2"' in c.advice and "torch 2.2.2" in c.advice
    versions("2.2.2", "1.26.4")
    assert check_numpy().status == OK
    versions("2.3.0", "2.0.2")
    assert check_numpy().status == OK
    versions("2.14.1", "1.25.0")
    assert check_numpy().status == PROBLEM          # below the floor, as before
