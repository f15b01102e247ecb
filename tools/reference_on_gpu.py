"""One prepared session on a lent GPU: benchmark, then the reference runs, then pack the results.

    python -m tools.reference_on_gpu --data PATH --archive RESULTS.tar.gz --seconds 500 \\
        [--queue "fig6 --seeds 0" "table6:20,56 --seeds 0" "fig6 --seeds 1 2"] \\
        [--compile reduce-overhead --jobs 1] [--no-precision-check] [--notebooks gpu]

Steps, each bounded so that the whole script ends within --seconds:

1. versions, device, `nvidia-smi`;
2. decode CIFAR-10 once into the cache;
3. benchmarks/precision_and_compile.py on ResNet-20: fp32 / fp16 / bf16 and the two
   torch.compile modes (speed ratios; the fastest working mode trains the reference runs),
   unless --compile names the mode (then --jobs, default 1, says how many train at once);
4. the reference runs, in --queue order, with `python -m tools reproduce ... --jobs N`
   (N = 8 eager, 4 compiled); at the same time, short ResNet-20 runs in fp32, fp16 and bf16
   (2 seeds each) check that fp16 with loss scaling trains as well as float32 (not with
   --no-precision-check), and with --notebooks PROFILE the course notebooks run top to
   bottom under that profile (tools/run_notebooks.py, on copies in the work folder, the
   heavy ones first; their times, recorded with a note that the device was shared, are
   upper bounds); at the deadline everything is interrupted (Ctrl-C): each run keeps its
   last finished epoch;
5. pack reference/ (histories, weights, manifest, set records; checkpoints only of
   unfinished runs), the logs, the benchmark, the executed notebooks and their times into
   --archive.

It works on the CPU too (with --smoke: tiny budgets), which is how it is tested before a
GPU is spent on it.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T0 = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f} s] {msg}", flush=True)


def run(cmd: list[str], timeout: float, logfile: Path) -> int:
    """Run a command with its output in `logfile` (and its tail on screen); SIGINT at timeout."""
    log(f"$ {' '.join(map(shlex.quote, cmd))}  (at most {timeout:.0f} s)")
    with open(logfile, "ab") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            return proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            log("  deadline: interrupting (Ctrl-C)")
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()


# The notebooks whose training dominates their time first, so that a short session times them.
NOTEBOOK_ORDER = ("01", "04", "06", "05", "07", "02", "03", "00")


class NotebookRuns:
    """Run copies of the course notebooks under a profile, one after the other, in the background.

    Each notebook gets a run_notebooks.py process of its own (and a process group of its own,
    so that at the deadline it ends with its kernel: nbclient answers Ctrl-C and SIGTERM by
    shutting the kernel down and going on to the next notebook). The copies (work/notebooks/)
    run with notebooks/ as their working folder, as the originals would; the committed
    notebooks keep their cpu-profile outputs. Each time goes to work/timings.json as soon as
    it is measured, with a note when the device was shared with reference runs.
    """

    def __init__(self, profile: str, work: Path, py: str, order=NOTEBOOK_ORDER,
                 note: str | None = None):
        copies = work / "notebooks"
        copies.mkdir(parents=True, exist_ok=True)
        originals = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"),
                           key=lambda q: (list(order).index(q.name[:2])
                                          if q.name[:2] in order else 99, q.name))
        self.commands = []
        for nb in originals:
            shutil.copy2(nb, copies / nb.name)
            self.commands.append(
                [py, "-m", "tools.run_notebooks", "--profile", profile, "--timeout", "300",
                 "--timings", str(work / "timings.json"),
                 *(["--note", note] if note else []), str(copies / nb.name)])
        self.log = work / "notebooks.log"
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        log(f"notebooks under the {profile} profile, in the background: "
            f"{', '.join(nb.name[:2] for nb in originals)}")
        self.thread = threading.Thread(target=self._run_all, daemon=True)
        self.thread.start()

    def _run_all(self) -> None:
        for cmd in self.commands:
            if self.stopped:
                return
            with open(self.log, "ab") as f:
                self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                             start_new_session=True)
                self.proc.wait()

    def wait(self, timeout: float) -> None:
        """Wait until every notebook ran or `timeout` passed; then end the one running."""
        self.thread.join(timeout=max(1.0, timeout))
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            log("  deadline: ending the notebook run and its kernel")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.thread.join(timeout=10)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--archive", required=True)
    p.add_argument("--seconds", type=float, default=500, help="the whole script's budget")
    p.add_argument("--out", default="reference", help="the reference folder (default reference/)")
    p.add_argument("--work", default="runs/gpu-session", help="logs and scratch runs")
    p.add_argument("--queue", nargs="*", default=["fig6 table6:20,56 --seeds 0 1 2"],
                   help="reproduce commands, run one after the other; within one, seed 0 of "
                        "every set comes first")
    p.add_argument("--compile", choices=("off", "default", "reduce-overhead"),
                   help="train the reference runs in this mode and skip the benchmark")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once with --compile (default 1)")
    p.add_argument("--no-precision-check", action="store_true",
                   help="skip the fp32/fp16/bf16 training check")
    p.add_argument("--notebooks", choices=("smoke", "cpu", "gpu"),
                   help="also run every notebook under this profile and record its time")
    p.add_argument("--notebook-order", nargs="+", default=list(NOTEBOOK_ORDER), metavar="NN",
                   help="the order the notebooks run in (default: %(default)s)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny budgets and synthetic-size runs, to test this script on a CPU")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    work = ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    out = ROOT / args.out
    deadline = args.seconds - 45          # keep time to stop the runs and pack
    py = sys.executable
    os.environ.setdefault("RESNET_NB_DATA", str(Path(args.data).resolve()))
    os.environ.setdefault("TQDM_DISABLE", "1")
    describe_machine(work / "environment.txt", py)                                     # 1.
    run([py, "-c", "from resnet_nb import load_cifar10; load_cifar10()"], 120,         # 2.
        work / "data.log")
    mode, jobs = training_mode(args, work, py, deadline)                                # 3.
    prec = start_precision_checks(args, work, py)                                       # 4.
    shared = ("measured while the same device trained reference runs (an upper bound)"
              if args.queue else None)
    notebooks = NotebookRuns(args.notebooks, work, py, args.notebook_order, shared) \
        if args.notebooks else None
    reference_runs(args, out, work, py, mode, jobs, deadline)
    if notebooks:
        notebooks.wait(deadline - elapsed())
    for proc in prec:
        try:
            proc.wait(timeout=max(1, deadline - elapsed()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    run([py, "-m", "tools.reproduce", "--summary", "--out", str(out)], 30, work / "summary.md")
    pack(args.archive, out, work)                                                       # 5.
    print((work / "summary.md").read_text() if (work / "summary.md").exists() else "")
    return 0


def describe_machine(env_note: Path, py: str) -> None:
    """Step 1: what machine is this (nvidia-smi, python -m resnet_nb info) into `env_note`."""
    with open(env_note, "w") as f:
        for cmd in (["nvidia-smi"], [py, "-m", "resnet_nb", "info"]):
            try:
                f.write(subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                       timeout=60).stdout)
            except (OSError, subprocess.SubprocessError) as e:
                f.write(f"{cmd[0]}: {e}\n")
    log(env_note.read_text().strip().splitlines()[-1] if env_note.read_text().strip() else "")


def training_mode(args, work: Path, py: str, deadline: float) -> tuple[str | None, int]:
    """Step 3: (compile mode or None, runs at once) for the reference runs: as given by
    --compile and --jobs, else from the benchmark (compiled 4 at a time where it is more than
    10% faster than eager, else eager 8 at a time)."""
    bench_json = work / "bench.json"
    if args.compile:
        bench_json.unlink(missing_ok=True)
    bench = [py, "benchmarks/precision_and_compile.py", "--depths", "20", "--json",
             str(bench_json)]
    bench += ["--steps", "3", "--warm-steps", "2", "--repeats", "1",
              "--variants", "eager-fp32"] if args.smoke else \
        ["--steps", "50", "--warm-steps", "12", "--repeats", "3"]
    mode, jobs = None, 8
    if args.compile:
        mode = None if args.compile == "off" else args.compile
        jobs = args.jobs
        log(f"reference runs: compile={args.compile}, {jobs} at a time (no benchmark)")
    else:
        run(bench, min(150, deadline - elapsed()), work / "bench.log")
    if bench_json.exists():
        rows = json.loads(bench_json.read_text())["depths"]["20"]["variants"]
        eager = rows.get("eager-bf16", rows.get("eager-fp32", {})).get("median", 0)
        best = max(rows.items(), key=lambda kv: kv[1]["median"])
        if best[0].startswith("compile-") and best[1]["median"] > 1.1 * eager:
            mode = best[0][len("compile-"):].rsplit("-", 1)[0]
            jobs = 4
        log(f"bench: eager {eager:,.0f} images/s; fastest {best[0]} {best[1]['median']:,.0f}; "
            f"reference runs: compile={mode or 'off'}, {jobs} at a time")
    return mode, jobs


def start_precision_checks(args, work: Path, py: str) -> list[subprocess.Popen]:
    """Step 4, in the background: short ResNet-20 runs in fp32, fp16 and bf16, 2 seeds each."""
    prec = []
    budget = ["--epochs", "1", "--train-size", "256", "--test-size", "128"] if args.smoke else \
        ["--epochs", "3", "--train-size", "all", "--test-size", "all"]
    precisions = [] if args.no_precision_check else ["fp32"] if args.smoke else \
        ["fp32", "fp16", "bf16"]
    for precision in precisions:
        for seed in (0, 1):
            folder = work / "precision" / f"{precision}-seed{seed}"
            cmd = [py, "-m", "resnet_nb", "train", "--depth", "20", "--recipe", "paper",
                   "--precision", precision, "--seed", str(seed), "--out", str(folder), *budget]
            prec.append(subprocess.Popen(cmd, cwd=ROOT, stdout=open(work / "precision.log", "ab"),
                                         stderr=subprocess.STDOUT))
    return prec


def reference_runs(args, out: Path, work: Path, py: str, mode: str | None, jobs: int,
                   deadline: float) -> None:
    """Step 4, in the foreground: each --queue item with `python -m tools.reproduce`."""
    extra = ["--out", str(out), "--jobs", str(jobs)] + (["--compile", mode] if mode else [])
    if args.smoke:
        extra += ["--epochs", "1", "--train-size", "256", "--test-size", "128",
                  "--val-size", "64"]
    for item in args.queue:
        left = deadline - elapsed()
        if left < 20:
            log(f"no time left for: {item}")
            continue
        run([py, "-m", "tools.reproduce", *shlex.split(item), *extra], left,
            work / "reproduce.log")


def pack(archive: str, out: Path, work: Path) -> None:
    """Step 5: `out` and `work` into `archive`, without the checkpoints of finished runs."""
    def keeper(base: Path, arcname: str):
        def keep(info: tarfile.TarInfo):
            path = base / Path(info.name).relative_to(arcname)
            history = path.parent / "history.json"
            if path.name == "checkpoint.pt" and history.exists():
                if json.loads(history.read_text()).get("status") == "completed":
                    return None    # finished: its weights are exported where they are needed
            return info
        return keep

    with tarfile.open(archive, "w:gz") as tar:
        for base in (out, work):
            if base.exists():
                arcname = base.name if base.is_absolute() else str(base.relative_to(ROOT))
                tar.add(base, arcname=arcname, filter=keeper(base, arcname))
    log(f"packed {archive} ({Path(archive).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    raise SystemExit(main())
