#!/usr/bin/env bash
# configurable-http-proxy, JupyterHub's proxy, for the class test (tests/hub/test_class_hub.py) and
# benchmarks/class_hub.py: from npm into the project's own .hub-proxy/ (git-ignored), never
# globally. .ci/run calls this; a developer runs it once: bash .ci/hub_proxy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=5.3.0
BIN=.hub-proxy/node_modules/.bin/configurable-http-proxy
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        nodejs npm; } || { echo "could not install npm: tests/hub/test_class_hub.py will fail" >&2; exit 0; }
fi
npm install --silent --no-audit --no-fund --no-save --prefix .hub-proxy \
    "configurable-http-proxy@$VERSION"
"$BIN" --version
