"""How much does the offline copy's JPEG compression cost? Three ResNet-20 runs side by side.

The offline CIFAR-10 copy is JPEG (quality 75, 4:2:0 chroma). Without the original release,
the cost of that compression cannot be measured directly; what can be measured is the cost
of one more round of the same compression, and whether the package's loop matches the
standard torchvision pipeline on the same images. All three runs use the fig6 budget
(30 epochs of all 50,000 training images, the paper's recipe, seed 0) in float32 on the CPU:

    package      python -m resnet_nb train ... on the offline copy
    re-encoded   the same, on the copy decoded and encoded once more at quality 75, 4:2:0
    torchvision  benchmarks/torchvision_resnet20.py on the offline copy (shares no code)

    python benchmarks/jpeg_gap.py run --data cifar10-jpeg.tar.gz --work runs/jpeg-gap
    python benchmarks/jpeg_gap.py report --work runs/jpeg-gap [--save benchmarks/jpeg_gap.json]

`run` makes the re-encoded copy (once), then trains the three in turn; each resumes from its
last finished epoch, so the command can be stopped and started again. `report` prints the
table from whatever epochs have finished; `--save` keeps it (benchmarks/jpeg_gap.json holds the
figures the README quotes) and `report --saved FILE` prints a kept one.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
EPOCHS = 30


def reencode(src: Path, dst: Path, quality: int = 75) -> dict:
    """Write `dst`, a .tar.gz of `src`'s images decoded and encoded again as JPEG
    (`quality`, 4:2:0 chroma subsampling); names, layout and order are kept. Returns how far
    the pixels moved: mean absolute difference (0-255 levels) and PSNR (dB), over all images."""
    tmp = dst.with_name(dst.name + ".part")
    abs_sum = sq_sum = count = 0
    with tarfile.open(src) as tin, tarfile.open(tmp, "w:gz") as tout:
        for member in tin:
            if not member.isfile():
                tout.addfile(member)
                continue
            data = tin.extractfile(member).read()
            if member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                before = Image.open(io.BytesIO(data)).convert("RGB")
                buf = io.BytesIO()
                before.save(buf, "JPEG", quality=quality, subsampling=2)   # 2: 4:2:0
                data = buf.getvalue()
                diff = (np.asarray(Image.open(buf), dtype=np.float64)
                        - np.asarray(before, dtype=np.float64))
                abs_sum, sq_sum = abs_sum + np.abs(diff).sum(), sq_sum + (diff ** 2).sum()
                count += diff.size
            member.size = len(data)
            tout.addfile(member, io.BytesIO(data))
    tmp.replace(dst)
    mse = sq_sum / count
    stats = {"mean_abs_difference": abs_sum / count,
             "psnr_db": float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse),
             "quality": quality, "subsampling": "4:2:0"}
    dst.with_suffix("").with_suffix(".json").write_text(json.dumps(stats, indent=1))
    return stats


def runs(data: Path, work: Path) -> dict[str, list[str]]:
    """name -> the command that trains it (each resumes from its own folder)."""
    package = [sys.executable, "-m", "resnet_nb", "train", "--depth", "20", "--shortcut", "A",
               "--recipe", "paper", "--epochs", str(EPOCHS), "--train-size", "all",
               "--test-size", "all", "--device", "cpu", "--precision", "fp32", "--resume"]
    return {
        "package": package + ["--data", str(data), "--out", str(work / "package")],
        "re-encoded": package + ["--data", str(work / "reencoded.tar.gz"),
                                 "--out", str(work / "re-encoded")],
        "torchvision": [sys.executable, str(HERE / "torchvision_resnet20.py"), "--data",
                        str(data), "--out", str(work / "torchvision"), "--epochs", str(EPOCHS),
                        "--resume"],
    }


def last_epoch(folder: Path) -> dict | None:
    path = folder / "history.json"
    if not path.exists():
        return None
    epochs = json.loads(path.read_text())["epochs"]
    return epochs[-1] if epochs else None


RUNS = (("package", "offline copy", "resnet_nb"),
        ("re-encoded", "offline copy, JPEG q75 once more", "resnet_nb"),
        ("torchvision", "offline copy", "torchvision_resnet20.py"))


def summarise(work: Path) -> dict:
    """What the runs in `work` measured so far: per run, the test and train error (%) after
    each finished epoch, the median images/s and where it ran; the re-encoding's distance."""
    stats = work / "reencoded.json"
    out = {"epochs": EPOCHS, "runs": {},
           "reencoded": json.loads(stats.read_text()) if stats.exists() else None}
    for name, _, _ in RUNS:
        path = work / name / "history.json"
        if not path.exists() or not json.loads(path.read_text())["epochs"]:
            continue
        h = json.loads(path.read_text())
        speeds = sorted(e["images_per_second"] for e in h["epochs"])
        prov = h.get("provenance", {})
        out["runs"][name] = {
            "test_error": [round(100 * (1 - e["test_acc"]), 2) for e in h["epochs"]],
            "train_error": [round(100 * (1 - e["train_acc"]), 2) for e in h["epochs"]],
            "images_per_second_median": round(speeds[len(speeds) // 2]),
            "device": prov.get("device") or f"cpu: {h.get('threads')} threads",
            "precision": prov.get("precision", "fp32"),
            "versions": prov.get("versions") or {"torch": h.get("torch")}}
    return out


def table(summary: dict) -> str:
    lines = []
    s = summary.get("reencoded")
    if s:
        lines.append(f"re-encoded copy: pixels moved by {s['mean_abs_difference']:.3f} levels of "
                     f"255 on average (PSNR {s['psnr_db']:.1f} dB against the offline copy)\n")
    lines += ["| run | data | code | epochs | test error (%) | train error (%) | images/s |",
              "|---|---|---|---|---|---|---|"]
    for name, data, code in RUNS:
        run = summary["runs"].get(name)
        if run is None:
            lines.append(f"| {name} | {data} | {code} | 0 of {summary['epochs']} | not run | | |")
            continue
        lines.append(f"| {name} | {data} | {code} | {len(run['test_error'])} of "
                     f"{summary['epochs']} | {run['test_error'][-1]:.2f} | "
                     f"{run['train_error'][-1]:.2f} | {run['images_per_second_median']:,} |")
    done = [len(run["test_error"]) for run in summary["runs"].values()]
    if len(done) == len(RUNS) and min(done) < summary["epochs"]:
        # A run still going: the three side by side at the last epoch all of them finished.
        k = min(done)
        lines += ["", f"| test error (%) after epoch {k} of {summary['epochs']} | "
                  + " | ".join(name for name, _, _ in RUNS) + " |", "|---|---|---|---|",
                  "| ResNet-20 | " + " | ".join(f"{summary['runs'][name]['test_error'][k - 1]:.2f}"
                                      for name, _, _ in RUNS) + " |"]
    return "\n".join(lines)


def report(work: Path | None, save: Path | None = None, saved: Path | None = None) -> None:
    """Print the table of the runs in `work` (and keep it in `save`), or of a kept one."""
    summary = json.loads(saved.read_text()) if saved else summarise(work)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(summary, indent=1) + "\n")
    print(table(summary))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="make the re-encoded copy, then train the three runs")
    r.add_argument("--data", required=True, type=Path, help="the offline copy (.tar.gz)")
    r.add_argument("--work", required=True, type=Path)
    r.add_argument("--only", choices=("package", "re-encoded", "torchvision"), nargs="+")
    e = sub.add_parser("reencode", help="only make the re-encoded copy")
    e.add_argument("--data", required=True, type=Path)
    e.add_argument("--to", required=True, type=Path)
    s = sub.add_parser("report", help="print the table of what the runs measured so far")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--work", type=Path)
    g.add_argument("--saved", type=Path, help="a table kept with --save")
    s.add_argument("--save", type=Path, help="also keep it in this JSON file")
    a = p.parse_args(argv)
    if a.command == "reencode":
        print(reencode(a.data, a.to))
    elif a.command == "report":
        report(a.work, a.save, a.saved)
    else:
        a.work.mkdir(parents=True, exist_ok=True)
        if not (a.work / "reencoded.tar.gz").exists():
            print("re-encoding the copy once more (JPEG quality 75, 4:2:0)", flush=True)
            reencode(a.data, a.work / "reencoded.tar.gz")
        for name, command in runs(a.data, a.work).items():
            if a.only and name not in a.only:
                continue
            last = last_epoch(a.work / name)
            if last and last["epoch"] == EPOCHS:
                continue
            print(f"--- {name}: {' '.join(command)}", flush=True)
            subprocess.run(command, check=True)
        report(a.work)


if __name__ == "__main__":
    main()
