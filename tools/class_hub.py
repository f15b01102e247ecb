"""A class on a real JupyterHub, simulated on this machine (127.0.0.1 only).

    python -m tools class_hub --students 10        # prints the measurements as JSON

What it does, in order, each step bounded in time, and then everything stopped:

1. the teacher's side: the class release (tools/release.py) as the branch `class` of a local
   git repository (what nbgitpuller pulls), CIFAR-10 decoded once into a shared cache, both
   left read-only to the students (RESNET_NB_DATA, RESNET_NB_CACHE in the hub's environment),
   and an nbgrader course with one assignment released into a shared exchange;
2. configurable-http-proxy (from npm, .ci/hub_proxy.sh puts it in .hub-proxy/) and JupyterHub
   (the first-use authenticator, as on The Littlest JupyterHub, the simple local
   spawner, Spawner.http_timeout 180 s) on
   127.0.0.1, as an unprivileged user when this runs as root (see `run_as` below);
3. N students, each with a token of their own from the REST API, start their servers at once,
   pull the release through nbgitpuller's API, run the smoke profile of one course notebook
   cell by cell through their own kernel (the kernels' websocket), save it, and fetch and
   submit the assignment through nbgrader's server extension;
4. the teacher collects the submissions with `nbgrader collect` and grades them with
   `nbgrader autograde`.

Measured: the hub's start, each student's spawn (request to ready), notebook time, and the
memory of each student's processes (server and kernel: peak resident set, and the
proportional set size at the end, which counts shared libraries once).

Running as root, the single-user servers refuse to start ("Running as root is not
recommended. Use --allow-root to bypass."); `run_as` (tools/hub_client.py) picks an unprivileged
user instead (nobody, with a Python it can run), or, where nobody cannot reach the course, runs
the servers with the one flag the root case needs: `--allow-root` in Spawner.args. The results
say which. The hub, its proxy and the students' client are in tools/hub_client.py.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tools.hub_client import (  # noqa: F401  (tests/hub/test_class_hub.py uses them from here)
    ASSIGNMENT, COURSE_ID, PROXY, ClassSettings, HubError, KernelDied, LoopbackHub, RunAs,
    Student, api, closed_to_others, find_leftovers, open_kernel, proportional_mb, pull, run_as,
    run_notebook, save, scratch_folder, spawn, student_processes, submit)


# --- the teacher's side ----------------------------------------------------------------

ASSIGNMENT_CELLS = [
    ("markdown", {}, "Write `depth(n)`: the number of weighted layers of the CIFAR ResNet "
                     "with n blocks per stage (He et al. 2015, Sec. 4.2)."),
    ("code", {"solution": True, "grade": False, "locked": False, "grade_id": "depth"},
     "def depth(n):\n    ### BEGIN SOLUTION\n    return 6 * n + 2\n    ### END SOLUTION"),
    ("code", {"solution": False, "grade": True, "locked": True, "points": 1,
              "grade_id": "test_depth"}, "assert depth(3) == 20 and depth(18) == 110"),
]


def nbgrader(course: Path, *args: str, timeout: float = 600) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # alembic
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PATH": path})
    if done.returncode != 0:
        raise HubError(f"nbgrader {args[0]} failed: {(done.stdout + done.stderr)[-1500:]}")
    return done.stdout + done.stderr


def prepare_course(work: Path, user: RunAs) -> tuple[Path, Path]:
    """An nbgrader course with one assignment released into a shared exchange; the students'
    nbgrader configuration (the exchange, the course, their hub name as student id)."""
    import nbformat
    course, exchange, etc = work / "course", work / "exchange", work / "etc-jupyter"
    for folder in (course / "source" / ASSIGNMENT, exchange, etc):
        folder.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o777)                                   # nbgrader's shared exchange
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n")
    (etc / "nbgrader_config.py").write_text(
        "import os\nc = get_config()\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n"
        "# Every student's server may run as one system user: name them by their hub name.\n"
        "c.CourseDirectory.student_id = os.environ.get('JUPYTERHUB_USER', '*')\n")
    nb = nbformat.v4.new_notebook()
    for kind, meta, source in ASSIGNMENT_CELLS:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(
            source)
        if meta:
            cell.metadata["nbgrader"] = {**meta, "schema_version": 3}
        nb.cells.append(cell)
    nbformat.write(nb, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(course, "release_assignment", ASSIGNMENT, "--force")
    return course, etc


def prepare_release(work: Path, user: RunAs) -> str:
    """The class release as the branch `class` of a local repository: the nbgitpuller URL."""
    from tools import release
    repo = work / "course.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    release.make_release_folder(work / "release")
    release.commit_release(work / "release", "class", repo, "class release (loopback class)")
    # Owned by the students' user: git refuses a repository another user owns ("dubious
    # ownership"); on a real hub the release comes from GitHub.
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(repo)], check=True)
    return repo.as_uri()


def prepare_data(work: Path, reuse: Path | None = None) -> tuple[str, Path, float]:
    """CIFAR-10 decoded once into a shared cache, then made read-only (folder and file):
    (RESNET_NB_DATA, RESNET_NB_CACHE, seconds). A decode found in `reuse` (default: this
    user's cache) is copied instead when it is this copy's."""
    from resnet_nb import data as D
    source = os.environ.get("RESNET_NB_DATA")
    if not source or not Path(source).exists():
        raise HubError("RESNET_NB_DATA does not name a CIFAR-10 copy: the class reads one "
                       "shared copy (e.g. export RESNET_NB_DATA=.../cifar10-jpeg.tar.gz)")
    cache = work / "shared" / "cache"
    cache.mkdir(parents=True)
    t0 = time.perf_counter()
    # A decode this machine made before is copied (the loader reads it when it is this
    # copy's, and decodes again when it is not); the loader leaves the one it uses.
    for old in sorted(Path(reuse or D.default_cache_dir()).glob("cifar10-*.pt"))[:3]:
        shutil.copy2(old, cache / old.name)
    D.load_cifar10(source, cache_dir=cache, verbose=False)
    took = time.perf_counter() - t0
    for path in cache.iterdir():
        path.chmod(0o444)
    cache.chmod(0o555)
    return str(Path(source).resolve()), cache, took


# --- measuring -------------------------------------------------------------------------

class MemorySampler:
    """Samples every student's resident memory (server + kernels) every `every` seconds in a
    thread; keeps each one's peak."""

    def __init__(self, run_id: str, students: dict[str, Student], every: float = 2.0):
        import threading
        self.run_id, self.students, self.every = run_id, students, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil
        while not self._stop.is_set():
            for name, procs in student_processes(self.run_id).items():
                rss = 0
                for proc in procs:
                    try:
                        rss += proc.memory_info().rss
                    except psutil.Error:
                        pass
                if name in self.students:
                    s = self.students[name]
                    s.peak_rss_mb = max(s.peak_rss_mb, rss / 2**20)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def _spread(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1), "min": round(min(values), 1)}


# --- the class -------------------------------------------------------------------------

def student_names(n: int) -> list[str]:
    return [f"student{i:02d}" for i in range(1, n + 1)]


def create_students(hub: LoopbackHub, names: list[str]) -> dict[str, Student]:
    """The students, created by the teacher's service, each with a token of their own."""
    status, said = hub.request_sync("POST", "/hub/api/users", body={"usernames": names})
    if status != 201:
        raise HubError(f"could not create the students ({status}: {said})")
    students = {}
    for name in names:
        status, token = hub.request_sync("POST", f"/hub/api/users/{name}/tokens",
                                         body={"note": "class test", "expires_in": 7200})
        if status != 201:
            raise HubError(f"no token for {name} ({status}: {token})")
        students[name] = Student(name, token["token"])
    return students


async def student_session(hub: LoopbackHub, student: Student, repo: str, notebook: str,
                          settings: ClassSettings, turns: asyncio.Semaphore | None) -> None:
    """One student's class: log in (their token), start, pull, run the notebook, submit."""
    try:
        await spawn(hub, student, settings.spawn_timeout_s + 30)
        await pull(hub, student, repo, "class", "resnet-nb")
        if turns is None:
            await run_notebook(hub, student, f"resnet-nb/notebooks/{notebook}",
                               settings.notebook_timeout_s)
        else:
            async with turns:
                await run_notebook(hub, student, f"resnet-nb/notebooks/{notebook}",
                                   settings.notebook_timeout_s, shutdown=True)
        await submit(hub, student)
    except (HubError, KernelDied, TimeoutError, OSError) as e:
        student.errors.append(str(e))


def environment(data: str, cache: Path, etc: Path, settings: ClassSettings) -> dict:
    """The students' environment, as the hub sets it (deploy/ sets the same variables)."""
    return {"RESNET_NB_PROFILE": "smoke", "RESNET_NB_DATA": data, "RESNET_NB_CACHE": str(cache),
            "TQDM_DISABLE": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "OMP_NUM_THREADS": str(settings.threads), "PYTHONDONTWRITEBYTECODE": "1",
            # The students' nbgrader settings, then this environment's (its server extensions:
            # nbgitpuller, nbgrader), also when the servers run a shim Python (run_as).
            "JUPYTER_CONFIG_PATH": os.pathsep.join([str(etc), f"{sys.prefix}/etc/jupyter"]),
            "JUPYTER_PATH": f"{sys.prefix}/share/jupyter"}


def prepare(work: Path, settings: ClassSettings, shared: tuple[str, Path] | None = None
            ) -> tuple[RunAs, str, dict, Path, dict]:
    """The teacher's side: who runs it, the release, the shared data (`shared`: a copy and
    cache prepared before), the course."""
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    user = run_as(work, settings.allow_root)
    repo = prepare_release(work, user)
    data, cache, decode_s = (*shared, 0.0) if shared else prepare_data(work)
    course, etc = prepare_course(work, user)
    timing = {"prepare_s": round(time.perf_counter() - t0, 1), "shared_cache_s": round(decode_s, 1)}
    return user, repo, environment(data, cache, etc, settings), course, timing


def collect(course: Path) -> tuple[list[str], dict[str, float]]:
    """The teacher collects and autogrades; returns who was collected and their scores."""
    nbgrader(course, "collect", ASSIGNMENT)
    submitted = course / "submitted"
    collected = sorted(p.name for p in (submitted.iterdir() if submitted.is_dir() else [])
                       if (p / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file())
    if not collected:
        return [], {}
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(ASSIGNMENT, s).score for s in collected}
    return collected, scores


def run_class(settings: ClassSettings, work: Path, shared: tuple[str, Path] | None = None
              ) -> dict:
    """Simulate one class in `work` (a scratch folder); return the measurements."""
    t_all = time.perf_counter()
    user, repo, env, course, timing = prepare(work, settings, shared)
    students: dict[str, Student] = {}
    with LoopbackHub(work, settings, user, env) as hub:
        hub_start = hub.start_hub()
        students = create_students(hub, student_names(settings.students))
        t0 = time.perf_counter()
        with MemorySampler(hub.run_id, students):
            async def everyone():
                from tornado.httpclient import AsyncHTTPClient
                AsyncHTTPClient.configure(None, max_clients=max(10, 2 * settings.students))
                turns = (asyncio.Semaphore(settings.notebooks_at_once)
                         if settings.notebooks_at_once else None)
                await asyncio.gather(*(student_session(hub, s, repo, settings.notebook,
                                                       settings, turns)
                                       for s in students.values()))
            try:
                asyncio.run(asyncio.wait_for(everyone(), settings.total_timeout_s))
            except asyncio.TimeoutError:
                for s in students.values():
                    if not s.submitted and not s.errors:
                        s.errors.append(f"not done within {settings.total_timeout_s} s")
        class_s = time.perf_counter() - t0
        collected, scores = collect(course)
        leftovers_before_close = len(find_leftovers(hub.run_id))
    left = len(find_leftovers(hub.run_id))
    return {
        "students": settings.students, "notebook": settings.notebook, "run_as": user.mode,
        "notebooks_at_once": settings.notebooks_at_once or settings.students,
        "torch_threads_per_kernel": settings.threads, "cpus": os.cpu_count(),
        **timing, "hub_start_s": round(hub_start, 1),
        "spawn_s": _spread([s.spawn_s for s in students.values()]),
        "pull_s": _spread([s.pull_s for s in students.values()]),
        "notebook_s": _spread([s.notebook_s for s in students.values()]),
        "peak_rss_mb": _spread([s.peak_rss_mb or None for s in students.values()]),
        "pss_mb_after_notebook": _spread([s.pss_mb for s in students.values()]),
        "class_s": round(class_s, 1), "collected": collected, "scores": scores,
        "processes_while_running": leftovers_before_close, "processes_left": left,
        "errors": {s.name: s.errors for s in students.values() if s.errors},
        "wall_s": round(time.perf_counter() - t_all, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Simulate a class on a real JupyterHub on "
                                            "127.0.0.1 and print the measurements (JSON).")
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--notebook", default=ClassSettings.notebook)
    p.add_argument("--threads", type=int, default=ClassSettings.threads,
                   help="torch threads per kernel (default 1, a hub's 1-CPU limit)")
    p.add_argument("--notebooks-at-once", type=int, default=0,
                   help="run at most this many notebooks at once (default: all)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--allow-root", action="store_true",
                   help="as root, run the servers as root with --allow-root")
    args = p.parse_args(argv)
    if not 1 <= args.students <= 200:
        p.error("--students must be between 1 and 200")
    settings = ClassSettings(students=args.students, notebook=args.notebook,
                             threads=args.threads, allow_root=args.allow_root,
                             notebooks_at_once=args.notebooks_at_once)
    tmp = scratch_folder()
    try:
        result = run_class(settings, args.work or tmp / "class")
    except HubError as e:
        print(f"class_hub: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0 if not result["errors"] and len(result["collected"]) == args.students else 1


if __name__ == "__main__":
    raise SystemExit(main())
