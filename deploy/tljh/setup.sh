#!/usr/bin/env bash
# The resnet-nb class on The Littlest JupyterHub (one VM, up to about 100 students).
# Run as root on the VM after installing TLJH (https://tljh.jupyter.org, "Installing on your
# own server"; e.g. with --admin teacher):
#
#     sudo bash deploy/tljh/setup.sh https://github.com/OWNER/resnet-nb class /path/to/cifar10
#
# UNTESTED as a whole: TLJH was not installed where the course is built. Its parts are the
# ones tests/hub/test_class_hub.py runs on loopback (the release pulled with nbgitpuller, the shared
# read-only data and cache, the first-use authenticator, nbgrader's exchange, the 180 s spawn
# timeout); the paths and tljh-config keys are TLJH's documented ones.
set -euo pipefail
REPO="${1:?the course repository, e.g. https://github.com/OWNER/resnet-nb}"
BRANCH="${2:-class}"
DATA="${3:?a CIFAR-10 copy: the torchvision folder, an image folder or a .tar.gz of one}"
USER_ENV=/opt/tljh/user
SHARED=/srv/resnet-nb

# 1. The students' environment: CPU PyTorch, then the course package from the class release
#    with what a class hub needs (nbgitpuller, nbgrader).
"$USER_ENV/bin/pip" install --quiet torch torchvision --index-url https://download.pytorch.org/whl/cpu
"$USER_ENV/bin/pip" install --quiet "resnet_nb[notebook,hub] @ git+$REPO@$BRANCH"
# Students fetch and submit; the instructor's nbgrader panels stay hidden for them.
for plugin in @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment; do
    "$USER_ENV/bin/jupyter" labextension disable --level=sys_prefix "$plugin"
    "$USER_ENV/bin/jupyter" labextension lock --level=sys_prefix "$plugin"
done

# 2. CIFAR-10 once for the whole class, decoded once, read-only to students.
mkdir -p "$SHARED/data" "$SHARED/cache"
cp -a "$DATA" "$SHARED/data/"
DATA_PATH="$SHARED/data/$(basename "$DATA")"
RESNET_NB_DATA="$DATA_PATH" RESNET_NB_CACHE="$SHARED/cache" "$USER_ENV/bin/python" -c \
    "from resnet_nb.data import load_cifar10; load_cifar10()"
chmod -R a+rX,a-w "$SHARED"

# 3. nbgrader's exchange, shared by everyone; the students' nbgrader settings.
mkdir -p /srv/nbgrader/exchange
chmod 777 /srv/nbgrader/exchange
mkdir -p "$USER_ENV/etc/jupyter"
cat > "$USER_ENV/etc/jupyter/nbgrader_config.py" <<PY
import os
c = get_config()
c.CourseDirectory.course_id = "resnet-nb"
c.Exchange.root = "/srv/nbgrader/exchange"
# TLJH's system users are jupyter-NAME: the hub name is the student's nbgrader id.
c.CourseDirectory.student_id = os.environ.get("JUPYTERHUB_USER", "*")
PY

# 4. The hub: the students' environment variables, the spawn timeout, the limit of servers.
cat > /opt/tljh/config/jupyterhub_config.d/resnet_nb.py <<PY
c.Spawner.environment = {"RESNET_NB_DATA": "$DATA_PATH", "RESNET_NB_CACHE": "$SHARED/cache",
                         "OMP_NUM_THREADS": "2"}
# 30 servers started at once took up to 53 s on 2 cores: the default 30 s gives up.
c.Spawner.http_timeout = 180
# 1.4 GB per student (measured): the VM's memory in GB / 1.4, less a few for the system.
c.JupyterHub.active_server_limit = int(${ACTIVE_SERVER_LIMIT:-60})
PY

# 5. Per-student limits, the idle culler (stopped servers keep their notebooks), JupyterLab.
tljh-config set limits.memory 3G
tljh-config set limits.cpu 2
tljh-config set services.cull.timeout 3600
tljh-config set user_environment.default_app jupyterlab
tljh-config reload
echo "done: hand out notebooks with \`python -m resnet_nb hub-link --hub https://THIS-HUB\`"
