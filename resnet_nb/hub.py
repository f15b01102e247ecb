"""Links that open the course on a class's JupyterHub.

nbgitpuller (installed on the hub) turns a link into "pull this repository's branch into the
student's home folder, then open this notebook": the first click clones it, later clicks
merge new commits without overwriting the student's own changes.

    python -m resnet_nb hub-link [--hub URL] [--repo URL] [--branch B] [NOTEBOOK ...]

prints the links to hand out; run in the course's checkout, its pyproject.toml gives the
defaults (Repository, [tool.resnet_nb] release-branch and hub-url).
"""
from __future__ import annotations

from pathlib import Path
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


def course_settings(pyproject: str | Path = "pyproject.toml") -> dict:
    """The class hub settings of a course checkout's pyproject.toml: the repository address
    (without /tree/BRANCH), the release branch and the hub's address ({} keys missing when the
    file is not there)."""
    path = Path(pyproject)
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:      # Python < 3.11
        import tomli as tomllib
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    repo = data.get("project", {}).get("urls", {}).get("Repository", "")
    settings = data.get("tool", {}).get("resnet_nb", {})
    return {"repo": repo.split("/tree/", 1)[0], "branch": settings.get("release-branch", ""),
            "hub": settings.get("hub-url", "")}


def hub_links(hub_url: str, repo_url: str, branch: str, notebooks: list[str],
              app: str = "lab") -> list[tuple[str, str]]:
    """(what, link) for the course's notebooks folder and each of `notebooks` (names in the
    release's notebooks/ folder)."""
    links = [("notebooks/", nbgitpuller_link(hub_url, repo_url, branch, "notebooks", app))]
    for name in notebooks:
        name = name.removeprefix("notebooks/")
        links.append((name, nbgitpuller_link(hub_url, repo_url, branch, f"notebooks/{name}",
                                             app)))
    return links
