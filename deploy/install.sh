#!/usr/bin/env bash
# Native install on a Jetson: a Python 3.10 venv under /opt/painedge, the systemd unit and a
# config file. Run as root from a clone of painedge. Two targets, each with a pinned wheel set
# whose native libraries are checked against it (deploy/wheel_symbols.py, tests/test_jetson.py):
#
#   Jetson Orin Nano, JetPack 6 (Ubuntu 22.04, glibc 2.35): the system Python 3.10 and
#     deploy/constraints-jetson.txt (LiteRT: ai-edge-litert 2.3.0).
#   Jetson Nano, JetPack 4.6 (Ubuntu 18.04, glibc 2.27): the system Python is 3.6, on which
#     neither pydantic v2 nor pyzmq 26+ installs, and the deadsnakes PPA no longer serves 18.04.
#     So Python 3.10 is a standalone CPython build (python-build-standalone, built for glibc 2.17)
#     installed by uv into /opt/painedge/python, and deploy/constraints-jetpack4.txt, where
#     tflite-runtime 2.13.0 replaces ai-edge-litert (every ai-edge-litert needs glibc >= 2.29).
#     This step downloads uv and the Python build from GitHub: run it where the Nano has internet,
#     or use the container (Dockerfile.jetson) built elsewhere.
#
# PAINEDGE_TARGET=jetpack6|jetpack4.6 overrides the detection from /etc/os-release.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo deploy/install.sh)" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/painedge

# shellcheck disable=SC1091
release=$(. /etc/os-release && echo "${VERSION_ID:-unknown}")
target=${PAINEDGE_TARGET:-}
if [ -z "$target" ]; then
  case "$release" in
    22.04) target=jetpack6 ;;
    18.04) target=jetpack4.6 ;;
    *) echo "install.sh: Ubuntu $release is neither JetPack 6 (22.04) nor JetPack 4.6 (18.04); set PAINEDGE_TARGET=jetpack6 or jetpack4.6 to choose, or use Dockerfile.jetson" >&2
       exit 1 ;;
  esac
fi

mkdir -p "$prefix"
cp -r "$here/painedge" "$here/pyproject.toml" "$here/README.md" "$here/LICENSE" "$prefix/"

case "$target" in
  jetpack6)
    constraints="$here/deploy/constraints-jetson.txt"
    if ! python3.10 -c 'import ensurepip' 2>/dev/null; then
      apt-get update
      apt-get install -y python3.10 python3.10-venv
    fi
    python3.10 -m venv "$prefix/venv"
    "$prefix/venv/bin/pip" install --upgrade pip
    "$prefix/venv/bin/pip" install --only-binary=:all: -c "$constraints" "$prefix"
    ;;
  jetpack4.6)
    constraints="$here/deploy/constraints-jetpack4.txt"
    export UV_INSTALL_DIR="$prefix/bin" UV_PYTHON_INSTALL_DIR="$prefix/python" UV_NO_MODIFY_PATH=1
    if [ ! -x "$prefix/bin/uv" ]; then
      command -v curl >/dev/null || { apt-get update; apt-get install -y curl ca-certificates; }
      curl -LsSf https://astral.sh/uv/install.sh | sh
    fi
    "$prefix/bin/uv" python install 3.10
    "$prefix/bin/uv" venv --seed --python 3.10 "$prefix/venv"
    # The set as requirements, and painedge without its dependencies: pip would otherwise pull
    # ai-edge-litert in (tagged manylinux_2_27, so pip takes it; it fails at import).
    "$prefix/venv/bin/pip" install --only-binary=:all: -r "$constraints"
    "$prefix/venv/bin/pip" install --no-deps "$prefix"
    ;;
  *) echo "install.sh: unknown PAINEDGE_TARGET '$target' (jetpack6 or jetpack4.6)" >&2; exit 1 ;;
esac

"$prefix/venv/bin/pip" install -c "$constraints" systemd-python || \
  echo "install.sh: systemd-python not installed (needs libsystemd-dev); logs go to stderr, which journald keeps" >&2
"$prefix/venv/bin/python" -c "from painedge.model import interpreter_class; print('TFLite interpreter:', interpreter_class()[1])"

mkdir -p /etc/painedge
# The model ships inside the package (painedge/models/): the config names it only to use another.
[ -f /etc/painedge/painedge.toml ] || cp "$here/deploy/painedge.example.toml" /etc/painedge/painedge.toml
"$prefix/venv/bin/painedge" config check --config /etc/painedge/painedge.toml

install -m 0644 "$here/deploy/painedge.service" /etc/systemd/system/painedge.service
systemctl daemon-reload
systemctl enable --now painedge
systemctl --no-pager status painedge || true
echo "installed for $target: edit /etc/painedge/painedge.toml (source, device_id), then: systemctl restart painedge"
