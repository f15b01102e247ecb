"""deploy/: the class hub configurations (Zero to JupyterHub, The Littlest JupyterHub).

Kubernetes and TLJH cannot run here (tests/hub/test_class_hub.py runs the same set-up on one
machine instead), so these tests check what can be checked without them: the Helm values
parse and use only keys that Zero to JupyterHub's configuration reference documents (listed
below, from the chart's 4.x reference), and every setting that the loopback class measured or
relies on is the same in both configurations.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
Z2JH = ROOT / "deploy" / "z2jh" / "config.yaml"
TLJH = ROOT / "deploy" / "tljh" / "setup.sh"

# Zero to JupyterHub's configuration reference (z2jh.jupyter.org, "Configuration Reference",
# chart 4.x), the keys of the sections a class uses. A key ending in ".*" holds a mapping whose
# keys are the user's own (traitlets of JupyterHub, environment variables); one ending in "[]"
# holds a list of Kubernetes objects.
DOCUMENTED = {
    "hub", "hub.config.*", "hub.extraConfig.*", "hub.db", "hub.db.type", "hub.db.pvc",
    "hub.db.pvc.storage", "hub.resources.*", "hub.image", "hub.image.name", "hub.image.tag",
    "proxy", "proxy.service", "proxy.service.type", "proxy.https", "proxy.https.enabled",
    "proxy.https.hosts", "proxy.https.type", "proxy.https.letsencrypt",
    "proxy.https.letsencrypt.contactEmail",
    "singleuser", "singleuser.image", "singleuser.image.name", "singleuser.image.tag",
    "singleuser.image.pullPolicy", "singleuser.defaultUrl", "singleuser.startTimeout",
    "singleuser.cmd", "singleuser.uid", "singleuser.fsGid", "singleuser.cpu",
    "singleuser.cpu.limit", "singleuser.cpu.guarantee", "singleuser.memory",
    "singleuser.memory.limit", "singleuser.memory.guarantee", "singleuser.extraEnv.*",
    "singleuser.extraFiles", "singleuser.storage", "singleuser.storage.type",
    "singleuser.storage.capacity", "singleuser.storage.homeMountPath",
    "singleuser.storage.dynamic", "singleuser.storage.dynamic.storageClass",
    "singleuser.storage.extraVolumes[]", "singleuser.storage.extraVolumeMounts[]",
    "singleuser.lifecycleHooks", "singleuser.initContainers[]", "singleuser.profileList[]",
    "singleuser.networkPolicy", "singleuser.networkPolicy.enabled",
    "cull", "cull.enabled", "cull.users", "cull.adminUsers", "cull.removeNamedServers",
    "cull.timeout", "cull.every", "cull.concurrency", "cull.maxAge",
    "scheduling", "scheduling.userScheduler", "scheduling.userScheduler.enabled",
    "scheduling.podPriority", "scheduling.podPriority.enabled", "scheduling.userPlaceholder",
    "scheduling.userPlaceholder.enabled", "scheduling.userPlaceholder.replicas",
    "prePuller", "prePuller.hook", "prePuller.hook.enabled", "prePuller.continuous",
    "prePuller.continuous.enabled",
    "debug", "debug.enabled",
}
# singleuser.extraFiles.<file key>: what each entry documents.
EXTRA_FILE_KEYS = {"mountPath", "data", "stringData", "binaryData", "mode"}


def _values() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads deploy/: pip install -e \".[hub]\"")
    return yaml.safe_load(Z2JH.read_text())


def undocumented(node, path: str = "") -> list[str]:
    """The key paths of `node` that the reference does not document."""
    found = []
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if f"{here}.*" in DOCUMENTED or f"{here}[]" in DOCUMENTED:
            continue
        if path == "singleuser.extraFiles":
            found += [f"{here}.{k}" for k in value if k not in EXTRA_FILE_KEYS]
            continue
        if here not in DOCUMENTED:
            found.append(here)
        elif isinstance(value, dict):
            found += undocumented(value, here)
    return found


def test_the_helm_values_parse_and_use_only_documented_keys():
    values = _values()
    assert undocumented(values) == []
    assert {"hub", "singleuser", "cull", "scheduling", "prePuller"} <= set(values)


def test_the_key_check_can_fail():
    assert undocumented({"singleuser": {"memory": {"limt": "3G"}, "extraEnv": {"X": "1"}},
                         "hub": {"config": {"Anything": {"goes": 1}}},
                         "culler": {"enabled": True}}) == ["singleuser.memory.limt", "culler"]
    assert undocumented({"singleuser": {"extraFiles": {"f": {"mountPath": "/x", "content": ""}}}}
                        ) == ["singleuser.extraFiles.f.content"]


def _gigabytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([GM])", str(text))
    assert m, text
    return float(m.group(1)) / (1024 if m.group(2) == "M" else 1)


def test_the_sizes_and_settings_the_loopback_class_measured():
    v = _values()
    su = v["singleuser"]
    # About 1.0 GB per student after a smoke notebook, 1.25 GB after a ResNet-20 training
    # step, 1.7 GB after a ResNet-56 one: the guarantee covers the first two, the limit leaves
    # room; the same numbers as deploy/README.md.
    assert 1.3 <= _gigabytes(su["memory"]["guarantee"]) < _gigabytes(su["memory"]["limit"])
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert f"{su['memory']['guarantee']}" in readme and f"{su['memory']['limit']}" in readme
    assert v["hub"]["config"]["KubeSpawner"]["http_timeout"] >= 180
    assert v["hub"]["config"]["JupyterHub"]["authenticator_class"] == "firstuseauthenticator"
    assert v["cull"]["enabled"] and v["cull"]["timeout"] >= 1800
    assert su["extraEnv"]["OMP_NUM_THREADS"] == str(su["cpu"]["limit"])


def test_data_and_cache_are_one_read_only_volume_and_the_exchange_is_shared():
    su = _values()["singleuser"]
    mounts = {m["name"]: m for m in su["storage"]["extraVolumeMounts"]}
    volumes = {v["name"]: v for v in su["storage"]["extraVolumes"]}
    assert set(mounts) == set(volumes)
    data = mounts["course-data"]
    assert data["readOnly"] and volumes["course-data"]["persistentVolumeClaim"]["readOnly"]
    for name in ("RESNET_NB_DATA", "RESNET_NB_CACHE"):
        assert su["extraEnv"][name].startswith(data["mountPath"] + "/"), name
    nbgrader = su["extraFiles"]["nbgrader-config"]["stringData"]
    exchange = re.search(r'c\.Exchange\.root = "([^"]+)"', nbgrader).group(1)
    assert mounts["nbgrader-exchange"]["mountPath"] == exchange
    assert not mounts["nbgrader-exchange"].get("readOnly")
    assert "JUPYTERHUB_USER" in nbgrader
    compile(nbgrader, "nbgrader_config.py", "exec")


def test_the_tljh_setup_agrees_with_the_kubernetes_one():
    script = TLJH.read_text()
    assert subprocess.run(["bash", "-n", str(TLJH)]).returncode == 0
    su = _values()["singleuser"]
    assert "c.Spawner.http_timeout = 180" in script
    assert f"tljh-config set limits.memory {su['memory']['limit']}" in script
    assert f"tljh-config set limits.cpu {su['cpu']['limit']}" in script
    assert "services.cull.timeout 3600" in script
    for name in ("RESNET_NB_DATA", "RESNET_NB_CACHE", "OMP_NUM_THREADS"):
        assert f'"{name}"' in script
    assert 'c.Exchange.root = "/srv/nbgrader/exchange"' in script and "chmod 777" in script
    assert "chmod -R a+rX,a-w" in script                      # students read, never write


def test_the_image_matches_the_hub_it_runs_under():
    """The single-user image (the class release's environment.yml) carries JupyterHub's
    single-user server of the chart's major version (5), nbgitpuller and nbgrader."""
    from tools import release
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    env = release.environment_yml(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    assert re.search(r"^  - jupyterhub-singleuser>=5,<6$", env, re.MULTILINE), env
    assert "  - nbgitpuller" in env and "  - nbgrader" in env
    assert "firstuse" not in env                               # the hub's, not the image's
