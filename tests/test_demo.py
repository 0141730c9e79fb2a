"""`painedge demo`, the README's first command: every event once, nothing a new user would wonder about."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from painedge import demo
from painedge.logsetup import FORMAT

from .daemon import free_port

ROOT = Path(__file__).resolve().parents[1]


# `make demo` installs painedge without its `train` extra: hide that extra in the demo's
# processes (the daemon too, through the environment) to show it is not needed. (matplotlib
# stays: mediapipe itself requires and imports it.)
_HIDE_TRAIN = """
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NotInstalled())
"""


def test_demo_shows_each_status_once_and_no_library_noise_without_the_train_extra(tmp_path):
    """Also started from a folder holding a `painedge` folder (the folder a clone named painedge is
    in): the demo's daemon must not import that instead of the installed package."""
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(_HIDE_TRAIN)
    (tmp_path / "painedge").mkdir()
    (tmp_path / "painedge" / "__init__.py").write_text("raise ImportError('the folder beside, not the package')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'hide'}{os.pathsep}{ROOT}"}
    start = f"import sys; sys.path[0] = {str(ROOT)!r}; from painedge.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", start, "demo", "--duration", "4", "--interval", "1",
                        "--metrics", f"127.0.0.1:{free_port()}"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # The console's status line, not the daemon's log line of the same event as well.
    assert out.count("face present at frame 0") == 1 and "camera up: demo" not in out, out
    assert "demo-bed frame" in r.stdout
    for noise in ("W0000", "XNNPACK", "absl", "Traceback", "ImportError", "was open at the last stop"):
        assert noise not in out, out


def _log_line(level: int, msg: str) -> str:
    record = logging.LogRecord("painedge", level, __file__, 1, msg, None, None)
    return logging.Formatter(FORMAT).format(record) + "\n"


def test_demo_relays_the_daemons_warnings_but_not_its_alert_lines(capsys):
    """The console prints alerts from ZeroMQ; the daemon's own alert warning would be the second copy."""
    alert = _log_line(logging.WARNING, "alert 7eb095ce1758 raised: Extreme (high priority) at frame 220 after 0.0 s: x")
    warning = _log_line(logging.WARNING, "camera stalled: no frame for 2.0 s")
    info = _log_line(logging.INFO, "camera up: demo")
    noise = "W0000 00:00:1795625571.472170   10652 inference_feedback_manager.cc:114] Feedback manager\n"
    out = demo.DaemonOutput(io.StringIO(alert + warning + info + noise))
    out.join()
    assert capsys.readouterr().err == warning
    assert list(out.kept) == [alert, info, noise]  # shown only if the daemon fails


def test_make_demo_installs_the_daemon_without_training_and_make_test_adds_it(tmp_path):
    def plan(target: str) -> str:
        r = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    demo, test = plan("demo"), plan("test")
    assert "/pip install --quiet --quiet -e .\n" in demo and "train" not in demo and "painedge demo" in demo
    assert "-e '.[train,dev]'" in test and "pytest" in test and "setup-system --test" in test


def test_demo_whose_daemon_cannot_start_says_why_in_one_line(tmp_path):
    import socket

    with socket.socket() as busy:  # the metrics port, taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "painedge", "demo", "--duration", "5", "--metrics", f"127.0.0.1:{port}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.splitlines()  # the daemon's one clear line, not its library noise or a traceback
    assert len(lines) == 1 and lines[0].startswith(f"painedge: error: cannot serve /metrics on 127.0.0.1:{port}"), r.stderr


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("4", "4")])
def test_numpy_blas_runs_on_one_thread_unless_the_user_says_otherwise(preset, expected):
    """OpenBLAS's idle workers spin on sched_yield: the demo daemon burnt 1.3 cores for 0.35 core of work
    until painedge set one BLAS thread before numpy loads (a fresh interpreter: numpy reads it once)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    code = "import painedge, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected
