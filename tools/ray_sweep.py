"""Reference sweeps on Ray: `python -m tools reproduce ... --ray [ADDRESS]`.

Each run of a set is one Ray task asking for its share of a machine (--gpus-per-run 0.25
packs four small networks on one GPU; --cpus-per-run on CPU machines), on this machine or
on a running cluster (`ray start --head` there, then --ray auto or --ray ray://HEAD:10001).
A task trains its run with `fit`, writing into <out>/<set>/<run>/, which every worker must
reach (a shared file system); it resumes from the run's checkpoint, so a task whose worker
dies (killed, out of memory, its machine lost) is retried by Ray and goes on from the last
finished epoch. The driver (this process) holds the lock on <out>, and afterwards stores
and records the set as the plain path does.

Ray is an extra: pip install -e ".[ray]".
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

#: How often Ray starts a run again after its worker died (Ray's `max_retries`).
RETRIES = 3
INSTALL = ('--ray needs Ray: pip install -e ".[ray]" (in the course\'s folder), or '
           'pip install "ray>=2.10,<3"')


def import_ray():
    """The ray module, or a ValueError saying in one line how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL) from None
    return ray


def train_task(rset, spec, out: str, data_source, device: str | None, precision: str,
               compile: str | None, command: str) -> dict:
    """One run, inside a Ray worker: train (or resume) it and say how it went."""
    import torch

    from resnet_nb.data import load_cifar10
    from resnet_nb.device import pick_device
    from resnet_nb.files import NotWritable, check_writable
    from tools.reproduce import run_dir, train_run

    folder = run_dir(Path(out), spec)
    try:
        check_writable(folder, "the run folder")
    except NotWritable as e:
        raise NotWritable(f"{e} on {socket.gethostname()}: every Ray worker must reach --out "
                          "(put it on a file system all the machines share)") from None
    if device is None:         # Ray chose this task's GPUs (CUDA_VISIBLE_DEVICES) or none
        import ray
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    dev = pick_device(device)
    t0 = time.perf_counter()
    h = train_run(rset, spec, Path(out), data=load_cifar10(data_source, verbose=False),
                  device=dev, precision=precision, compile=compile, command=command)
    return {"status": h.status, "history": h.to_dict(), "seconds": time.perf_counter() - t0,
            "node": socket.gethostname()}


def run_on_ray(todo, out: Path, *, address: str | None, gpus_per_run: float | None,
               cpus_per_run: float, data_source, device: str | None, precision: str,
               compile: str | None, command: str, say=print, report=None) -> bool:
    """Train the runs `todo` ([(set, spec)]) as Ray tasks; True when all finished.

    `address`: None or "local" starts Ray on this machine, else a running cluster's address
    ("auto", "ray://HEAD:10001"). `report(rset, spec, history, seconds, where)` prints a
    finished run. Ctrl-C cancels the tasks (each keeps its last finished epoch).
    """
    ray = import_ray()
    if address in (None, "local"):      # decoded once here: the workers read the cache
        from resnet_nb.data import load_cifar10
        load_cifar10(data_source)
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
    try:
        gpus = gpus_per_run
        if gpus is None:               # a GPU each where the cluster has GPUs
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        say(f"ray: {_resources(ray)}; each run asks for {cpus_per_run:g} CPU(s) and "
            f"{gpus:g} GPU(s)")
        task = ray.remote(train_task)
        pending = {}
        for rset, spec in todo:
            ref = task.options(name=f"train {rset.name} {spec.run_id}", num_cpus=cpus_per_run,
                               num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False
                               ).remote(rset, spec, str(out), data_source, device, precision,
                                        compile, command)
            pending[ref] = (rset, spec)
        return _collect(ray, pending, say, report)
    finally:
        ray.shutdown()


def _collect(ray, pending: dict, say, report) -> bool:
    """Wait for the tasks in `pending` ({ref: (set, spec)}), reporting each as it ends."""
    from resnet_nb.runs import History
    ok = True
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            rset, spec = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else None
                if isinstance(cause, (ValueError, OSError)):
                    raise cause from None      # a user's error: one line (resnet_nb.cli)
                raise
            except ray.exceptions.RayError as e:      # its worker or machine died every time
                say(f"{rset.name} {spec.run_id}: not finished, its worker died {RETRIES + 1} "
                    f"time(s) ({type(e).__name__}); the same command resumes it")
                ok = False
                continue
            h = History.from_dict(result["history"])
            report(rset, spec, h, result["seconds"], f"on {result['node']}")
            ok = ok and h.status == "completed"
    except KeyboardInterrupt:
        for ref in pending:         # KeyboardInterrupt in each task: fit keeps its epochs
            ray.cancel(ref)
        for ref in pending:
            try:
                ray.get(ref, timeout=120)
            except Exception:
                pass
        raise
    return ok


def _resources(ray) -> str:
    r = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return (f"{nodes} node(s), {r.get('CPU', 0):g} CPU(s), {r.get('GPU', 0):g} GPU(s)")
