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
    python benchmarks/jpeg_gap.py report --work runs/jpeg-gap

`run` makes the re-encoded copy (once), then trains the three in turn; each resumes from its
last finished epoch, so the command can be stopped and started again. `report` prints the
table from whatever has finished.
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


def report(work: Path) -> None:
    stats = work / "reencoded.json"
    if stats.exists():
        s = json.loads(stats.read_text())
        print(f"re-encoded copy: pixels moved by {s['mean_abs_difference']:.3f} levels of 255 on "
              f"average (PSNR {s['psnr_db']:.1f} dB against the offline copy)\n")
    print("| run | data | code | epochs | test error (%) | train error (%) | images/s (median) |")
    print("|---|---|---|---|---|---|---|")
    for name, data, code in (("package", "offline copy", "resnet_nb"),
                             ("re-encoded", "offline copy, JPEG q75 once more", "resnet_nb"),
                             ("torchvision", "offline copy", "torchvision_resnet20.py")):
        folder = work / name
        last = last_epoch(folder)
        if last is None:
            print(f"| {name} | {data} | {code} | 0 | not run | | |")
            continue
        epochs = json.loads((folder / "history.json").read_text())["epochs"]
        speeds = sorted(e["images_per_second"] for e in epochs)
        print(f"| {name} | {data} | {code} | {last['epoch']} | "
              f"{100 * (1 - last['test_acc']):.2f} | {100 * (1 - last['train_acc']):.2f} | "
              f"{speeds[len(speeds) // 2]:,.0f} |")


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
    s = sub.add_parser("report", help="print the table of the finished runs")
    s.add_argument("--work", required=True, type=Path)
    a = p.parse_args(argv)
    if a.command == "reencode":
        print(reencode(a.data, a.to))
    elif a.command == "report":
        report(a.work)
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
