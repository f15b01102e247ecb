"""Links that open the course on a class's JupyterHub.

nbgitpuller (installed on the hub) turns a link into "pull this repository's branch into the
student's home folder, then open this notebook": the first click clones it, later clicks
merge new commits without overwriting the student's own changes.
"""
from __future__ import annotations

from urllib.parse import urlencode

APPS = {"lab": "lab/tree", "notebook": "tree", "classic": "notebooks"}


def nbgitpuller_link(hub_url: str, repo_url: str, branch: str, path: str = "",
                     app: str = "lab") -> str:
    """The nbgitpuller link that pulls `repo_url`'s `branch` on the hub at `hub_url` and opens
    `path` (a file or folder inside the repository) in `app` ("lab" or "notebook").

    The repository lands in a folder named like the repository (the last part of its address).
    """
    hub = hub_url.strip().rstrip("/")
    if not hub.startswith(("http://", "https://")):
        raise ValueError(f"hub address must start with https:// (or http://), got {hub_url!r}")
    if not repo_url.strip():
        raise ValueError("the repository address is empty")
    if app not in APPS:
        raise ValueError(f"app must be one of {', '.join(APPS)}, got {app!r}")
    folder = repo_url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    target = "/".join(p for p in (folder, path.strip("/")) if p)
    query = urlencode({"repo": repo_url, "branch": branch, "urlpath": f"{APPS[app]}/{target}"})
    return f"{hub}/hub/user-redirect/git-pull?{query}"
