"""The environment check of notebook 00 gives the right verdict and useful advice."""
from resnet_nb.environment import (OK, PROBLEM, WARNING, check_data, check_environment,
                                   check_package, check_profile, format_checks)


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
