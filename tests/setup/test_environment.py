"""The environment check of notebook 00 gives the right verdict and useful advice."""
import json
from importlib import metadata
from pathlib import Path

import pytest

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


# --- predicted notebook times (00's "how long here?") ---------------------------------------

def _timings(tmp_path, speed_cpu=1000.0, speed_gpu=20000.0):
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({
        "notebooks": {"01_x.ipynb": {"cpu": {"seconds": 300.0}, "gpu": {"seconds": 60.0}},
                      "02_y.ipynb": {"cpu": {"seconds": 10.0}, "smoke": {"seconds": 5.0}}},
        "speed": {"cpu": {"images_per_second": speed_cpu, "machine": "2-core CPU", "gpu": False},
                  "gpu": {"images_per_second": speed_gpu, "machine": "an H100", "gpu": True}}}))
    return path


def test_predicted_times_scale_the_recorded_ones_by_the_speeds(tmp_path):
    from resnet_nb.environment import format_predictions, predicted_times
    path = _timings(tmp_path)
    # Half as fast as the recording CPU: twice the time, for the CPU profile only.
    got = predicted_times(500.0, path, on_gpu=False)
    assert [(p.notebook, p.profile, p.recorded_seconds, p.predicted_seconds) for p in got] == [
        ("01_x.ipynb", "cpu", 300.0, 600.0), ("02_y.ipynb", "cpu", 10.0, 20.0)]
    # On a GPU four times as fast as the recording one: a quarter, for the gpu profile only.
    got = predicted_times(80000.0, path, on_gpu=True)
    assert [(p.notebook, p.predicted_seconds) for p in got] == [("01_x.ipynb", 15.0)]
    # A notebook recorded with its own speed is scaled by that one, not the profile's.
    recorded = json.loads(path.read_text())
    recorded["notebooks"]["02_y.ipynb"]["cpu"]["images_per_second"] = 250.0
    path.write_text(json.dumps(recorded))
    got = {p.notebook: p.predicted_seconds for p in predicted_times(500.0, path, on_gpu=False)}
    assert got == {"01_x.ipynb": 600.0, "02_y.ipynb": 5.0}
    path = _timings(tmp_path)
    text = format_predictions(500.0, predicted_times(500.0, path, on_gpu=False), path)
    assert "recorded on 2-core CPU, which trained it at 1,000 images/s during the runs" in text
    assert "10.0 min" in text and "20 s" in text and "10.3 min" in text    # 600 + 20 s in all
    # In brackets, the recorded times at 1,000 images/s, as the headers state them.
    assert "10.0 min   (5.0 min)" in text and "20 s   (10 s)" in text
    # Times recorded on two machines name both.
    recorded["notebooks"]["02_y.ipynb"]["cpu"]["machine"] = "another CPU"
    path.write_text(json.dumps(recorded))
    text = format_predictions(500.0, predicted_times(500.0, path, on_gpu=False), path)
    assert "recorded on 2-core CPU and another CPU, which trained it at" in text


def test_predictions_say_which_times_are_upper_bounds_and_which_notebooks_are_untimed(tmp_path):
    from resnet_nb.environment import format_predictions, predicted_times
    path = _timings(tmp_path)
    recorded = json.loads(path.read_text())
    recorded["notebooks"]["01_x.ipynb"]["gpu"]["note"] = "measured on a shared GPU"
    path.write_text(json.dumps(recorded))
    got = predicted_times(20000.0, path, on_gpu=True)
    assert [(p.notebook, p.note) for p in got] == [("01_x.ipynb", "measured on a shared GPU")]
    text = format_predictions(20000.0, got, path)
    assert "(20.0 min)*" in text and "* measured on a shared GPU" in text   # 60 s at 20,000/s
    assert "all notebooks" not in text and "the 1 timed (1 not yet)" in text
    # Every notebook timed, none with a note: no marks, and the total says so.
    text = format_predictions(500.0, predicted_times(500.0, path, on_gpu=False), path)
    assert "all notebooks" in text and "*" not in text


def test_no_prediction_without_a_recording_on_this_kind_of_machine(tmp_path):
    from resnet_nb.environment import format_predictions, predicted_times
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"notebooks": {"01_x.ipynb": {"cpu": {"seconds": 3.0}}},
                                "speed": {"cpu": {"images_per_second": 900.0, "gpu": False,
                                                  "machine": "a CPU"}}}))
    assert predicted_times(1e4, path, on_gpu=True) == []
    assert "none can be predicted" in format_predictions(1e4, [], path)


def test_the_committed_timings_record_a_speed_for_every_profile_they_time():
    from resnet_nb.environment import predicted_times
    path = Path(__file__).resolve().parents[2] / "notebooks" / "timings.json"
    recorded = json.loads(path.read_text())
    profiles = {p for runs in recorded["notebooks"].values() for p in runs}
    assert profiles <= set(recorded["speed"]), "run tools/run_notebooks.py --speed-only"
    assert all(s["images_per_second"] > 0 for s in recorded["speed"].values())
    assert predicted_times(recorded["speed"]["cpu"]["images_per_second"], path, on_gpu=False)


@pytest.mark.slow
def test_machine_speed_is_a_positive_rate():
    from resnet_nb.environment import machine_speed
    assert machine_speed(device="cpu", steps=1, repeats=1) > 0
