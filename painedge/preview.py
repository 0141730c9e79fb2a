"""Seeing what the camera sees: annotated frames in a window (`run --show`) or as MJPEG on loopback (`preview`).

The paper's Algorithm 1 shows each frame with its pain level, or "No face
detected" (DISPLAYPAINLEVEL, SHOWFRAME). Here that is for aiming the camera and
checking the landmarks at the bedside: never on by default, the HTTP preview
binds only to a loopback address (reach it over an SSH tunnel), and nothing is
written anywhere: frames live in memory until the next one replaces them.
Annotation and JPEG encoding happen only while somebody watches.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from . import face as F
from .config import host_header_is_loopback
from .levels import LABELS

log = logging.getLogger("painedge")

BOUNDARY = "painedge-frame"
JPEG_QUALITY = 80
WINDOW = "painedge"
# BGR colours: landmarks green, the face box by how it was found (tracked cyan, re-detected orange).
GREEN, CYAN, ORANGE, WHITE, RED = (80, 220, 80), (220, 200, 40), (0, 150, 255), (255, 255, 255), (60, 60, 230)


class PreviewError(ValueError):
    """A preview that cannot start; the message says why and what to do."""


@dataclass
class _Watched:
    """The pipeline's landmark backend, remembering the last face it returned (for drawing only)."""

    inner: Any
    face: F.Face | None = None

    def largest(self, image: np.ndarray) -> F.Face | None:
        self.face = self.inner.largest(image)
        return self.face

    def close(self) -> None:
        self.inner.close()

    @property
    def how(self) -> str:
        """'tracked' or 're-detected' for painedge's own backend; the MediaPipe graph does not say."""
        last = getattr(self.inner, "last", None)
        if last is None:
            return "MediaPipe graph"
        return "re-detected" if last.detected else "tracked"


class Annotator:
    """Draws one processed frame: face box and landmarks, how the face was found, level and confidence,
    fps and capture-to-result latency, or "No face detected"."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.fps = 0.0
        self._last_mono: float | None = None
        self.level: tuple[str, float, int] | None = None  # (name, confidence, smoothed level) of the last inference

    def __call__(self, image: np.ndarray, result: Any, face: F.Face | None, how: str) -> np.ndarray:
        now = self.clock()
        if self._last_mono is not None and now > self._last_mono:
            rate = 1.0 / (now - self._last_mono)
            self.fps = rate if self.fps == 0 else 0.9 * self.fps + 0.1 * rate
        self._last_mono = now
        latency_ms = max(0.0, (now - result.capture_mono) * 1000)
        if result.assessment is not None:
            a = result.assessment
            self.level = (LABELS[a.smoothed_level], float(a.smoothed_probs[a.smoothed_level]), a.smoothed_level)
        if not result.face:
            self.level = None
        out = image.copy()
        scale = max(out.shape[1] / 960, 0.5)
        thick = max(round(scale * 2), 1)
        if face is not None and result.face:
            x, y, w, h = face.bbox_px
            colour = ORANGE if how == "re-detected" else CYAN
            cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), colour, thick)
            for px, py in face.points_px.astype(int):
                cv2.circle(out, (int(px), int(py)), 1, GREEN, -1)
            cv2.putText(out, how, (int(x), max(int(y) - 8, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, colour, thick)
            if self.level is not None:
                name, conf, lvl = self.level
                text = f"Pain level {lvl}: {name} ({conf:.0%})"
            else:
                text = "Pain level: waiting for the model"
            _label(out, text, (10, int(30 * scale)), scale, RED if self.level and self.level[2] >= 3 else WHITE)
        else:
            _label(out, "No face detected", (10, int(30 * scale)), scale, RED)
        _label(out, f"{self.fps:4.1f} fps  latency {latency_ms:4.0f} ms  frame {result.frame}",
               (10, out.shape[0] - int(12 * scale)), scale * 0.8, WHITE)
        return out


def _label(image: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    """Text on a dark band, readable on any background."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale
    thick = max(round(scale * 2), 1)
    (w, h), base = cv2.getTextSize(text, font, size, thick)
    cv2.rectangle(image, (org[0] - 4, org[1] - h - 6), (org[0] + w + 4, org[1] + base + 2), (0, 0, 0), -1)
    cv2.putText(image, text, org, font, size, colour, thick, cv2.LINE_AA)


class _View:
    """Attaches to a started Service: wraps its landmark backend and receives each frame's result."""

    def __init__(self) -> None:
        self.annotate = Annotator()
        self._watched: _Watched | None = None

    def attach(self, service: Any) -> None:
        self._watched = _Watched(service.pipeline.mesh)
        service.pipeline.mesh = self._watched
        service.on_result = self.on_result

    def wanted(self) -> bool:
        return True

    def on_result(self, frame: Any, result: Any) -> None:
        if result.refused is not None or not self.wanted():
            return
        w = self._watched
        self.show(self.annotate(frame.image, result, w.face if w else None, w.how if w else ""))

    def show(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class WindowView(_View):
    """`painedge run --show`: an OpenCV window on the device's own screen."""

    def __init__(self) -> None:
        super().__init__()
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise PreviewError("--show needs a screen (DISPLAY is not set); over SSH use `painedge preview` "
                               "and an SSH tunnel instead")
        # OpenCV's Qt backend aborts the whole process when the display cannot be reached, so
        # a throwaway process tries first and the daemon only opens a window that will work.
        import subprocess
        import sys

        probe = subprocess.run([sys.executable, "-c", "import cv2; cv2.namedWindow('probe'); cv2.destroyAllWindows()"],
                               capture_output=True, text=True, timeout=30, check=False)
        if probe.returncode != 0:
            why = next((ln for ln in probe.stderr.splitlines() if "display" in ln.lower()), "no window could be opened")
            raise PreviewError(f"--show cannot open a window on DISPLAY={os.environ.get('DISPLAY', '')!r} ({why.strip()}); "
                               f"over SSH use `painedge preview` and an SSH tunnel instead")
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise PreviewError(f"--show cannot open a window ({str(e).strip().splitlines()[-1]}); "
                               f"use `painedge preview` instead") from None

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(WINDOW, image)
        cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyAllWindows()


def check_loopback(host: str) -> str:
    """``host`` when it is a loopback address (or localhost), else a PreviewError saying why not."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ok = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise PreviewError(f"the preview shows the patient's face, so it listens on loopback only, not on {host!r}: "
                           f"use 127.0.0.1 and reach it with `ssh -L 8090:127.0.0.1:8090 DEVICE`")
    return host.strip("[]")


class _Latest:
    """The newest JPEG, for any number of HTTP clients; nothing older is kept."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0  # JPEGs put so far: a client waits for a newer one than it last sent
        self.clients = 0  # clients watching; with none, frames are not drawn or encoded (wanted)

    def put(self, jpeg: bytes) -> None:
        with self._cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self._cond.notify_all()

    def wait_newer(self, seq: int, timeout_s: float) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self.seq != seq, timeout=timeout_s)
            return self.seq, self.jpeg

    @contextmanager
    def watching(self) -> Iterator[None]:
        """One client watching, for as long as the block runs."""
        with self._cond:
            self.clients += 1
        try:
            yield
        finally:
            with self._cond:
                self.clients -= 1


_PAGE = (b"<!doctype html><title>painedge preview</title><body style='margin:0;background:#111'>"
         b"<img src='/stream' style='max-width:100%;display:block;margin:auto'></body>")


class HttpView(_View):
    """`painedge preview`: the annotated frames as MJPEG (multipart/x-mixed-replace) on a loopback address."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8090) -> None:
        super().__init__()
        host = check_loopback(host)
        self.latest = _Latest()
        self._stop = threading.Event()
        latest, stop = self.latest, self._stop

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # one line per client, not per request
                pass

            def do_GET(self) -> None:
                if not host_header_is_loopback(self.headers.get("Host", "")):  # DNS rebinding: another site's name
                    self.send_error(HTTPStatus.FORBIDDEN, "the preview answers only to 127.0.0.1 or localhost")
                    return
                if self.path in ("/", "/index.html"):
                    self.send_response(HTTPStatus.OK)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(_PAGE)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(_PAGE)
                    return
                if self.path != "/stream":
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                log.info("preview: a viewer connected from %s", self.client_address[0])
                seq = -1
                try:
                    with latest.watching():
                        while not stop.is_set():
                            seq, jpeg = latest.wait_newer(seq, 1.0)
                            if jpeg is None:
                                continue
                            self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                             f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    log.info("preview: a viewer left")

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        try:
            self.server = Server((host, port), Handler)
        except OSError as e:
            raise PreviewError(f"the preview cannot listen on {host}:{port} ({e.strerror}); choose another --listen port") from None
        self.address = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, name="preview-http", daemon=True)
        self._thread.start()
        log.info("preview on http://%s:%d/ (loopback only; nothing is stored)", *self.address)

    def wanted(self) -> bool:
        return self.latest.clients > 0

    def show(self, image: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            self.latest.put(buf.tobytes())

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
