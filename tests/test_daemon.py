"""The daemon on the real clips and the demo.

End to end, a real process with real ZeroMQ and a real /metrics scrape: a face clip, a missing camera, an
HTTP camera, the demo's grimace (the shared ``demo_run``). In-process (``tests.daemon.in_process``: the real
Service, its threads and journal, with a collecting sink beside the PUB socket, so no message is lost to
ZeroMQ's slow joiner): a no-face clip, the gate on a still clip. Start-up errors run ``painedge run``
in-process (``cli``): exit code 2 and one line."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from painedge import face as F
from painedge.client import request_replay

from .conftest import data
from painedge.service import RunLimits

from .daemon import Daemon, free_port, in_process, metric, write_clip


def _contiguous(msgs) -> bool:
    seqs = [m.seq for m in msgs]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.slow
def test_face_clip_gives_readings_with_unbroken_seq_and_live_metrics():
    with Daemon("--source", data("single_face.mp4")) as d:
        d.receive(lambda ms: sum(m.kind == "reading" for m in ms) >= 12 and any(m.kind == "heartbeat" for m in ms))
        text = d.scrape()
        _elapsed, code, err = d.terminate()
        d.receive(lambda ms: False, timeout_s=0.5)
    readings = d.of("reading")
    assert len(readings) >= 12, err
    assert _contiguous(d.messages)
    assert all(r.face and r.device_id == "test-bed" and len(r.probs) == 5 for r in readings)
    assert all(abs(sum(r.probs) - 1) < 0.02 and 0 <= r.level <= 4 for r in readings)
    assert all(r.capture_ts <= r.ts for r in readings)
    assert len({m.boot_id for m in d.messages}) == 1
    # the real /metrics, scraped over HTTP while it ran
    assert metric(text, "painedge_frames_captured_total") > 0
    assert metric(text, "painedge_inferences_total") > 0
    assert metric(text, "painedge_face_present") == 1
    assert metric(text, "painedge_camera_up") == 1
    assert metric(text, "painedge_stage_latency_seconds_count", 'stage="landmarks"') > 0
    assert metric(text, "painedge_frame_latency_seconds_count") > 0
    assert 'painedge_model_info{' in text
    # SIGTERM stops it cleanly, by itself (terminate() waits at most 10 s and never kills): exit code 0, its
    # closing line says what it handled and published, nothing failed on the way out
    assert code == 0, err
    assert "frames handled" in err.splitlines()[-1] and "messages published" in err.splitlines()[-1], err[-2000:]
    assert "Traceback" not in err and " ERROR " not in err and " CRITICAL " not in err


def run_to_end(svc) -> None:
    """Start an in-process daemon and run it until its limit; stopped (everything queued sent) after."""
    svc.start()
    try:
        assert svc.run() == 0
    finally:
        svc.close()


def sample(svc, name: str) -> float:
    return svc.metrics.registry.get_sample_value(name)


def test_no_face_clip_reports_no_face_and_gives_no_readings(tmp_path):
    svc, sink = in_process(tmp_path, RunLimits(max_frames=20), source={"source": data("no_face.mp4"), "realtime": False})
    run_to_end(svc)
    statuses = sink.of("status")
    assert statuses[0].detail == "painedge started" and statuses[0].face == "unknown"
    assert [s.detail for s in statuses if s.face == "lost"][:1] == ["face lost at frame 0"]
    assert not sink.of("reading") and not sink.of("alert")
    assert sample(svc, "painedge_frames_no_face_total") == 20
    assert sample(svc, "painedge_face_present") == 0


@pytest.mark.slow
def test_gate_skips_still_frames_but_never_two_intervals_in_a_row(tmp_path):
    still = F.read_image(data("single_face.jpg"))
    rng = np.random.default_rng(0)
    frames = [np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(120)]
    clip = write_clip(tmp_path / "still.mp4", frames)
    # Unpaced, every frame is handed over (none dropped): the gate's rule is then the only reason a frame is
    # skipped, however loaded the machine.
    svc, sink = in_process(tmp_path, RunLimits(exit_at_end=True),
                           source={"source": str(clip), "loop": False, "realtime": False})
    run_to_end(svc)
    frames_read = [r.frame for r in sink.of("reading")]
    assert frames_read[0] == 0  # the first frame with a face passes
    assert 10 <= len(frames_read) <= 13  # about one in ten of 120
    gaps = np.diff(frames_read)
    assert np.median(gaps) == 10  # one in ten on a still face
    assert gaps.max() < 20  # never two intervals in a row without a reading
    assert sample(svc, "painedge_frames_skipped_total") == 120 - len(frames_read)


@pytest.mark.slow
def test_the_daemons_log_is_its_own_lines_only(demo_run):
    """Its stderr (journald's, under systemd) holds painedge's lines: none of the libraries' notes about starting
    their models and graphs (TFLite's delegate line, MediaPipe's absl lines; logsetup.NATIVE_NOTES)."""
    lines = demo_run.stderr.splitlines()
    assert any(" INFO painedge: started: " in line for line in lines)
    assert [line for line in lines if " painedge" not in line] == []


@pytest.mark.slow
def test_model_output_follows_the_demo_grimace(demo_run):
    # The demo source unpaced: calm, a smile, then a grimace; the model's level must move with it.
    readings = demo_run.of("reading")
    calm = [r.level for r in readings if r.frame < 30]
    grimace = [r.level for r in readings if 175 <= r.frame <= 250]  # the apex: 11.5-16.5 s at 15 fps
    assert calm and grimace
    assert np.mean(calm) < 1.0
    assert np.mean(grimace) >= 3.0  # Severe or worse at the apex
    assert len({r.level for r in readings}) >= 3  # not a constant


def run_args(*flags: str) -> list[str]:
    return ["run", "--device-id", "test-bed", "--metrics", "off", "--replay", f"tcp://127.0.0.1:{free_port()}", *flags]


def test_bad_config_exits_before_start_with_a_readable_message(tmp_path, cli):
    cfg = tmp_path / "painedge.toml"
    cfg.write_text('device_id = "bed-3"\n\n[gate]\ntreshold = 0.1\n')
    code, err = cli("run", "--config", str(cfg))
    assert code == 2
    assert f"{cfg}, line 4: gate.treshold: unknown key" in err
    assert "Traceback" not in err


def test_port_in_use_exits_with_one_line(cli):
    ctx = zmq.Context()
    blocker = ctx.socket(zmq.PUB)
    port = blocker.bind_to_random_port("tcp://127.0.0.1")
    try:
        code, err = cli(*run_args("--source", "demo", "--pub", f"tcp://127.0.0.1:{port}"))
    finally:
        blocker.close(0)
        ctx.term()
    assert code == 2
    assert f"cannot bind tcp://127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err


def test_missing_video_file_exits_with_one_line(tmp_path, cli):
    code, err = cli(*run_args("--source", str(tmp_path / "nope.mp4")))
    assert code == 2 and "nope.mp4: no such video file" in err and "Traceback" not in err


@pytest.mark.slow
def test_no_camera_keeps_running_and_reports_the_camera_down():
    # No /dev/video99 exists: the daemon reports it and keeps retrying, heartbeats go on.
    with Daemon("--source", "/dev/video99") as d:
        d.receive(lambda ms: sum(m.kind == "heartbeat" for m in ms) >= 3, timeout_s=30)
        text = d.scrape()
        # The status itself may come before the subscriber is connected (ZeroMQ's slow joiner):
        # the snapshot serves the last one.
        snapshot, _ = request_replay(zmq.Context.instance(), d.replay, {"op": "snapshot"})
        elapsed, code, err = d.terminate()
    assert [m.camera for m in snapshot if m.kind == "status"] == ["down"]
    assert all(m.camera == "down" for m in d.of("heartbeat")[1:])
    assert metric(text, "painedge_camera_up") == 0
    assert code == 0 and "camera down" in err and "Traceback" not in err


class MjpegCamera:
    """An IP camera's MJPEG stream over HTTP (multipart/x-mixed-replace), serving a real clip's frames."""

    def __init__(self, clip: str) -> None:
        import http.server
        import threading

        import cv2

        frames = [cv2.imencode(".jpg", f)[1].tobytes() for _, f in F.read_video(clip)]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(3000):
                        jpg = frames[i % len(frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                        time.sleep(1 / 30)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.slow
def test_an_http_camera_stream_is_read():
    cam = MjpegCamera(data("single_face.mp4"))
    try:
        with Daemon("--source", cam.url) as d:
            d.receive(lambda ms: sum(m.kind == "reading" for m in ms) >= 3, timeout_s=60)
            d.terminate()
    finally:
        cam.close()
    assert len(d.of("reading")) >= 3
