"""What the tests that drive a browser or start servers share (tests/browser, tests/site,
tests/tools/test_slides.py, tests/hub): Debian's chromium driven by Playwright for Python (no
browser download), a free local port, and the rule for a missing tool: skipped with the command
that installs it, and a failure in CI (CI=true)."""
import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


def unavailable(reason: str):
    """Skip for a missing tool, with what installs it; in CI fail instead."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def chromium() -> str:
    """The path of a Chromium binary: RESNET_NB_CHROMIUM, or Debian's chromium."""
    path = os.environ.get("RESNET_NB_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not path:
        unavailable("no chromium: install it with `apt-get install chromium` "
                    "(or set RESNET_NB_CHROMIUM to a Chromium binary)")
    return path


def playwright():
    """playwright.sync_api.sync_playwright, which drives the system chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright); "
                    "it drives the system chromium, no browser download is needed")
    return sync_playwright


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_context(p, tmp_path: Path, executable: str):
    """A headless chromium (from `sync_playwright() as p`) with its own profile in tmp_path."""
    return p.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=executable, headless=True,
        args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})


@contextlib.contextmanager
def headless_chromium(tmp_path: Path):
    """A browser_context for one test (test-artifacts/ made for its screenshots), closed after."""
    executable = chromium()
    sync_playwright = playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = browser_context(p, tmp_path, executable)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def jupyter_server(command: list, port: int, cwd: Path, env: dict, log: Path, name: str):
    """Start a Jupyter server (`command`, listening on 127.0.0.1:port, its output in `log`),
    wait up to a minute for its /api/status, yield its URL, and stop it."""
    out = open(log, "w")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"{name} did not answer within a minute")
        if proc.poll() is not None:
            pytest.fail(f"{name} exited: " + log.read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
