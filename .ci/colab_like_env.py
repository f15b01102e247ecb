"""Make .venv-colab, the Colab-like environment of tests/browser/test_colab_like.py.

    .venv/bin/python .ci/colab_like_env.py        (.ci/run does this; about a minute)

A second virtual environment with Colab's notebook front end (.ci/colab-like.txt: the classic
Notebook 6.5 and ipywidgets 7.7.1, no JupyterLab), made with the Python that runs this script.
It shares the compute stack of that Python's environment (torch, torchvision, numpy,
matplotlib, pillow, tqdm and their dependencies, several GB that a second copy would only
duplicate) through a folder of symbolic links appended to its sys.path: its own packages come
first, and the main environment's JupyterLab, ipywidgets 8, notebook front ends and resnet_nb
are left out, so that nothing of them can be imported there. The course package itself is not
installed here: the test installs it the way Colab's install cell does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("RESNET_NB_COLAB_VENV", ROOT / ".venv-colab"))
REQUIREMENTS = ROOT / ".ci" / "colab-like.txt"
# Never shared from the main environment (prefixes of site-packages entries, lower case).
NOT_SHARED = ("jupyterlab", "jupyter_lsp", "notebook", "nbclassic", "ipywidgets",
              "widgetsnbextension", "resnet_nb", "__editable__", "_resnet_nb")


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    return Path(out)


def main() -> int:
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    python = VENV / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                         capture_output=True, text=True)
    said = [line for line in (pip.stdout + pip.stderr).splitlines()
            if "is ignored: it is neither" not in line]     # this machine's local index
    if said:
        print("\n".join(said[-30:]), file=sys.stderr)
    if pip.returncode != 0:
        raise SystemExit(f"could not install {REQUIREMENTS.name} into {VENV}")
    shared = VENV / "shared-site-packages"
    shared.mkdir()
    main_site = Path(sysconfig.get_path("purelib"))
    for entry in sorted(main_site.iterdir()):
        name = entry.name.lower()
        if name.startswith(NOT_SHARED) or name.endswith(".pth") or name == "__pycache__":
            continue
        (shared / entry.name).symlink_to(entry)
    # Appended, so the front end installed above comes first.
    (site_packages(python) / "zz-shared-compute-stack.pth").write_text(f"{shared}\n")
    check = ("import importlib.util as u, ipywidgets, notebook, torch; "
             "print('ipywidgets', ipywidgets.__version__, '| notebook', notebook.__version__, "
             "'| torch', torch.__version__); "
             "assert u.find_spec('jupyterlab') is None and u.find_spec('resnet_nb') is None")
    subprocess.run([str(python), "-c", check], check=True, cwd=VENV, env={
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
