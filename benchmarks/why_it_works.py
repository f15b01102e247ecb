"""Time the figures and the widget of notebook 07 ("why it works") under a profile.

    RESNET_NB_DATA=... python benchmarks/why_it_works.py [--profile cpu] [--device cpu]
        [--repeats 3] [--threads 2] [--weights DIR] [--record]

Each figure's computation (what the notebook times; drawing excluded) is run `--repeats`
times, and the landscape widget (widgets.LandscapeLab, built on those slices and contours)
is updated by moving its slider to at least 10 other positions: its own update path, as in
the notebook (a lookup on the slices and the drawing). Printed: the wall time's median, min and max, and the median
of the process's CPU time divided by the number of threads: on a machine shared with other
work the wall time grows with the load, while CPU time / threads estimates the wall time
on cores of its own (a lower bound where the threads are not kept busy). The networks are the course's
reference runs where installed, else state dicts named like `resnet-56.pt` in `--weights`,
else freshly initialised networks: the time of a probe does not depend on the weights'
values. `--record` writes the result, with the machine and the date, into
notebooks/timings.json under "figures" (the notebook wall times there are kept).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def networks(profile, device, weights: Path | None):
    import torch
    from resnet_nb import cifar_resnet, reference
    nets, sources = {}, set()
    for depth in profile.depths:
        for shortcut in ("none", "A"):
            key = f"{'plain' if shortcut == 'none' else 'resnet'}-{depth}"
            if profile.name != "smoke" and reference.has_model(key):
                model, source = reference.load_model(key), "reference runs"
            elif weights is not None and (weights / f"{key}.pt").exists():
                model = cifar_resnet(depth, shortcut)
                model.load_state_dict(torch.load(weights / f"{key}.pt", weights_only=True))
                source = f"weights from {weights.name}/"
            else:
                torch.manual_seed(0)
                model, source = cifar_resnet(depth, shortcut), "untrained networks"
            nets[model.name] = model.to(device).eval()
            sources.add(source)
    return nets, ", ".join(sorted(sources))


def figure_work(profile, device, data, nets: dict) -> dict:
    """The computation of each of 07's figures, as the notebook runs it: name -> a callable."""
    import numpy as np
    import torch
    from resnet_nb import cifar_resnet
    from resnet_nb.data import Batches, normalize
    from resnet_nb.probes import (filter_normalized_direction, gradient_correlation,
                                  layer_responses, loss_slice, loss_surface,
                                  path_length_gradients, sampled_path_gradients,
                                  with_batch_statistics)

    shallow, deep = profile.depths
    resnet_deep = nets[f"ResNet-{deep} (A)"]
    deep_nets = [nets[f"plain-{deep}"], resnet_deep]
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    chosen = data.train.take(order[:profile.landscape_images])
    lx, ly = normalize(chosen.images).to(device), chosen.labels.to(device)
    alphas = np.linspace(-1, 1, profile.landscape_points)
    grid = np.linspace(-1, 1, profile.landscape_grid)
    d1 = {m.name: filter_normalized_direction(m, seed=1) for m in deep_nets}
    d2 = {m.name: filter_normalized_direction(m, seed=2) for m in deep_nets}
    calibration = normalize(data.train.take(order[:profile.probe_batch]).images).to(device)
    pair = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(1))[:2]
    x0, x1 = normalize(data.test.images[pair]).to(device)
    px, py = lx[:profile.path_images], ly[:profile.path_images]

    def responses():
        batches = Batches(data.test, 500, device=device)
        return [layer_responses(m, batches) for m in nets.values()]

    def slices():
        return [loss_slice(m, d1[m.name], alphas, lx, ly) for m in deep_nets]

    def surfaces():
        return [loss_surface(m, d1[m.name], d2[m.name], grid, grid, lx, ly) for m in deep_nets]

    def shattering():
        out = []
        for shortcut in ("none", "A"):
            for depth in profile.shatter_depths:
                torch.manual_seed(0)
                model = with_batch_statistics(cifar_resnet(depth, shortcut).to(device),
                                              calibration)
                out.append(gradient_correlation(model, x0, x1, profile.shatter_points))
        return out

    def paths():
        torch.manual_seed(0)
        initial = with_batch_statistics(cifar_resnet(deep, "A").to(device), calibration)
        return [(sampled_path_gradients(m, px, py, samples=profile.path_samples),
                 path_length_gradients(m, px, py)) for m in (resnet_deep, initial)]

    return {"figures": {"1 layer responses": responses, "2a loss slices (1-D)": slices,
                        "2b loss contours (2-D)": surfaces, "3 shattered gradients": shattering,
                        "4 effective paths": paths},
            "landscape": (deep_nets, d1, lx, ly)}


def time_widget(landscape, slices, surfaces, repeats: int, threads: int):
    """LandscapeLab.update as the notebook shows it, by moving its slider to other positions
    (each a point of the slices: a lookup, a marker moved, a PNG); wall and CPU seconds."""
    import numpy as np
    from resnet_nb.widgets import LandscapeLab

    lab = LandscapeLab(*landscape, slices, surfaces)
    options = [value for _label, value in lab.alpha.options if value != lab.alpha.value]
    count = min(len(options), max(4 * repeats, 10))
    positions = [options[i] for i in np.unique(np.linspace(0, len(options) - 1, count)
                                               .round().astype(int))]
    wall, cpu = [], []
    for a in positions:
        t0, c0 = time.perf_counter(), time.process_time()
        lab.alpha.value = a                     # observe -> lab.update()
        wall.append(time.perf_counter() - t0)
        cpu.append((time.process_time() - c0) / threads)
    assert len(lab.seconds) == 1 + len(positions) and lab._cache == {}, "not the lookup path"
    return wall, cpu


def record(results: dict, cpu: dict, profile, device, machine: str, threads: int,
           source: str, load: float) -> Path:
    """Keep the figures' times in notebooks/timings.json, under "figures"."""
    path = ROOT / "notebooks" / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    entry = {name: {"median_s": round(statistics.median(t), 2), "min_s": round(min(t), 2),
                    "max_s": round(max(t), 2), "runs": len(t),
                    "cpu_time_per_thread_median_s": round(statistics.median(cpu[name]), 2)}
             for name, t in results.items()}
    entry = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "machine": machine, "threads": threads, "networks": source,
             "load_average_at_end": round(load, 2), "timed": entry}
    key = f"{profile.name}" + ("" if device.type == "cpu" else f" ({device.type})")
    timings.setdefault("figures", {}).setdefault("07_why_it_works.ipynb", {})[key] = entry
    timings["figures_note"] = ("computation time of each figure of a notebook and of one "
                               "widget update (benchmarks/why_it_works.py)")
    path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    p.add_argument("--device", default=None, help="default: cpu, except cuda for --profile gpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)

    import torch
    from resnet_nb import get_profile, load_cifar10, pick_device
    from resnet_nb.provenance import machine_description

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    device = pick_device(args.device or ("cpu" if args.profile != "gpu" else None))
    data = load_cifar10().subset(train=profile.train_size, test=profile.test_size, seed=0)
    nets, source = networks(profile, device, args.weights)
    work = figure_work(profile, device, data, nets)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    results, cpu, kept = {}, {}, {}

    def report(name):
        t, c = results[name], cpu[name]
        print(f"{name:<26} median {statistics.median(t):7.2f} s  (min {min(t):.2f}, max "
              f"{max(t):.2f}, {len(t)} runs);  CPU time / {threads} threads: median "
              f"{statistics.median(c):.2f} s", flush=True)

    for name, compute in work["figures"].items():
        results[name], cpu[name] = [], []
        for _ in range(args.repeats):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            kept[name] = compute()
            sync()
            results[name].append(time.perf_counter() - t0)
            cpu[name].append((time.process_time() - c0) / threads)
        report(name)
    results["widget update"], cpu["widget update"] = time_widget(
        work["landscape"], kept["2a loss slices (1-D)"], kept["2b loss contours (2-D)"],
        args.repeats, threads)
    report("widget update")

    machine = machine_description()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"profile {profile.name}, device {device}, {threads} CPU threads, {source}; "
          f"{machine}; load average {load:.1f} at the end")
    if args.record:
        path = record(results, cpu, profile, device, machine, threads, source, load)
        print(f"recorded in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
