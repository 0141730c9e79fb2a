#!/usr/bin/env bash
# Native install on a Jetson Nano (JetPack 4.6 / Ubuntu 18.04): a Python 3.10 venv under
# /opt/painedge, the systemd unit, and a config file. Run as root from a clone of painedge.
#
# Why not the system Python: JetPack 4.6 ships Python 3.6, on which neither pydantic v2,
# pyzmq 26+ nor a MediaPipe with Face Mesh installs (JETSON.md). We use python3.10 from the
# deadsnakes PPA, for which PyPI has aarch64 wheels of every dependency (constraints below).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo deploy/install.sh)" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/painedge

if ! command -v python3.10 >/dev/null; then
  apt-get update
  apt-get install -y software-properties-common
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get update
  apt-get install -y python3.10 python3.10-venv
fi

mkdir -p "$prefix"
cp -r "$here/painedge" "$here/pyproject.toml" "$here/README.md" "$here/LICENSE" "$prefix/"
python3.10 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --upgrade pip
"$prefix/venv/bin/pip" install -c "$here/deploy/constraints-jetson.txt" "$prefix"
"$prefix/venv/bin/pip" install -c "$here/deploy/constraints-jetson.txt" systemd-python || \
  echo "install.sh: systemd-python not installed (needs libsystemd-dev); logs go to stderr, which journald keeps" >&2

mkdir -p /etc/painedge
# The model ships inside the package (painedge/models/): the config names it only to use another.
[ -f /etc/painedge/painedge.toml ] || cp "$here/deploy/painedge.example.toml" /etc/painedge/painedge.toml
"$prefix/venv/bin/painedge" config check --config /etc/painedge/painedge.toml

install -m 0644 "$here/deploy/painedge.service" /etc/systemd/system/painedge.service
systemctl daemon-reload
systemctl enable --now painedge
systemctl --no-pager status painedge || true
echo "installed: edit /etc/painedge/painedge.toml (source, device_id), then: systemctl restart painedge"
