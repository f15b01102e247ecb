"""The reference runs: tools/reproduce.py at a tiny budget, and loading what it stores."""
import json
from pathlib import Path

import pytest
import torch

from resnet_nb import make_synthetic, reference
from resnet_nb.reference import MANIFEST, sha256
from resnet_nb.runs import History
from tools.reproduce import SETS, get_set, main, run_dir, summary_table, train_run, with_budget

TINY = ["--data", "synthetic", "--epochs", "1", "--train-size", "128", "--test-size", "64",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """fig6 at depth 20 (plain-20 and ResNet-20), one epoch of 128 synthetic images."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["fig6", "--depths", "20", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def ref(made, monkeypatch):
    monkeypatch.setenv("RESNET_NB_REFERENCE", str(made))
    return made


def test_the_sets_are_the_papers():
    fig6, table6 = SETS["fig6"], SETS["table6"]
    assert tuple(SETS) == reference.SET_NAMES         # the sets resnet_nb.reference reads
    assert fig6.depths == (20, 32, 44, 56) and fig6.shortcuts == ("none", "A")
    assert fig6.val_size == 0 and fig6.train_images == 50_000
    # Table 6's recipe: 45k/5k split, 64k iterations of batch 128, lr/10 at 32k and 48k.
    assert table6.depths == (20, 32, 44, 56, 110) and table6.val_size == 5000
    assert table6.epochs * (45_000 // 128) == pytest.approx(64_000, rel=0.002)
    spec110 = next(s for s in table6.runs([0]) if s.depth == 110)
    spec56 = next(s for s in table6.runs([0]) if s.depth == 56)
    assert table6.train_config(spec110).warmup_steps == 400
    assert table6.train_config(spec56).warmup_steps == 0
    cfg = table6.train_config(spec56)
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.milestones) == \
        (0.1, 0.9, 1e-4, 128, (0.5, 0.75))
    # Deepest first, so that the longest runs start first.
    assert [s.run_id for s in fig6.runs([0])][:2] == ["plain-56-seed0", "resnet-56-seed0"]
    assert "63,882 iterations" in table6.budget() and "5,000 held out" in table6.budget()


@pytest.mark.slow
def test_reproduce_writes_histories_set_record_weights_and_manifest(made):
    for network in ("plain-20", "resnet-20"):
        h = History.load(made / "fig6" / f"{network}-seed0" / "history.json")
        assert h.status == "completed" and len(h.epochs) == 1
        assert h.provenance["reference_set"] == "fig6" and h.provenance["train_images"] == 128
        assert h.provenance["command"].startswith("python -m tools reproduce fig6")
        assert h.epochs[0]["images_per_second"] > 0
    info = json.loads((made / "fig6" / "set.json").read_text())
    assert info["budget"].startswith("1 epochs of 128 training images = 1 iterations")
    assert info["finished_runs"] == ["plain-20-seed0", "resnet-20-seed0"]
    assert info["sittings"][0]["wall_seconds"] > 0
    assert info["command"] == info["sittings"][0]["command"] == h.provenance["command"]
    manifest = json.loads((made / MANIFEST).read_text())["files"]
    assert "weights/fig6-resnet-20-seed0.pt" in manifest
    assert "fig6/plain-20-seed0/history.json" in manifest
    assert not any(name.endswith("checkpoint.pt") or name.endswith(".log") for name in manifest)
    for name, entry in manifest.items():
        assert sha256(made / name) == entry["sha256"]


def test_the_committed_sets_record_how_their_runs_were_made_and_how_to_remake_them():
    """Each sitting that finished runs names the command those runs record as theirs; the
    set's command remakes exactly the runs it holds with today's `python -m tools reproduce`."""
    from tools.reproduce import build_parser
    for name in ("fig6", "table6"):
        info = json.loads((COMMITTED / name / "set.json").read_text())
        for sitting in info["sittings"]:
            for run in sitting["finished"]:
                h = History.load(COMMITTED / name / run / "history.json")
                assert h.provenance["command"] == sitting["command"], (name, run)
        words = info["command"].split()
        assert words[:4] == ["python", "-m", "tools", "reproduce"], info["command"]
        args = build_parser().parse_args(words[4:])
        (item,) = args.sets
        chosen = item.partition(":")[2]
        depths = [int(d) for d in chosen.split(",")] if chosen else args.depths
        runs = get_set(name).runs(args.seeds, depths)
        assert sorted(s.run_id for s in runs) == info["finished_runs"], info["command"]


def test_a_finished_run_is_skipped(made, capsys):
    before = (made / "fig6" / "resnet-20-seed0" / "history.json").read_bytes()
    assert main(["fig6", "--depths", "20", "--out", str(made), *TINY]) == 0
    assert "2 already finished (skipped)" in capsys.readouterr().out
    assert (made / "fig6" / "resnet-20-seed0" / "history.json").read_bytes() == before


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    data = make_synthetic(256, 64)
    rset = with_budget(get_set("fig6"), epochs=2, train_size=128, test_size=64)
    spec = next(s for s in rset.runs([0], [20]) if s.shortcut == "A")
    whole = train_run(rset, spec, tmp_path / "whole", data=data, device=torch.device("cpu"))

    import resnet_nb.train as train_module
    real = train_module.train_one_epoch
    calls = {"n": 0}

    def stop_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", stop_in_second_epoch)
    cut = train_run(rset, spec, tmp_path / "cut", data=data, device=torch.device("cpu"))
    assert cut.status == "interrupted" and len(cut.epochs) == 1
    monkeypatch.setattr(train_module, "train_one_epoch", real)
    resumed = train_run(rset, spec, tmp_path / "cut", data=data, device=torch.device("cpu"))
    assert resumed.status == "completed"
    assert resumed.step_loss == whole.step_loss
    assert [e["test_acc"] for e in resumed.epochs] == [e["test_acc"] for e in whole.epochs]


def test_load_model_gives_the_trained_weights_in_float32(ref):
    model = reference.load_model("resnet-20")
    assert not model.training and model.config.depth == 20 and model.config.shortcut == "A"
    state = torch.load(run_dir(ref, get_set("fig6").runs([0], [20])[1]) / "checkpoint.pt",
                       weights_only=True)["model"]
    for name, value in model.state_dict().items():
        stat = name.endswith(("running_mean", "running_var"))     # stored in float32
        want = (state[name].float() if stat else state[name].half().float()) \
            if state[name].is_floating_point() else state[name]
        assert torch.equal(value, want), name
    assert reference.load_model("plain-20").config.shortcut == "none"


def test_history_and_set_info(ref):
    h = reference.load_history("plain-20")
    assert h.model["shortcut"] == "none" and h.status == "completed"
    assert set(reference.histories("fig6")) == {"plain-20", "resnet-20"}
    assert reference.set_info("fig6")["name"] == "fig6"
    assert reference.has_model("resnet-20") and not reference.has_model("resnet-56")


def test_a_damaged_file_is_refused_with_the_command_that_remakes_it(ref, tmp_path, monkeypatch):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(ref, copy)
    monkeypatch.setenv("RESNET_NB_REFERENCE", str(copy))
    weights = copy / "weights" / "fig6-resnet-20-seed0.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(reference.ReferenceError, match="damaged") as e:
        reference.load_model("resnet-20")
    assert "python -m tools reproduce fig6 --seeds 0 --out reference/" in str(e.value)
    assert "\n" not in str(e.value)
    weights.unlink()
    with pytest.raises(reference.ReferenceError, match="missing"):
        reference.load_model("resnet-20")
    with pytest.raises(reference.ReferenceError, match="missing"):
        reference.load_model("resnet-56")
    (copy / MANIFEST).unlink()
    with pytest.raises(reference.ReferenceError, match="MANIFEST.json is missing"):
        reference.load_history("plain-20")
    assert not reference.has_model("plain-20")


def test_summary_table_reports_measured_and_missing_networks(made):
    table = summary_table(made)
    rows = [r for r in table.splitlines() if r.startswith("| fig6")]
    assert len(rows) == 8
    assert any("ResNet-20 | 8.75 (Table 6, 64k iterations) | " in r and "(n=1)" in r
               for r in rows)
    assert any("ResNet-56" in r and "| not run |" in r for r in rows)
    measured = next(r for r in rows if "ResNet-20" in r)
    assert measured.split(" | ")[6].endswith(", fp32")                   # device and precision


def test_bad_reproduce_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["fig7", "--out", str(tmp_path)]) == 2
    assert "reference set must be one of fig6, table6" in capsys.readouterr().err
    assert main(["fig6", "--depths", "21", "--out", str(tmp_path)]) == 2
    assert "fig6 has depths 20, 32, 44, 56, not 21" in capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 2


# --- the runs committed in reference/ -------------------------------------------------

COMMITTED = Path(__file__).resolve().parents[2] / "reference"


def test_the_committed_files_match_their_manifest():
    files = json.loads((COMMITTED / MANIFEST).read_text())["files"]
    stored = {p.relative_to(COMMITTED).as_posix() for p in COMMITTED.rglob("*")
              if p.is_file() and p.name not in (MANIFEST, "README.md", "checkpoint.pt", "train.log")
              and not p.name.startswith(".")}          # .gitignore, the folder locks
    assert stored == set(files), "every stored file is in the manifest, and only those"
    for name, entry in files.items():
        assert sha256(COMMITTED / name) == entry["sha256"], name
    weights = [COMMITTED / n for n in files if n.startswith("weights/")]
    assert len(weights) == 4 and sum(p.stat().st_size for p in weights) <= 8_000_000


def test_the_committed_networks_load(monkeypatch):
    monkeypatch.setenv("RESNET_NB_REFERENCE", str(COMMITTED))
    for network in ("plain-20", "plain-56", "resnet-20", "resnet-56"):
        model = reference.load_model(network)
        depth = int(network.split("-")[1])
        assert model.config.depth == depth
        assert model.config.shortcut == ("none" if network.startswith("plain") else "A")
        h = reference.load_history(network)
        assert h.status == "completed" and len(h.epochs) == 30 and h.steps_per_epoch == 390
        assert h.provenance["train_images"] == 50_000 and h.provenance["test_images"] == 10_000
        assert "H100" in h.provenance["device"]


def test_the_committed_fig6_runs_show_what_the_course_says(monkeypatch):
    """01 and the README state these orderings; they must stay true of the stored runs."""
    monkeypatch.setenv("RESNET_NB_REFERENCE", str(COMMITTED))
    runs = reference.histories("fig6", seed=0)
    err = {n: {k: 100 * (1 - hs[0].last(f"{k}_acc")) for k in ("train", "test")}
           for n, hs in runs.items()}
    for kind in ("train", "test"):
        plain = [err[f"plain-{d}"][kind] for d in (20, 32, 44, 56)]
        assert plain == sorted(plain), f"plain nets: deeper trains worse ({kind} error)"
        assert err["resnet-56"][kind] < err["resnet-20"][kind], "ResNet-56 beats ResNet-20"
        for d in (20, 32, 44, 56):
            assert err[f"resnet-{d}"][kind] < err[f"plain-{d}"][kind], "shortcuts help"


def test_the_committed_table6_run_is_the_papers_recipe_and_says_what_the_readme_says(monkeypatch):
    """The README's Table 6 row: ResNet-20 with the paper's full recipe, 12.54% test error."""
    monkeypatch.setenv("RESNET_NB_REFERENCE", str(COMMITTED))
    runs = reference.histories("table6", seed=0)
    assert set(runs) == {"resnet-20"}, "only ResNet-20 has finished the paper's recipe so far"
    h = runs["resnet-20"][0]
    assert h.status == "completed" and len(h.epochs) == 182 and h.steps_per_epoch == 351
    assert len(h.step_loss) == 182 * 351 == 63_882                       # the paper's 64k
    assert (h.provenance["train_images"], h.provenance["val_images"],
            h.provenance["test_images"]) == (45_000, 5_000, 10_000)      # sec. 4.2's split
    lrs = [round(e["lr"], 6) for e in h.epochs]          # 0.1 / 10 is 0.010000000000000002
    assert lrs == [0.1] * 91 + [0.01] * 46 + [0.001] * 45, \
        "lr 0.1, divided by 10 at 32k (epoch 92) and 48k (epoch 138) iterations"
    assert round(100 * (1 - h.last("test_acc")), 2) == 12.54
    assert round(100 * (1 - h.last("train_acc")), 2) == 1.16
    info = reference.set_info("table6")
    assert info["finished_runs"] == ["resnet-20-seed0"]
    assert "H200" in h.provenance["device"]
    # The summary table puts it beside the paper's 8.75%.
    row = next(line for line in summary_table(COMMITTED).splitlines()
               if line.startswith("| table6 | ResNet-20 |"))
    assert "| 8.75 | 12.54 (n=1) | 1.16 (n=1) |" in row


def test_compact_state_dict_keeps_running_statistics_in_float32_and_refuses_overflow():
    from resnet_nb import cifar_resnet
    from tools.reproduce import compact_state_dict
    model = cifar_resnet(8, "none")
    model.stem[1].running_var.fill_(1e6)            # beyond float16's 65,504
    out = compact_state_dict(model.state_dict())
    assert out["stem.1.running_var"].dtype == torch.float32
    assert torch.equal(out["stem.1.running_var"], model.stem[1].running_var)
    assert out["stem.0.weight"].dtype == torch.float16
    assert out["stem.1.num_batches_tracked"].dtype == torch.int64
    model.stem[0].weight.data.fill_(1e6)            # a parameter that float16 cannot hold
    with pytest.raises(ValueError, match="stem.0.weight is not finite in torch.float16"):
        compact_state_dict(model.state_dict())


def test_every_committed_weight_is_finite():
    for path in sorted((COMMITTED / "weights").glob("*.pt")):
        stored = torch.load(path, weights_only=True)
        bad = [k for k, v in stored["state_dict"].items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        assert not bad, (path.name, bad)
