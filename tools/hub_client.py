"""A JupyterHub on 127.0.0.1 and the students who use it, for tools/class_hub.py.

LoopbackHub runs configurable-http-proxy (from npm: .ci/hub_proxy.sh puts it in .hub-proxy/)
and JupyterHub on 127.0.0.1, as `run_as` decides (this user; as root, the unprivileged
`nobody` through a shim Python where this one sits under /root; else root with the servers'
--allow-root), and stops everything it started. A student is driven as a browser would:
their own token for the REST API (`api`, `spawn`), nbgitpuller's API (`pull`), the contents
API (`save`) and a kernel's websocket (`KernelClient`, `run_notebook`), nbgrader's server
extension (`submit`).
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / ".hub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE_ID = "resnet-nb"
ASSIGNMENT = "ps1"
RUN_MARK = "RESNET_NB_CLASS_HUB_RUN"     # in every process's environment, to find leftovers


class HubError(RuntimeError):
    """The class could not be simulated; the message says why and what to do."""


@dataclass(frozen=True)
class ClassSettings:
    """One simulated class."""

    students: int = 10
    notebook: str = "02_residual_formulation.ipynb"
    threads: int = 1                   # torch threads per kernel (a hub's 1-CPU limit)
    spawn_timeout_s: int = 180         # Spawner.http_timeout: 30 s (the default) fails 20 at once
    notebook_timeout_s: int = 900
    total_timeout_s: int = 1800
    allow_root: bool = False           # run the servers as root with --allow-root
    active_server_limit: int = 0       # JupyterHub.active_server_limit (0: none)
    # At most this many notebooks run at once (0: all); with a limit, each kernel is shut down
    # after its notebook, so that a class larger than this machine's memory can be measured.
    notebooks_at_once: int = 0


@dataclass
class Student:
    name: str
    token: str = ""
    spawn_s: float | None = None
    pull_s: float | None = None
    notebook_s: float | None = None
    cells: int = 0
    errors: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    pss_mb: float | None = None
    submitted: bool = False


# --- processes, ports, users ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RunAs:
    """Who runs the hub and the students' servers, and with which Python."""

    uid: int
    gid: int
    python: str
    mode: str                          # "this user", "unprivileged user nobody", "root ..."

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def _can_run(python: str, uid: int, gid: int) -> bool:
    code = "import jupyterhub, nbgrader, nbgitpuller, resnet_nb, torch"
    try:
        done = subprocess.run([python, "-c", code], user=uid, group=gid, extra_groups=[],
                              env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, cwd="/",
                              capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _shim_python(folder: Path) -> str | None:
    """A Python the unprivileged user can run with this environment's packages: a venv of a
    system Python of the same version whose site-packages adds this one's (this interpreter
    may sit under /root, which other users cannot enter)."""
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        return None
    done = subprocess.run([str(system), "-m", "venv", "--without-pip", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        return None
    purelib = subprocess.run([str(folder / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True).stdout.strip()
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "zz-class-hub.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in sorted(paths)))
    subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    return str(folder / "bin" / "python")


def closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users cannot enter, or `path` itself
    when they cannot read it; None when they can."""
    path = Path(path).resolve()
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            continue
        mode = folder.stat().st_mode
        needs = 0o001 if folder.is_dir() else 0o004      # enter a folder, read a file
        if folder == path and folder.is_dir():
            needs = 0o005
        if mode & needs != needs:
            return folder
    return None


def scratch_folder(prefix: str = "class-hub-") -> Path:
    """A temporary folder that an unprivileged user can enter (tempfile's are closed)."""
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def run_as(work: Path, allow_root: bool = False) -> RunAs:
    """This user when it is not root; as root, the unprivileged `nobody` with a Python it can
    run, else (or with allow_root) root with the servers' --allow-root. The students' servers
    must reach `work` and the shared CIFAR-10 copy (RESNET_NB_DATA)."""
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), sys.executable, "this user (not root)")
    data = os.environ.get("RESNET_NB_DATA")
    closed = closed_to_others(work) or (closed_to_others(Path(data)) if data else None)
    if closed is not None and not allow_root:
        return RunAs(0, 0, sys.executable, f"root, single-user servers with --allow-root "
                                           f"({closed} is closed to other users)")
    if not allow_root:
        nobody = pwd.getpwnam("nobody")
        for python in (sys.executable, _shim_python(work / "python")):
            if python and _can_run(python, nobody.pw_uid, nobody.pw_gid):
                return RunAs(nobody.pw_uid, nobody.pw_gid, python, "unprivileged user nobody")
    return RunAs(0, 0, sys.executable, "root, single-user servers with --allow-root")


def find_leftovers(run_id: str) -> list:
    """Processes of this run still alive (found by RUN_MARK in their environment)."""
    import psutil
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(RUN_MARK) == run_id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def kill_leftovers(run_id: str) -> int:
    import psutil
    procs = find_leftovers(run_id)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return len(procs)


# --- the hub ----------------------------------------------------------------------------

HUB_CONFIG = """\
# Written by tools/class_hub.py: a class hub on 127.0.0.1 for simulated students.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{hub}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{hub}/jupyterhub.pid"
# The proxy runs on its own (as on Zero to JupyterHub and TLJH): a hub restart leaves the
# routes, and the servers behind them, running.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.active_server_limit = {active_server_limit}
# As on The Littlest JupyterHub: the first login sets a student's password, so a second
# student who picks a name already taken is refused instead of opening its notebooks.
c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
c.FirstUseAuthenticator.dbm_path = "{hub}/passwords.dbm"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.http_timeout = {spawn_timeout}
c.Spawner.start_timeout = {spawn_timeout}
c.Spawner.environment = {environment!r}
c.JupyterHub.services = [{{"name": "class-teacher", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "class-teacher", "services": ["class-teacher"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users",
               "access:servers"]}}]
"""


class LoopbackHub:
    """configurable-http-proxy and JupyterHub on 127.0.0.1, in `work`; a context manager that
    stops the servers, the hub and the proxy, and then anything of this run still alive."""

    def __init__(self, work: Path, settings: ClassSettings, user: RunAs, environment: dict):
        self.work, self.settings, self.user = work, settings, user
        self.run_id = uuid.uuid4().hex
        self.hub_dir, self.homes = work / "hub", work / "homes"
        self.proxy_port, self.api_port, self.hub_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.admin_token, self.proxy_token = secrets.token_hex(32), secrets.token_hex(32)
        self.environment = {**environment, RUN_MARK: self.run_id}
        self.proxy = self.hub = None
        self.hub_start_s: list[float] = []

    def _env(self) -> dict:
        keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
        return {**keep, "HOME": str(self.hub_dir), RUN_MARK: self.run_id,
                "CONFIGPROXY_AUTH_TOKEN": self.proxy_token}

    def _popen(self, command: list[str], log: str) -> subprocess.Popen:
        out = open(self.hub_dir / log, "a")
        try:
            return subprocess.Popen(command, cwd=self.hub_dir, env=self._env(), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    user=self.user.uid, group=self.user.gid, extra_groups=[])
        finally:
            out.close()

    def write_config(self) -> None:
        for folder in (self.hub_dir, self.homes):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, self.user.uid, self.user.gid)
        args = ["--allow-root"] if self.user.is_root else []
        (self.hub_dir / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
            proxy_port=self.proxy_port, hub_port=self.hub_port, api_port=self.api_port,
            hub=self.hub_dir, homes=self.homes, python=self.user.python, args=args,
            spawn_timeout=self.settings.spawn_timeout_s, environment=self.environment,
            admin_token=self.admin_token,
            active_server_limit=self.settings.active_server_limit))

    def start_proxy(self) -> None:
        if not PROXY.exists():
            raise HubError(f"no configurable-http-proxy at {PROXY}: install it with "
                           "`bash .ci/hub_proxy.sh` (npm)")
        self.proxy = self._popen([str(PROXY), "--ip", "127.0.0.1", "--port",
                                  str(self.proxy_port), "--api-ip", "127.0.0.1", "--api-port",
                                  str(self.api_port), "--default-target",
                                  f"http://127.0.0.1:{self.hub_port}", "--error-target",
                                  f"http://127.0.0.1:{self.hub_port}/hub/error"], "proxy.log")

    def start_hub(self, timeout: float = 120) -> float:
        """Start JupyterHub; return the seconds until its API answered through the proxy."""
        t0 = time.perf_counter()
        self.hub = self._popen([self.user.python, "-m", "jupyterhub", "-f",
                                str(self.hub_dir / "jupyterhub_config.py")], "hub.log")
        while time.perf_counter() - t0 < timeout:
            if self.hub.poll() is not None:
                raise HubError(f"JupyterHub exited ({self.hub.returncode}): "
                               f"{self.log('hub.log')[-1500:]}")
            status, _ = self.request_sync("GET", "/hub/api/")
            if status == 200:
                took = time.perf_counter() - t0
                self.hub_start_s.append(took)
                return took
            time.sleep(0.25)
        raise HubError(f"JupyterHub did not answer within {timeout:.0f} s")

    def stop_hub(self) -> None:
        """Stop the hub alone (SIGTERM): with cleanup_servers off, servers keep running."""
        if self.hub and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait()

    def log(self, name: str) -> str:
        try:
            return (self.hub_dir / name).read_text(errors="replace")
        except OSError:
            return ""

    def request_sync(self, method: str, path: str, token: str | None = None,
                     body: dict | None = None, timeout: float = 30) -> tuple[int, object]:
        import urllib.error
        import urllib.request
        req = urllib.request.Request(self.url + path, method=method, headers={
            "Authorization": f"token {token or self.admin_token}"},
            data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw.strip() else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")[:500]
        except (OSError, ValueError) as e:
            return 0, str(e)

    def __enter__(self):
        self.write_config()
        self.start_proxy()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stop every server through the API, then the hub and the proxy, then leftovers."""
        if self.hub and self.hub.poll() is None:
            status, users = self.request_sync("GET", "/hub/api/users")
            for u in users if status == 200 and isinstance(users, list) else []:
                if u.get("servers"):
                    self.request_sync("DELETE", f"/hub/api/users/{u['name']}/server")
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline:
                status, users = self.request_sync("GET", "/hub/api/users")
                if status != 200 or not any(u.get("servers") for u in users):
                    break
                time.sleep(0.5)
        self.stop_hub()
        if self.proxy and self.proxy.poll() is None:
            self.proxy.terminate()
            try:
                self.proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
        kill_leftovers(self.run_id)


# --- a student, through the REST API and a kernel's websocket ---------------------------

class KernelDied(RuntimeError):
    """The student's kernel died while a cell ran (the server restarts it)."""


async def api(hub: LoopbackHub, method: str, path: str, token: str, body=None,
              timeout: float = 60, raw: bool = False):
    """One request through the proxy; returns (status, JSON or text)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
    req = HTTPRequest(hub.url + path, method=method, request_timeout=timeout,
                      headers={"Authorization": f"token {token}"},
                      body=None if body is None else json.dumps(body),
                      allow_nonstandard_methods=True)
    try:
        r = await AsyncHTTPClient().fetch(req)
        code, text = r.code, r.body.decode(errors="replace")
    except HTTPClientError as e:
        code = e.code
        text = e.response.body.decode(errors="replace") if e.response is not None else str(e)
    except OSError as e:
        return 0, str(e)
    if raw:
        return code, text
    try:
        return code, json.loads(text) if text.strip() else None
    except ValueError:
        return code, text[:500]


async def spawn(hub: LoopbackHub, student: Student, timeout: float) -> None:
    """Start the student's server with their own token; wait until the hub says it is ready."""
    t0 = time.perf_counter()
    status, said = await api(hub, "POST", f"/hub/api/users/{student.name}/server", student.token)
    if status not in (201, 202):
        raise HubError(f"{student.name}: the hub refused to start the server ({status}: {said})")
    while time.perf_counter() - t0 < timeout:
        status, user = await api(hub, "GET", f"/hub/api/users/{student.name}", student.token)
        server = (user or {}).get("servers", {}).get("", {}) if status == 200 else {}
        if server.get("ready"):
            student.spawn_s = time.perf_counter() - t0
            return
        if status == 200 and not server.get("pending") and not server:
            raise HubError(f"{student.name}: the server stopped while starting (see "
                           f"{hub.hub_dir / 'hub.log'})")
        await asyncio.sleep(0.5)
    raise HubError(f"{student.name}: the server was not ready within {timeout:.0f} s")


async def pull(hub: LoopbackHub, student: Student, repo: str, branch: str,
               folder: str) -> None:
    """What an nbgitpuller link does: pull the release into the student's home."""
    from urllib.parse import urlencode
    t0 = time.perf_counter()
    query = urlencode({"repo": repo, "branch": branch, "targetpath": folder})
    status, text = await api(hub, "GET", f"/user/{student.name}/git-pull/api?{query}",
                             student.token, timeout=300, raw=True)
    events = [json.loads(line[5:]) for line in str(text).splitlines()
              if line.startswith("data:")]
    if status != 200 or not events or events[-1].get("phase") != "finished":
        said = events[-1].get("message") if events else str(text)[:300]
        raise HubError(f"{student.name}: nbgitpuller did not finish ({status}: {said})")
    student.pull_s = time.perf_counter() - t0


def _message(msg_type: str, content: dict, session: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
                       "username": "student", "version": "5.3",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
            "buffers": []}


class KernelClient:
    """A kernel of the student's server, driven over its websocket (as the browser does)."""

    def __init__(self, hub: LoopbackHub, student: Student, kernel_id: str):
        self.hub, self.student, self.kernel_id = hub, student, kernel_id
        self.session, self.ws = uuid.uuid4().hex, None

    async def connect(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        url = (self.hub.url.replace("http", "ws", 1) + f"/user/{self.student.name}/api/kernels/"
               f"{self.kernel_id}/channels?session_id={self.session}")
        self.ws = await websocket_connect(HTTPRequest(url, headers={
            "Authorization": f"token {self.student.token}"}), max_message_size=256 << 20)
        await self.request("kernel_info_request", {}, timeout=120)

    async def request(self, msg_type: str, content: dict, timeout: float) -> tuple[dict, list]:
        """Send one shell request; return its reply and the outputs it produced."""
        msg = _message(msg_type, content, self.session)
        await self.ws.write_message(json.dumps(msg))
        reply, outputs, idle = None, [], False
        deadline = time.perf_counter() + timeout
        while reply is None or not idle:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no answer to {msg_type} within {timeout:.0f} s")
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            if raw is None:
                raise KernelDied("the connection to the kernel closed")
            m = json.loads(raw)
            state = m.get("content", {}).get("execution_state")
            if m.get("msg_type") == "status" and state in ("restarting", "dead"):
                raise KernelDied(f"the kernel died (status {state})")
            if m.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            if m["channel"] == "shell":
                reply = m["content"]
            elif m["msg_type"] == "status":
                idle = state == "idle"
            elif m["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                outputs.append(_output(m))
        return reply, outputs

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


def _output(m: dict) -> dict:
    c, kind = m["content"], m["msg_type"]
    if kind == "stream":
        return {"output_type": "stream", "name": c["name"], "text": c["text"]}
    if kind == "error":
        return {"output_type": "error", "ename": c["ename"], "evalue": c["evalue"],
                "traceback": c["traceback"]}
    out = {"output_type": kind, "data": c.get("data", {}), "metadata": c.get("metadata", {})}
    if kind == "execute_result":
        out["execution_count"] = c.get("execution_count")
    return out


async def open_kernel(hub: LoopbackHub, student: Student, path: str) -> KernelClient:
    status, session = await api(hub, "POST", f"/user/{student.name}/api/sessions",
                                student.token, {"path": path, "type": "notebook",
                                                "name": Path(path).name,
                                                "kernel": {"name": "python3"}}, timeout=180)
    if status != 201:
        raise HubError(f"{student.name}: no kernel for {path} ({status}: {session})")
    kernel = KernelClient(hub, student, session["kernel"]["id"])
    kernel.session_id = session["id"]
    await kernel.connect()
    return kernel


async def save(hub: LoopbackHub, student: Student, path: str, nb: dict) -> tuple[int, object]:
    """Save the notebook through the contents API, as the browser's save does."""
    return await api(hub, "PUT", f"/user/{student.name}/api/contents/{path}", student.token,
                     {"type": "notebook", "format": "json", "content": nb}, timeout=120)


async def run_notebook(hub: LoopbackHub, student: Student, path: str, timeout: float,
                       shutdown: bool = False) -> dict:
    """Run every code cell of the student's notebook in order through their kernel, as "Run
    all" does (an exercise left for the student, tagged raises-exception, may stop at its
    stub); save it with its outputs. A kernel that dies: the notebook is saved with the
    outputs so far, and KernelDied says so."""
    status, model = await api(hub, "GET", f"/user/{student.name}/api/contents/{path}",
                              student.token, timeout=120)
    if status != 200:
        raise HubError(f"{student.name}: cannot open {path} ({status}: {model})")
    nb = model["content"]
    kernel = await open_kernel(hub, student, path)
    t0 = time.perf_counter()
    try:
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            left = timeout - (time.perf_counter() - t0)
            try:
                reply, outputs = await kernel.request("execute_request", {
                    "code": cell["source"], "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                    timeout=max(left, 1))
            except KernelDied as e:
                saved, _ = await save(hub, student, path, nb)
                kept = ("is saved with the outputs so far" if saved in (200, 201)
                        else "could not be saved")
                raise KernelDied(f"{student.name}: {e} while cell {i} ran; the notebook {kept}: "
                                 "restart the kernel and run it again from the top") from None
            cell["outputs"], cell["execution_count"] = outputs, reply.get("execution_count")
            student.cells += 1
            if reply.get("status") == "error" and "raises-exception" not in \
                    cell.get("metadata", {}).get("tags", []):
                student.errors.append(f"cell {i}: {reply.get('ename')}: {reply.get('evalue')}")
                break
        student.notebook_s = time.perf_counter() - t0
        student.pss_mb = await asyncio.get_running_loop().run_in_executor(
            None, proportional_mb, hub.run_id, student.name)
    finally:
        await kernel.close()
        if shutdown:
            await api(hub, "DELETE", f"/user/{student.name}/api/sessions/{kernel.session_id}",
                      student.token)
    status, said = await save(hub, student, path, nb)
    if status not in (200, 201):
        student.errors.append(f"save: {status}: {said}")
    return nb


async def submit(hub: LoopbackHub, student: Student) -> None:
    """Fetch the assignment, answer it, and submit it through nbgrader's server extension
    (the Assignments tab's requests)."""
    body = {"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}
    status, listing = await api(hub, "POST", f"/user/{student.name}/assignments/fetch",
                                student.token, body, timeout=120)
    if status != 200 or not isinstance(listing, dict) or not listing.get("success", False):
        raise HubError(f"{student.name}: fetch failed ({status}: {str(listing)[:300]})")
    path = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    status, model = await api(hub, "GET", f"/user/{student.name}/api/contents/{path}",
                              student.token)
    if status != 200:
        raise HubError(f"{student.name}: the fetched assignment is not at {path} ({status})")
    nb = model["content"]
    for cell in nb["cells"]:
        if "raise NotImplementedError" in cell["source"]:
            cell["source"] = "def depth(n):\n    return 6 * n + 2\n"
    status, said = await save(hub, student, path, nb)
    if status not in (200, 201):
        raise HubError(f"{student.name}: could not save the assignment ({status}: {said})")
    status, result = await api(hub, "POST", f"/user/{student.name}/assignments/submit",
                               student.token, body, timeout=120)
    if status != 200 or not isinstance(result, dict) or not result.get("success", False):
        raise HubError(f"{student.name}: submit failed ({status}: {str(result)[:300]})")
    student.submitted = True


# --- the students' processes ------------------------------------------------------------

def student_processes(run_id: str) -> dict[str, list]:
    """Each student's processes (server and kernels), by the hub name in their environment."""
    import psutil
    found: dict[str, list] = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get(RUN_MARK) == run_id and env.get("JUPYTERHUB_USER"):
            found.setdefault(env["JUPYTERHUB_USER"], []).append(proc)
    return found


def proportional_mb(run_id: str, name: str) -> float:
    """A student's proportional set size now, in MB (shared pages divided among their users,
    so that the students' figures add up to the machine's)."""
    import psutil
    total = 0
    for proc in student_processes(run_id).get(name, []):
        try:
            total += proc.memory_full_info().pss
        except (psutil.Error, AttributeError):
            pass
    return total / 2**20
