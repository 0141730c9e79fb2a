"""Shared fixtures: the real clips in ../shared/data and one Face Mesh per test module."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from painedge import face as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PAINEDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def data(name: str) -> str:
    """A real test clip. Missing clips fail the test (a skip would let CI pass on nothing)."""
    path = DATA / name
    if not path.exists():
        pytest.fail(f"test clip {path} is missing: put shared/ beside the repo or set PAINEDGE_TEST_DATA")
    return str(path)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float)
        order = a.argsort()
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for v in np.unique(a):  # average the ranks of ties
            r[a == v] = r[a == v].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


@pytest.fixture(scope="module")
def still_mesh() -> F.FaceMesh:
    mesh = F.FaceMesh(F.MeshSettings(static_image_mode=True))
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def single_face_frames() -> list[np.ndarray]:
    return [frame for _, frame in F.read_video(data("single_face.mp4"))]


# ---------------------------------------------------------------- real daemons, shared


# The demo, unpaced and looping, with alert times short enough for a test: a grimace every loop.
FAST_ALERTS = {
    "PAINEDGE_SOURCE__REALTIME": "false",
    "PAINEDGE_GATE__ENABLED": "false",
    "PAINEDGE_ALERTS__RAISE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__ESCALATE_AFTER_S": "0.3",
    "PAINEDGE_ALERTS__CLEAR_AFTER_S": "0.5",
    "PAINEDGE_ALERTS__COOLDOWN_S": "0",
    "PAINEDGE_ASSESS__SMOOTHING_S": "0.2",
}


@pytest.fixture(scope="session")
def demo_run():
    """One finished daemon run: the demo, unpaced, gate off, fast alerts, 420 frames (calm, smile, grimace,
    relax). Its readings (the per-frame level, which no alert setting changes) and alerts serve several tests."""
    from .daemon import Daemon

    with Daemon("--source", "demo", "--no-gate", "--max-frames", "420", env=FAST_ALERTS) as d:
        code, err = d.wait(timeout_s=120)
        d.receive(lambda ms: False, timeout_s=0.5)
    assert code == 0, err
    return d


@pytest.fixture(scope="session")
def running():
    """One daemon that keeps running for the tests that need a live one: the demo looping with fast alerts,
    its replay service, and a subscriber noting when each heartbeat arrives."""
    from .daemon import Daemon, HeartbeatWatch

    with Daemon("--source", "demo", env=FAST_ALERTS) as d:
        d.receive(lambda ms: any(m.kind == "heartbeat" for m in ms), timeout_s=60)
        watch = HeartbeatWatch(d.pub)
        watch.start()
        yield d, watch
        watch.stop.set()
        watch.join(2)
        d.terminate()


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """``painedge ARGS...`` in-process: (exit code, stderr). Its state folder is the test's; the logging
    it configures is undone after."""
    import logging

    from painedge import cli as painedge_cli

    monkeypatch.setenv("PAINEDGE_STATE__DIR", f'"{tmp_path}"')
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = painedge_cli.main(list(argv))
        finally:
            for h in list(root.handlers):
                if h not in handlers:
                    root.removeHandler(h)
            for h in handlers:
                if h not in root.handlers:
                    root.addHandler(h)
            root.setLevel(level)
        return code, capsys.readouterr().err

    return run
