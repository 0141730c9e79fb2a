"""The installed artefact: a wheel built from this checkout carries its model and runs from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import data

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.mark.slow
def test_wheel_carries_the_model_and_runs_outside_the_checkout(tmp_path):
    # Build from a copy of what Dockerfile.jetson copies into the image before its own
    # `pip install .` (pip builds in-tree and would leave build/ in the checkout).
    src = tmp_path / "src"
    src.mkdir()
    for line in (ROOT / "Dockerfile.jetson").read_text().splitlines():
        if line.startswith("COPY ") and "constraints" not in line:
            for name in line.split()[1:-1]:
                if (ROOT / name).is_dir():
                    shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PAINEDGE_CONFIG", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    r = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir", "-w", str(tmp_path / "dist"),
              str(src)], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("painedge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("painedge-edge-int8.tflite", "painedge-edge-int8.json", "painedge-edge.keras", "README.md"):
        assert f"painedge/models/{name}" in names, sorted(names)
    # -v shows what setuptools prints: no deprecation boxes (the licence table gave three).
    assert "Warning" not in r.stdout + r.stderr, r.stdout + r.stderr

    # A fresh venv. Its dependencies come from this interpreter's site-packages through a
    # plain path line in a .pth (not --system-site-packages: that would also run the
    # editable install's .pth and make the checkout importable). The wheel is installed
    # into the venv itself, which comes first on sys.path.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    vpy = venv / "bin" / "python"
    vsite = Path(_run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                      tmp_path, env).stdout.strip())
    (vsite / "_painedge_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps", "--no-index", str(wheel)],
         tmp_path, env)

    where = tmp_path / "elsewhere"
    where.mkdir()
    env |= {"PAINEDGE_STATE__DIR": f'"{tmp_path / "state"}"', "HOME": str(tmp_path / "home")}
    probe = _run([str(vpy), "-c", "import painedge, painedge.model as m; print(painedge.__file__); "
                  "print(m.DEFAULT_MODEL)"], where, env).stdout.split()
    assert probe[0].startswith(str(vsite)) and probe[1].startswith(str(vsite)), probe  # not the checkout

    exe = str(venv / "bin" / "painedge")
    info = _run([exe, "model", "info"], where, env)
    assert "painedge-edge" in info.stdout and str(vsite) in info.stdout, info.stdout
    check = _run([exe, "config", "check"], where, env)
    assert check.stdout.startswith("ok:"), check.stdout
    run = _run([exe, "run", "--source", data("single_face.mp4"), "--no-loop", "--exit-at-end", "--fast",
                "--max-frames", "30", "--metrics", "off", "--pub", "ipc://" + str(tmp_path / "pub"),
                "--replay", "ipc://" + str(tmp_path / "replay"), "--device-id", "wheel-test"], where, env)
    assert "Traceback" not in run.stderr and "stopped: 30 frames handled" in run.stderr, run.stderr
    assert "model painedge-edge" in run.stderr, run.stderr


def test_the_model_is_package_data_resolved_in_one_place():
    import tomllib

    from painedge import model

    assert model.DEFAULT_MODEL == Path(model.__file__).parent / "models" / "painedge-edge-int8.tflite"
    assert model.DEFAULT_MODEL.exists() and model.DEFAULT_MODEL.with_suffix(".json").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # an SPDX expression, not the deprecated table
    data_globs = project["tool"]["setuptools"]["package-data"]["painedge"]
    assert "models/*.tflite" in data_globs and "models/*.json" in data_globs
    assert not (ROOT / "models").exists()


def test_a_missing_model_is_named_once_with_the_fix(tmp_path):
    from painedge.model import DEFAULT_MODEL, ModelError, PainModel

    with pytest.raises(ModelError) as e:
        PainModel(tmp_path / "nope.tflite")
    assert str(e.value).count("nope.tflite") == 1 and str(DEFAULT_MODEL) in str(e.value)


def test_a_missing_shipped_model_says_the_installation_is_incomplete(tmp_path, monkeypatch):
    from painedge import model

    gone = tmp_path / "painedge-edge-int8.tflite"
    monkeypatch.setattr(model, "DEFAULT_MODEL", gone)
    with pytest.raises(model.ModelError) as e:
        model.PainModel(gone)
    assert str(e.value).count(str(gone)) == 1 and "reinstall painedge" in str(e.value)
