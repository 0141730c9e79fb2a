"""`painedge preview` (MJPEG on loopback) and `run --show`: a real daemon, a real HTTP client, real frames; the
refusals of --listen and --show in-process (`painedge.cli.main`), as a user's error: exit 2 and one line."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from painedge import face as F
from painedge import preview
from painedge.assess import Assessment
from painedge.pipeline import FrameResult

from .conftest import ROOT, data
from .daemon import free_port
from .incli import run_cli


@pytest.mark.parametrize("listen", ["0.0.0.0:8090", "192.168.1.20:8090", "example.org:8090", "[::]:8090"])
def test_preview_refuses_anything_but_loopback(listen, capsys, monkeypatch):
    r = run_cli(["preview", "--source", "demo", "--listen", listen, "--metrics", "off"], capsys, monkeypatch)
    assert r.status == 2 and r.err.count("\n") == 1, r.err
    assert "loopback only" in r.err and "ssh -L" in r.err


@pytest.mark.parametrize("listen", ["127.0.0.1:http", "127.0.0.1:70000"])  # 70000: an OverflowError traceback
def test_preview_names_a_malformed_address(listen, capsys, monkeypatch):
    r = run_cli(["preview", "--source", "demo", "--listen", listen, "--metrics", "off"], capsys, monkeypatch)
    assert r.status == 2 and "expected HOST:PORT" in r.err and r.err.count("\n") == 1, r.err


@pytest.mark.parametrize("host,bound", [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("127.0.0.2", "127.0.0.2"),
                                        ("::1", "::1"), ("[::1]", "::1")])
def test_loopback_hosts_are_accepted(host, bound):
    assert preview.check_loopback(host) == bound


def test_show_without_a_screen_points_to_preview(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    r = run_cli(["run", "--show", "--source", "demo", "--metrics", "off"], capsys, monkeypatch)
    assert r.status == 2 and "painedge preview" in r.err and r.err.count("\n") == 1, r.err


def test_show_with_an_unreachable_display_says_so_instead_of_aborting():
    """OpenCV's Qt backend aborts the process on a display it cannot reach; --show must not. A process of its
    own: an abort would take the test's process with it."""
    env = {**{k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}, "DISPLAY": ":97"}
    r = subprocess.run([sys.executable, "-m", "painedge", "run", "--show", "--source", "demo", "--metrics", "off"],
                       cwd=ROOT, capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot open a window on DISPLAY=':97'" in r.stderr and "painedge preview" in r.stderr


def _result(frame: int, face: bool, level: int | None = None) -> FrameResult:
    a = None
    if level is not None:
        probs = tuple(0.9 if i == level else 0.025 for i in range(5))
        a = Assessment(frame, 0.0, level, probs, level, probs, F.Cues(0, 0, 0, 0, 0, 0))
    return FrameResult(frame=frame, capture_ts=0.0, capture_mono=time.monotonic() - 0.02, face=face, assessment=a)


def _reddish(pixels: np.ndarray) -> int:
    p = pixels.astype(int)
    return int(((p[:, 2] > 150) & (p[:, 1] < 120) & (p[:, 0] < 120)).sum())


def test_annotation_draws_the_landmarks_and_the_level_on_a_real_face(still_mesh):
    image = F.read_image(data("single_face.jpg"))
    face = still_mesh.largest(image)
    out = preview.Annotator()(image, _result(3, True, level=3), face, "tracked")
    assert out.shape == image.shape and not np.shares_memory(out, image)
    pts = face.points_px.astype(int)
    green = np.all(out[pts[:, 1], pts[:, 0]] == preview.GREEN, axis=1).mean()
    assert green > 0.5  # most landmark pixels are drawn (the box and labels cover a few)
    band = out[:40, :200].reshape(-1, 3)
    assert (band == 0).all(axis=1).mean() > 0.3  # the label band
    assert _reddish(band) > 10  # Severe in red (anti-aliased text: near the colour)


def test_annotation_says_no_face(still_mesh):
    image = F.read_image(data("single_face.jpg"))
    out = preview.Annotator()(image, _result(4, False), None, "")
    band = out[:30, :150].reshape(-1, 3)
    assert _reddish(band) > 10 and (band == 0).all(axis=1).mean() > 0.3
    assert not np.all(out == preview.GREEN, axis=2).any()  # no landmarks drawn


def _mjpeg_parts(port: int, n: int, timeout_s: float = 40) -> list[bytes]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/stream")
            resp = conn.getresponse()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    assert resp.status == 200
    assert resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={preview.BOUNDARY}"
    parts, buf = [], b""
    while len(parts) < n and time.monotonic() < deadline:
        buf += resp.read1(1 << 16)
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buf[:head_end].decode("latin-1")
            assert head.startswith(f"--{preview.BOUNDARY}")
            size = int(next(h for h in head.split("\r\n") if h.lower().startswith("content-length")).split(":")[1])
            if len(buf) < head_end + 4 + size + 2:
                break
            parts.append(buf[head_end + 4: head_end + 4 + size])
            buf = buf[head_end + 4 + size + 2:]
    conn.close()
    return parts


@pytest.mark.parametrize("backend", ["litert", "mediapipe"])
def test_preview_streams_annotated_frames_from_a_real_daemon(backend):
    port = free_port()
    with tempfile.TemporaryDirectory() as state, tempfile.TemporaryDirectory() as cwd:
        before = set(Path(cwd).iterdir())
        proc = subprocess.Popen(
            [sys.executable, "-m", "painedge", "preview", "--source", "demo", "--listen", f"127.0.0.1:{port}",
             "--metrics", "off", "--pub", f"ipc://{state}/pub", "--replay", f"ipc://{state}/replay", "--duration", "40"],
            cwd=cwd, env={**os.environ, "PAINEDGE_STATE__DIR": f'"{state}"', "PAINEDGE_FACE__BACKEND": backend,
                          "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            parts = _mjpeg_parts(port, 6)
            page = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            page.request("GET", "/")
            assert b"/stream" in page.getresponse().read()
            # A page elsewhere whose DNS name was rebound to 127.0.0.1 sends its own Host: refused.
            rebound = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            rebound.request("GET", "/stream", headers={"Host": "evil.example:8090"})
            assert rebound.getresponse().status == 403
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        assert len(parts) == 6, err[-2000:]
        frames = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
        assert all(f is not None and f.ndim == 3 for f in frames)
        last = frames[-1]
        cv2.imwrite(str(Path(state) / "x.png"), last)  # the test looks at it below, then it goes with the folder
        greenish = (np.abs(last.astype(int) - preview.GREEN).sum(axis=2) < 60).sum()
        assert greenish > 100  # landmarks drawn on the demo's face (JPEG blurs the exact colour)
        assert (np.abs(last[:30, :120].astype(int)).sum(axis=2) < 40).mean() > 0.2  # the label band
        assert set(Path(cwd).iterdir()) == before  # nothing written where it ran
        assert "preview: a viewer connected" in err
