"""The scripts the website serves itself: MathJax and the Jupyter widget manager, from npm.

The site loads nothing from a third party when it is read, so the scripts that the pages would
otherwise take from a CDN come from the npm registry when the site is built, by the ordinary
client (`npm pack NAME@VERSION`, which fetches the package's tarball and nothing else; no
`npm install`, no node_modules). Each tarball is pinned below by version and by the sha512
that the registry publishes for it, checked before anything is unpacked, and kept in
.cache/site/npm/ (git-ignored), so only the first build needs the registry. A machine without
npm or the registry can use a copy of that folder.

- MathJax 3 (`mathjax`): its es5/ components, served from _static/mathjax/ (tex-chtml.js and
  the parts it loads on demand: fonts, TeX extensions, the menu, accessibility);
- the HTML widget manager of ipywidgets (`@jupyter-widgets/html-manager`): dist/embed.js, which
  bundles the base, controls and output widgets (everything the course's widgets use), so no
  require.js is needed, and the icon fonts it loads beside itself; served from _static/widgets/.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPM_CACHE = ROOT / ".cache" / "site" / "npm"


class AssetError(RuntimeError):
    """A script the site serves could not be had; the message says what to do."""


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str                 # the registry's "dist.integrity" (sha512, base64)
    folder: str                    # where it goes under the site's _static/
    root: str                      # the package's folder that maps onto it
    keep: tuple = ()               # files and folders under `root` to serve, or
    suffixes: tuple = ()           # the files directly in `root` with these endings

    @property
    def tarball(self) -> str:      # the name `npm pack` gives it
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


MATHJAX = NpmPackage(
    "mathjax", "3.2.2",
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/"
    "FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
    "mathjax", "es5",
    keep=("tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y", "sre", "adaptors"))
WIDGETS = NpmPackage(
    "@jupyter-widgets/html-manager", "1.0.15",
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//"
    "SABeNz1yp47bCrJ3CQA==",
    "widgets", "dist", suffixes=("embed.js", "embed.js.LICENSE.txt", ".woff2", ".woff", ".ttf",
                              ".eot", ".svg"))
PACKAGES = (MATHJAX, WIDGETS)
MATHJAX_SCRIPT = "mathjax/tex-chtml.js"        # relative to _static/
WIDGETS_SCRIPT = "widgets/embed.js"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(package: NpmPackage, cache: Path = NPM_CACHE) -> Path:
    """The package's tarball in `cache`, fetched with `npm pack` unless a checked copy is there."""
    path = cache / package.tarball
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise AssetError(f"{package.name} {package.version} comes from the npm registry: "
                             "install Node.js (it brings npm) and build again, or copy "
                             f"{package.tarball} into {cache}")
        done = subprocess.run([npm, "pack", f"{package.name}@{package.version}",
                               "--pack-destination", str(cache), "--silent"],
                              capture_output=True, text=True)
        if done.returncode != 0 or not path.exists():
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise AssetError(f"npm could not fetch {package.name}@{package.version} ({said}): "
                             f"check the connection to the npm registry, or copy "
                             f"{package.tarball} into {cache}")
    if _integrity(path) != package.integrity:
        path.unlink()
        raise AssetError(f"{package.tarball} does not match its pinned sha512 (removed): build "
                         "again to fetch it anew")
    return path


def _members(package: NpmPackage, tar: tarfile.TarFile):
    """(member, path under the package's folder) for the files to serve."""
    prefix = f"package/{package.root}/"
    for member in tar.getmembers():
        if not member.isfile() or not member.name.startswith(prefix):
            continue
        relative = member.name[len(prefix):]
        if package.suffixes:
            if "/" not in relative and relative.endswith(package.suffixes):
                yield member, relative
        elif any(relative == k or relative.startswith(k + "/") for k in package.keep):
            yield member, relative


def install(static: Path, cache: Path = NPM_CACHE) -> list[Path]:
    """Unpack the served parts of every package into `static` (the site's _static/ source)."""
    written = []
    for package in PACKAGES:
        target = static / package.folder
        if target.exists():
            shutil.rmtree(target)
        with tarfile.open(fetch(package, cache)) as tar:
            for member, relative in _members(package, tar):
                out = target / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
        if not any(target.rglob("*")):
            raise AssetError(f"{package.tarball} holds nothing to serve under {package.root}/: "
                             "its layout changed; pin another version in tools/site_assets.py")
        written.append(target)
    return written
