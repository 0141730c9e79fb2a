"""The `painedge` command.

Each subcommand is a small function taking parsed arguments and returning an
exit code. Errors meant for users are ``UserError``: one line, no traceback
(unless --debug).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from . import __version__


class UserError(Exception):
    """An error the user can fix; printed as one line."""


# Exceptions that carry a message meant for users, from the modules below.
def _user_errors() -> tuple[type[BaseException], ...]:
    from .capture import SourceError
    from .config import ConfigError
    from .face import FrameError, VideoError
    from .metrics import MetricsError
    from .model import ModelError
    from .journal import JournalError
    from .publish import PublishError
    from .train.datasets import DatasetError

    return (UserError, ConfigError, SourceError, PublishError, MetricsError, JournalError, FrameError, VideoError,
            ModelError, DatasetError, FileNotFoundError, PermissionError)


# ---------------------------------------------------------------- cues

_CUE_COLUMNS = ("brow_lowering", "orbital_tightening", "levator", "eye_closure", "smile", "pspi")
_CUE_HEADERS = ("brow", "eyes_narrow", "lip_raise", "eyes_closed", "smile", "PSPI")


def cmd_cues(args: argparse.Namespace) -> int:
    """Print the face features of every frame of a video: what painedge sees."""
    from . import face as F

    mesh = F.FaceMesh(F.MeshSettings(static_image_mode=args.image))
    baseline = None if args.population else F.Baseline()
    out = sys.stdout
    if not args.json:
        out.write(f"{'frame':>5} {'face':>4} " + " ".join(f"{h:>11}" for h in _CUE_HEADERS) + "  explanation\n")
    frames = F.read_video(args.clip, max_frames=args.max_frames) if not args.image else [(0, F.read_image(args.clip))]
    n = n_face = 0
    for i, frame in frames:
        feats = F.extract(frame, mesh, baseline)
        n += 1
        if feats is None:
            if args.json:
                out.write(json.dumps({"frame": i, "face": False}) + "\n")
            else:
                out.write(f"{i:>5} {'no':>4} " + " ".join(f"{'-':>11}" for _ in _CUE_HEADERS) + "  no face\n")
            continue
        n_face += 1
        c = feats.cues.as_dict()
        if args.json:
            rec = {"frame": i, "face": True, "faces_in_frame": feats.face.n_faces, **c,
                   "explanation": feats.cues.describe()}
            out.write(json.dumps(rec) + "\n")
        else:
            out.write(f"{i:>5} {'yes':>4} " + " ".join(f"{c[k]:>11.2f}" for k in _CUE_COLUMNS)
                      + f"  {feats.cues.describe()}\n")
    mesh.close()
    if not args.json:
        out.write(f"{n} frames, face in {n_face}\n")
    return 0


# ---------------------------------------------------------------- synth


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic expression clip (the demo script) to a video file."""
    import cv2

    from . import synth as S

    photo = S.Photo.from_image(S.load_face(args.face), args.face)
    script = S.demo_script()
    duration = args.seconds or script.duration_s
    h, w = photo.image.shape[:2]
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
    if not writer.isOpened():
        raise UserError(f"{args.out}: cannot write a video there (check the folder exists and ends in .mp4)")
    n = 0
    for _t, frame, _pspi in S.play(photo, script, args.fps, duration):
        writer.write(frame)
        n += 1
    writer.release()
    print(f"wrote {n} frames ({duration:.1f} s at {args.fps} fps) to {args.out}")
    return 0


# ---------------------------------------------------------------- run, listen, demo, config


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from . import config

    over: dict = {}
    flags: dict[tuple[str, ...], str] = {}

    def put(flag: str, loc: tuple[str, ...], value: object) -> None:
        node = over
        for k in loc[:-1]:
            node = node.setdefault(k, {})
        node[loc[-1]] = value
        flags[loc] = flag

    if getattr(args, "source", None) is not None:
        put("--source", ("source", "source"), args.source)
    if getattr(args, "fast", False):
        put("--fast", ("source", "realtime"), False)
    if getattr(args, "no_loop", False):
        put("--no-loop", ("source", "loop"), False)
    if getattr(args, "pub", None):
        put("--pub", ("publish", "pub"), args.pub)
    if getattr(args, "replay", None) is not None:
        put("--replay", ("publish", "replay"), args.replay)
    if getattr(args, "metrics", None):
        if args.metrics == "off":
            put("--metrics", ("metrics", "enabled"), False)
        else:
            put("--metrics", ("metrics", "listen"), args.metrics)
    if getattr(args, "device_id", None):
        put("--device-id", ("device_id",), args.device_id)
    if getattr(args, "model", None):
        put("--model", ("model", "path"), args.model)
    if getattr(args, "no_gate", False):
        put("--no-gate", ("gate", "enabled"), False)
    return config.load(args.config, over, flags=flags)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon."""
    from .config import preflight
    from .service import RunLimits, run_service

    settings = _settings(args)
    preflight(settings)  # the same check as `painedge config check`
    if not args.debug:
        logging.getLogger().setLevel(settings.log_level.upper())
    view = None
    if getattr(args, "listen", None) or getattr(args, "show", False):
        from . import preview

        try:
            if getattr(args, "listen", None):
                host, _, port = args.listen.rpartition(":")
                if not 0 <= int(port) <= 65535:
                    raise ValueError(port)
                view = preview.HttpView(host or "127.0.0.1", int(port))
            else:
                view = preview.WindowView()
        except preview.PreviewError as e:
            raise UserError(str(e)) from None
        except ValueError:
            raise UserError(f"--listen {args.listen}: expected HOST:PORT on loopback, e.g. 127.0.0.1:8090") from None
    return run_service(settings, RunLimits(args.max_frames, args.duration, args.exit_at_end), view)


def _reading_line(msg) -> str:  # noqa: ANN001
    from . import messages as M

    t = time.strftime("%H:%M:%S", time.localtime(msg.ts))
    if isinstance(msg, M.Reading):
        return (f"{t} {msg.device_id:<8} frame {msg.frame:>5}  level {msg.smoothed_level} {msg.smoothed_level_name:<8}"
                f" (now {msg.level})  PSPI~{msg.cues.pspi:4.1f}  {msg.explanation}")
    if isinstance(msg, M.Status):
        return f"{t} {msg.device_id:<8} status: camera {msg.camera}, face {msg.face}, model {msg.model}; {msg.detail}"
    if isinstance(msg, M.Alert):
        return f"{t} {msg.device_id:<8} ALERT {msg.state} {msg.priority}: {msg.level_name}, {msg.explanation}"
    return f"{t} {msg.device_id:<8} heartbeat: camera {msg.camera}, {msg.fps_processed:.1f} fps"


def cmd_listen(args: argparse.Namespace) -> int:
    """The station console: a live table per bed and a line per alert change (or --json)."""
    from .client import ClientKeys, Station
    from .console import Board, render

    keys = None
    if args.key or args.server_key:
        if not (args.key and args.server_key):
            raise UserError("CURVE needs both --key (this station's .key_secret) and --server-key (the device's .key)")
        try:
            keys = ClientKeys.load(Path(args.key), Path(args.server_key))
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load the CURVE keys: {e}") from None
    kinds = tuple(args.kinds.split(",")) if args.kinds else ("reading", "alert", "status", "heartbeat")
    live = sys.stdout.isatty() and not args.json and not args.lines
    board, log_lines = Board(stale_after_s=args.stale_after), []
    shown = _Throttle(args.interval)
    n, next_draw = 0, 0.0
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    with Station(args.connect, kinds=kinds, keys=keys) as station:
        while True:
            got = False
            for msg in station.messages(for_s=0.5):
                got = True
                n += 1
                line = board.update(msg)
                if args.json:
                    print(msg.model_dump_json(), flush=True)
                elif line:
                    log_lines.append(line)
                    if not live:
                        print(line, flush=True)
                elif not live and msg.kind != "heartbeat" and shown.due(msg):
                    print(_reading_line(msg), flush=True)
                if (args.count and n >= args.count) or (deadline and time.monotonic() >= deadline):
                    return 0
                if live and time.monotonic() >= next_draw:
                    break
            if live and time.monotonic() >= next_draw:
                next_draw = time.monotonic() + 0.5
                width = shutil.get_terminal_size((120, 40)).columns
                sys.stdout.write("\x1b[H\x1b[2J" + render(board, log=log_lines, width=width) + "\n")
                sys.stdout.flush()
            for err in station.errors:
                log_lines.append(f"replay: {err}")
                if not live and not args.json:
                    print(f"replay: {err}", file=sys.stderr, flush=True)
            station.errors.clear()
            if deadline and time.monotonic() >= deadline:
                return 0
            if not got and args.idle_exit is not None and not board.beds:
                return 0


def cmd_station(args: argparse.Namespace) -> int:
    """The nursing station: many devices, a web board with alarm handling (painedge.station)."""
    from .station import service, settings
    from .station.store import StoreError

    flags = {"connect": args.connect or None, "http": args.http, "db": args.db, "ack_timeout_s": args.ack_timeout,
             "stale_after_s": args.stale_after}
    try:
        return service.run(settings.load(args.config, flags))
    except (StoreError, ValueError) as e:
        raise UserError(str(e)) from None


def cmd_bench(args: argparse.Namespace) -> int:
    """Latency and throughput of the real pipeline on this machine."""
    from . import bench

    if args.project:
        settings = _settings(args)
        p = bench.project(args.project, bench.default_project_models(settings.face.backend), args.threads)
        print(json.dumps(p, indent=2) if args.json == "-" else bench.projection_table(p))
        return 0
    if args.frames is None and args.seconds is None:
        args.seconds = 20.0
    settings = _settings(args)
    settings = settings.model_copy(update={
        "metrics": settings.metrics.model_copy(update={"enabled": False}),
        "publish": settings.publish.model_copy(update={"pub": "inproc://painedge-bench", "replay": ""}),
        "alerts": settings.alerts.model_copy(update={"enabled": False}),
        "model": settings.model.model_copy(update={"threads": args.threads}),
    })
    logging.getLogger("painedge").setLevel(logging.WARNING)
    report, samples = bench.run(settings, args.frames, args.seconds, args.warmup, args.compare_model)
    if args.json and args.json != "-":  # '-' means standard output only
        bench.write_json(report, args.json)
    if args.csv:
        Path(args.csv).write_text(bench.to_csv(report))
    if args.plot:
        bench.plot(samples, args.plot, f"painedge bench: {Path(report['source']).name} on {report['machine'].get('cpu')}, "
                                       f"{report['machine'].get('cores')} cores, model {report['model']['name']} "
                                       f"{report['model']['version']}")
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        print(bench.table(report))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Generate a CURVE key pair."""
    from .security import generate_keys

    public, secret = generate_keys(Path(args.dir), args.name, force=args.force)
    print(f"public key: {public}  (give it to the other side: devices list stations' keys in allowed_clients_dir)")
    print(f"secret key: {secret}  (mode 0600; keep it on this machine)")
    return 0


class _Throttle:
    """Readings at most every ``interval_s`` per device (0: all); other kinds always."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def due(self, msg) -> bool:  # noqa: ANN001
        if msg.kind != "reading" or self.interval_s <= 0:
            return True
        if msg.ts - self._last.get(msg.device_id, 0.0) >= self.interval_s:
            self._last[msg.device_id] = msg.ts
            return True
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A line of painedge's own log (logsetup.FORMAT); anything else on the daemon's stderr comes
# from the libraries below it (TFLite, MediaPipe's absl).
_LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) painedge[\w.]*: (.*)$")


class _DaemonOutput:
    """The demo daemon's stderr: what the console below does not already show.

    The console prints every status change and alert as it arrives over ZeroMQ, so the
    daemon's own INFO lines and alert warnings would print each event twice; library noise
    (TFLite's delegate line, absl's W0000 lines) means nothing to a new user. Those are kept
    (the last 200 lines) and shown only if the daemon fails; its warnings and errors are
    relayed at once.
    """

    def __init__(self, stream) -> None:  # noqa: ANN001
        import collections
        import threading

        self.kept: collections.deque[str] = collections.deque(maxlen=200)
        self.told_user = False  # it printed its one-line `painedge: error:` (relayed as is)
        self._thread = threading.Thread(target=self._pump, args=(stream,), name="demo-stderr", daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:  # noqa: ANN001
        for line in stream:
            m = _LOG_LINE.match(line)
            self.told_user |= line.startswith("painedge: error:")
            if (m and m.group(1) in ("WARNING", "ERROR", "CRITICAL") and not m.group(2).startswith("alert ")) \
                    or line.startswith("painedge: error:"):
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self.kept.append(line)

    def join(self) -> None:
        self._thread.join(timeout=2)


def _painedge_command() -> list[str]:
    """``painedge`` in a child process, importing the package this process runs.

    Not ``python -m painedge``: that puts the current folder first on sys.path, and from
    the folder holding a clone named painedge (the README's `git clone ... painedge`),
    that clone shadows an editable install's package (ImportError). Dropping the current
    folder ('' for -c) first leaves what the environment itself resolves.
    """
    return [sys.executable, "-c",
            "import sys; sys.path[:] = [p for p in sys.path if p != '']; from painedge.cli import main; sys.exit(main())"]


def cmd_demo(args: argparse.Namespace) -> int:
    """The daemon on its built-in demo source, with its live readings printed here."""
    import subprocess
    import tempfile

    from .client import Station

    pub = f"tcp://127.0.0.1:{_free_port()}"
    cmd = [*_painedge_command(), "run", "--source", "demo", "--pub", pub,
           "--metrics", args.metrics, "--device-id", "demo-bed", "--replay", f"tcp://127.0.0.1:{_free_port()}"]
    if args.duration:
        cmd += ["--duration", str(args.duration)]
    # The demo's alerts are not a patient's: a journal of their own, gone at the end, so a demo
    # stopped mid-alert does not hand an open alert to the next run (or to a real deployment).
    state = tempfile.TemporaryDirectory(prefix="painedge-demo-")
    env = {**os.environ, "PAINEDGE_STATE__DIR": json.dumps(state.name)}
    print(f"starting: painedge {' '.join(cmd[len(_painedge_command()):])}", flush=True)
    print(f"readings below (at most every {args.interval} s); metrics at http://{args.metrics}/metrics; Ctrl-C stops",
          flush=True)
    daemon = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    output = _DaemonOutput(daemon.stderr)
    shown = _Throttle(args.interval)
    try:
        with Station([pub], recover=False) as sub:
            while daemon.poll() is None:
                # Heartbeats come every second: a silence of 3 s means the daemon is gone or stuck.
                for msg in sub.messages(timeout_s=3.0, for_s=3.0):
                    if msg.kind != "heartbeat" and shown.due(msg):
                        print(_reading_line(msg), flush=True)
                    if daemon.poll() is not None:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        output.join()
        state.cleanup()
    if daemon.returncode not in (0, -15):
        if not output.told_user:  # a crash, not a user error: everything it said
            sys.stderr.write(f"painedge demo: the daemon stopped with exit code {daemon.returncode}; its last output:\n")
            sys.stderr.writelines(output.kept)
        return daemon.returncode if daemon.returncode > 0 else 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """check: everything `run` checks before starting; show: the effective settings; example: every key."""
    from . import config

    if args.config_command == "example":
        print(config.example_toml(), end="")
        return 0
    settings = _settings(args)
    if args.config_command == "check":
        config.preflight(settings)
        where = args.config or os.environ.get("PAINEDGE_CONFIG") or str(config.DEFAULT_CONFIG)
        print(f"ok: {where if Path(where).exists() else 'defaults (no config file)'} is valid, and every file it "
              f"names is there")
    else:
        print(config.to_toml(settings), end="")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .messages import json_schema

    text = json_schema()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


# ---------------------------------------------------------------- model: train, export, info, verify, explain


def _need_tensorflow(what: str) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"{what} needs TensorFlow: pip install 'painedge[train]'")


# painedge.train.data.DEFAULT_FACES and DEFAULT_TEST_SUBJECTS, repeated so the
# parser needs no OpenCV (tests/test_synth.py keeps them equal).
TRAIN_FACES = ("astronaut", "grace_hopper")
TRAIN_TEST_SUBJECTS = ("astronaut",)


def cmd_train(args: argparse.Namespace) -> int:
    """Train the fused model on synthetic expressions of the given faces."""
    _need_tensorflow("painedge train")
    from pathlib import Path

    from .train.fit import TrainConfig, train

    cfg = TrainConfig(variant=args.variant, epochs=args.epochs, cv_epochs=args.cv_epochs, folds=args.folds,
                      seed=args.seed, sequences_per_identity=args.sequences, sequence_s=args.sequence_s,
                      faces=args.faces, same_person=[g.split(",") for g in args.same_person],
                      test_subjects=args.test_subjects or ([] if args.dataset else list(TRAIN_TEST_SUBJECTS)),
                      limit_train=args.limit_train, limit_test=args.limit_test,
                      dataset=args.dataset[0] if args.dataset else None,
                      dataset_path=args.dataset[1] if args.dataset else None, dataset_fps=args.dataset_fps,
                      noise=args.noise,
                      window_frames=args.window)
    train(cfg, Path(args.out), cv=args.folds > 1)
    print(f"run written to {args.out} (model.keras, report.json, confusion/roc/pr .png)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Convert a trained run to a full-int8 TFLite model with its metadata, and measure agreement."""
    _need_tensorflow("painedge export")
    import json
    import shutil
    from pathlib import Path

    import keras

    from .model import ModelMeta, PainModel
    from .train.data import Windows
    from .train.export import agreement, convert_int8, float_ops, write_model
    from .train.fit import TrainConfig, model_inputs, split
    from .train.net import VARIANTS

    run = Path(args.run)
    for need in ("model.keras", "windows.npz", "report.json"):
        if not (run / need).exists():
            raise UserError(f"{run / need}: missing; point at a folder `painedge train` wrote")
    report = json.loads((run / "report.json").read_text())
    cfg = TrainConfig(**report["config"])
    v = VARIANTS[cfg.variant]
    model = keras.models.load_model(run / "model.keras")
    tr, te = split(Windows.load(run / "windows.npz"), cfg.test_subjects)
    print(f"converting to int8 with {min(300, len(tr))} calibration windows ...", flush=True)
    tfl = convert_int8(model, model_inputs(tr, v.crop_px, v.crop_channels))
    out = Path(args.out)
    meta = ModelMeta.for_features(
        name=args.name, version=args.version, variant=cfg.variant, window_frames=cfg.window_frames,
        crop_px=v.crop_px, crop_channels=v.crop_channels, quantization="int8", window_period_s=1.0 / cfg.fps,
        training={k: report["config"][k] for k in ("epochs", "batch_size", "learning_rate", "folds", "seed",
                                                   "sequences_per_identity", "sequence_s", "fps", "test_subjects", "mapping")}
        | {"train_windows": report["train_windows"], "test_windows": report["test_windows"]},
        metrics={"test": {k: report["test"][k] for k in ("accuracy", "macro_f1", "within_one_level", "severe_or_worse_recall")},
                 "cross_validation": {k: report.get("cross_validation", {}).get(k) for k in ("accuracy_mean", "accuracy_sd", "macro_f1_mean")},
                 "calibration": report.get("calibration", {})},
        temperature=report.get("calibration", {}).get("temperature", 1.0),
    )
    write_model(tfl, out, meta)
    agree = agreement(PainModel(out), model, te, v.crop_px, v.crop_channels)
    meta = ModelMeta.read(out.with_suffix(".json"))
    from dataclasses import replace

    meta = replace(meta, metrics=meta.metrics | {"int8_vs_float": agree, "float_ops": float_ops(out)})
    out.with_suffix(".json").write_text(meta.to_json())
    shutil.copy(run / "model.keras", out.with_name(out.stem.replace("-int8", "") + ".keras"))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) and its metadata; int8 vs float on "
          f"{agree['n']} held-out windows: top-1 agreement {agree['top1_agreement']:.4f} "
          f"(smoothed level {agree['smoothed_top1_agreement']:.4f}), "
          f"accuracy int8 {agree['int8_accuracy']:.4f} / float {agree['float_accuracy']:.4f}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    """Show a model's metadata, inputs and size."""
    import json
    from dataclasses import asdict

    from .model import PainModel

    m = PainModel(args.model)
    info = {"path": str(m.path), "size_bytes": m.path.stat().st_size, "interpreter": m.backend} | asdict(m.meta)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = m.meta
    print(f"{meta.name} {meta.version} ({meta.variant}, {meta.quantization}) {m.path} "
          f"{info['size_bytes'] / 1024:.0f} KiB, interpreter {m.backend}")
    print(f"  features {meta.feature_version}: window {meta.window_frames} frames x {meta.frame_dim} values "
          f"({len(meta.landmark_ids)} landmarks x 2 + {len(meta.cue_names)} cues), crop {meta.crop_px}x{meta.crop_px}x{meta.crop_channels}")
    print(f"  labels: {', '.join(f'{i} {n}' for i, n in enumerate(meta.labels))}")
    for k, v in meta.metrics.items():
        print(f"  {k}: {json.dumps(v)}")
    return 0


def cmd_model_verify(args: argparse.Namespace) -> int:
    """Run the TFLite model over a clip beside the float model and compare."""
    _need_tensorflow("painedge model verify")
    from pathlib import Path

    import keras
    import numpy as np

    from . import face as F
    from .model import LandmarkWindow, PainModel, crop_input, frame_vector

    m = PainModel(args.model)
    keras_path = Path(args.float) if args.float else m.path.with_name(m.path.stem.replace("-int8", "") + ".keras")
    if not keras_path.exists():
        raise UserError(f"{keras_path}: float model not found; pass --float PATH.keras")
    km = keras.models.load_model(keras_path)
    mesh, baseline = F.FaceMesh(), F.Baseline()
    win = LandmarkWindow(m.window_frames, m.meta.window_period_s)
    fps = F.video_fps(args.clip)
    rows = []
    for i, frame in F.read_video(args.clip, max_frames=args.max_frames):
        feats = F.extract(frame, mesh, baseline)
        if feats is None:
            win.clear()
            continue
        win.push(i / fps, frame_vector(feats))
        window = win.sample(i / fps)
        p8 = m.predict(window, feats.crop)
        pf = np.asarray(km({"landmarks": window[None], "crop": crop_input(feats.crop, m.meta.crop_px, m.meta.crop_channels)[None]},
                           training=False))[0]
        rows.append((i, int(p8.argmax()), int(pf.argmax()), float(np.abs(p8 - pf).max())))
    if not rows:
        raise UserError(f"{args.clip}: no frame with a face for {m.window_frames} frames in a row; nothing to compare")
    agree = float(np.mean([r[1] == r[2] for r in rows]))
    worst = max(r[3] for r in rows)
    print(f"{args.clip}: {len(rows)} windows; int8 vs float top-1 agreement {agree:.4f}, largest probability difference {worst:.3f}")
    print(f"  int8 levels: {np.bincount([r[1] for r in rows], minlength=5).tolist()}, float levels: {np.bincount([r[2] for r in rows], minlength=5).tolist()}")
    ok = agree >= args.min_agreement
    print("OK" if ok else f"FAILED: agreement below {args.min_agreement}")
    return 0 if ok else 1


def cmd_explain(args: argparse.Namespace) -> int:
    """Grad-CAM heat map over the face crop of a frame, from the float model."""
    _need_tensorflow("painedge explain")
    import cv2
    import keras
    import numpy as np

    from . import face as F
    from .levels import LABELS
    from .model import LandmarkWindow, frame_vector
    from .train.explain import figure, grad_cam

    km = keras.models.load_model(args.float)
    win = LandmarkWindow(km.get_layer("landmarks").output.shape[1])
    mesh, baseline = F.FaceMesh(F.MeshSettings(static_image_mode=args.image)), F.Baseline()
    fps = 1.0 if args.image else F.video_fps(args.source)
    frames = [(0, F.read_image(args.source))] if args.image else F.read_video(args.source, max_frames=args.frame + 1)
    feats, t = None, 0.0
    for i, frame in frames:
        t = i / fps
        feats = F.extract(frame, mesh, baseline)
        if feats is not None:
            win.push(t, frame_vector(feats))
    if feats is None:
        raise UserError(f"{args.source}: no face in the chosen frame")
    cam, level, probs = grad_cam(km, win.sample(t), feats.crop)  # a still image: its frame, repeated
    title = f"Grad-CAM: where the float model looks for level {level} {LABELS[level]} (p={probs[level]:.2f})"
    if not cv2.imwrite(args.out, figure(feats.crop, cam, title, f"cues: {feats.cues.describe()}")):
        raise UserError(f"{args.out}: cannot write the image (use a .png or .jpg name in a writable folder)")
    print(f"{args.out}: Grad-CAM for level {level} {LABELS[level]} (p={probs[level]:.2f}); cues: {feats.cues.describe()}")
    return 0


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="painedge", description="Real-time pain monitor for the bedside (NVIDIA Jetson: Orin Nano or Nano).")
    p.add_argument("--version", action="version", version=f"painedge {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("cues", help="print the face features of each frame of a video (what painedge sees)")
    c.add_argument("clip", help="a video file (or an image with --image)")
    c.add_argument("--json", action="store_true", help="one JSON object per frame instead of a table")
    c.add_argument("--image", action="store_true", help="CLIP is a still image")
    c.add_argument("--population", action="store_true",
                   help="measure against the population's neutral face, not the person's own (learnt from the clip)")
    c.add_argument("--max-frames", type=int, default=None, metavar="N")
    c.set_defaults(func=cmd_cues)

    r = sub.add_parser("run", help="run the daemon (camera -> face mesh -> gate -> model -> ZeroMQ + Prometheus)")
    _run_flags(r)
    r.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    r.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    r.add_argument("--exit-at-end", action="store_true", help="stop when a video file ends")
    r.add_argument("--show", action="store_true", help="show the annotated frames in a window on this device's screen")
    r.set_defaults(func=cmd_run)

    pv = sub.add_parser("preview", help="run the daemon and serve its annotated frames as MJPEG on loopback "
                                        "(aim the camera over an SSH tunnel)")
    _run_flags(pv)
    pv.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT",
                    help="a loopback address only (default 127.0.0.1:8090): ssh -L 8090:127.0.0.1:8090 DEVICE")
    pv.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    pv.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    pv.add_argument("--exit-at-end", action="store_true", help="stop when a video file ends")
    pv.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run the daemon on the built-in demo source and show its live readings")
    d.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    d.add_argument("--interval", type=float, default=0.5, metavar="S", help="print a reading at most every S seconds")
    d.add_argument("--metrics", default="127.0.0.1:9108", metavar="HOST:PORT")
    d.set_defaults(func=cmd_demo)

    ls = sub.add_parser("listen", help="the station console: live table per bed, alert log, gap recovery")
    ls.add_argument("--connect", action="append", default=[], metavar="PUB[,REPLAY]",
                    help="a device's PUB endpoint, optionally with its replay endpoint (default: PUB port + 1); "
                         "repeat for several devices; default tcp://127.0.0.1:5556")
    ls.add_argument("--key", default=None, metavar="FILE", help="this station's CURVE .key_secret")
    ls.add_argument("--server-key", default=None, metavar="FILE", help="the devices' CURVE public .key")
    ls.add_argument("--lines", action="store_true", help="print lines even on a terminal (no live table)")
    ls.add_argument("--stale-after", type=float, default=3.0, metavar="S", help="mark a bed stale after S s of silence")
    ls.add_argument("--kinds", default=None, help="comma-separated: reading,alert,heartbeat,status")
    ls.add_argument("--json", action="store_true", help="one JSON object per message")
    ls.add_argument("--interval", type=float, default=0.0, metavar="S",
                    help="print a device's readings at most every S seconds (0: all)")
    ls.add_argument("--count", type=int, default=None, metavar="N", help="stop after N messages")
    ls.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")
    ls.add_argument("--idle-exit", type=float, default=None, metavar="S", help="stop after S seconds without a message")
    ls.set_defaults(func=cmd_listen)

    st = sub.add_parser("station", help="the nursing station: a web board for many devices, alarm acknowledgement")
    st.add_argument("--connect", action="append", default=[], metavar="PUB[,REPLAY]", help="a device (repeat)")
    st.add_argument("--http", default=None, metavar="HOST:PORT", help="where the board listens (default 127.0.0.1:8080)")
    st.add_argument("--db", default=None, metavar="PATH", help="the station's SQLite history")
    st.add_argument("--config", default=None, metavar="PATH", help="station settings (TOML): users, beds, channels")
    st.add_argument("--ack-timeout", type=float, default=None, metavar="S", help="escalate unacknowledged alarms after S")
    st.add_argument("--stale-after", type=float, default=None, metavar="S", help="mark a bed stale after S of silence")
    st.set_defaults(func=cmd_station)

    b = sub.add_parser("bench", help="time the real pipeline stage by stage on this machine")
    _run_flags(b)
    b.add_argument("--frames", type=int, default=None, metavar="N", help="measure N frames after the warm-up")
    b.add_argument("--seconds", type=float, default=None, metavar="S", help="measure S seconds (default 20)")
    b.add_argument("--warmup", type=float, default=3.0, metavar="S")
    b.add_argument("--threads", type=int, default=1, help="TFLite threads")
    b.add_argument("--compare-model", default=None, metavar="PATH", help="also time this .tflite on the same inputs")
    b.add_argument("--project", default=None, metavar="BOARD", choices=("nano", "orin-nano"),
                   help="instead of running: a projection (not a measurement) for nano or orin-nano from the models' op counts")
    b.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON ('-': print it)")
    b.add_argument("--csv", default=None, metavar="FILE", help="write the latency table as CSV")
    b.add_argument("--plot", default=None, metavar="FILE.png", help="latency percentiles per stage and their distributions (CDF), log time axis")
    b.set_defaults(func=cmd_bench)

    k = sub.add_parser("keys", help="CURVE keys")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kg = ksub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (mode 0600)")
    kg.add_argument("name", help="e.g. bed-12 or station-3")
    kg.add_argument("--dir", default=".", help="folder to write the files in")
    kg.add_argument("--force", action="store_true", help="replace an existing pair (cuts off every peer that knew it)")
    kg.set_defaults(func=cmd_keys)

    cf = sub.add_parser("config", help="check or show the effective configuration, or print the example file")
    cf.add_argument("config_command", choices=["check", "show", "example"],
                    help="check: what `run` checks before starting; show: the effective settings; example: every "
                         "key with its default and description (deploy/painedge.example.toml)")
    _run_flags(cf)
    cf.set_defaults(func=cmd_config)

    sc = sub.add_parser("schema", help="print (or write) the JSON Schema of the wire messages")
    sc.add_argument("--out", default=None)
    sc.set_defaults(func=cmd_schema)

    s = sub.add_parser("synth", help="write the demo's synthetic expression clip to a video file")
    s.add_argument("out", help="output .mp4 path")
    s.add_argument("--face", default="astronaut", help="a face photo path, or 'astronaut' (shipped)")
    s.add_argument("--fps", type=float, default=15.0)
    s.add_argument("--seconds", type=float, default=None)
    s.set_defaults(func=cmd_synth)
    t = sub.add_parser("train", help="train the fused model on synthetic expressions or a real dataset "
                                     "(needs painedge[train])")
    t.add_argument("--faces", nargs="+", default=list(TRAIN_FACES),
                   help="face photos or videos ('astronaut' and 'grace_hopper' are shipped); a photo with several faces gives one identity "
                        f"per face (default: {' '.join(TRAIN_FACES)}, the shipped ones; never a face you evaluate on)")
    t.add_argument("--same-person", action="append", default=[], metavar="A,B",
                   help="names of photos of one person, kept on the same side of every split")
    t.add_argument("--test-subjects", nargs="+", default=None,
                   help=f"identities held out for the final test (default: {' '.join(TRAIN_TEST_SUBJECTS)}; "
                        "with --dataset, every fifth subject)")
    t.add_argument("--dataset", nargs=2, metavar=("NAME", "PATH"), default=None,
                   help="train on a real dataset instead of synthetic expressions: biovid, unbc or mintpain, and its "
                        "folder in the dataset's published layout")
    t.add_argument("--dataset-fps", type=float, default=None,
                   help="the frame rate of the dataset's image sequences (videos give their own)")
    t.add_argument("--variant", choices=["edge", "paper"], default="edge")
    t.add_argument("--window", type=int, default=8, help="landmark frames per window")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--cv-epochs", type=int, default=10)
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds by subject (1: none)")
    t.add_argument("--sequences", type=int, default=8, help="synthetic sequences per identity")
    t.add_argument("--sequence-s", type=float, default=40.0)
    t.add_argument("--limit-train", type=int, default=None, metavar="N", help="train on at most N random windows")
    t.add_argument("--limit-test", type=int, default=None, metavar="N",
                   help="test on at most N held-out windows, stratified by level (the slow paper variant)")
    t.add_argument("--noise", type=float, default=0.0,
                   help="training-only Gaussian noise on landmarks and branch outputs (int8 robustness)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/edge")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="convert a training run to a full-int8 TFLite model with metadata")
    e.add_argument("run", help="a folder written by `painedge train`")
    e.add_argument("--out", default="painedge/models/painedge-edge-int8.tflite",
                   help="the .tflite to write (its .json and .keras beside it); the default, run from a "
                        "checkout, replaces the shipped model")
    e.add_argument("--name", default="painedge-edge")
    e.add_argument("--version", default="1")
    e.set_defaults(func=cmd_export)

    m = sub.add_parser("model", help="inspect or verify a TFLite model")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mi = msub.add_parser("info", help="metadata, inputs, size and measured metrics")
    mi.add_argument("model", nargs="?", default=str(_default_model()))
    mi.add_argument("--json", action="store_true")
    mi.set_defaults(func=cmd_model_info)
    mv = msub.add_parser("verify", help="run the TFLite model on a clip and compare with the float model")
    mv.add_argument("model", nargs="?", default=str(_default_model()))
    mv.add_argument("--clip", required=True)
    mv.add_argument("--float", default=None, help="the float Keras model (default: beside the .tflite)")
    mv.add_argument("--max-frames", type=int, default=None)
    mv.add_argument("--min-agreement", type=float, default=0.95)
    mv.set_defaults(func=cmd_model_verify)

    x = sub.add_parser("explain", help="Grad-CAM heat map of the face crop (float model)")
    x.add_argument("source", help="a video (use --frame) or an image (--image)")
    x.add_argument("--image", action="store_true")
    x.add_argument("--frame", type=int, default=0)
    x.add_argument("--float", default=str(_default_model().with_name("painedge-edge.keras")))
    x.add_argument("--out", default="gradcam.png")
    x.set_defaults(func=cmd_explain)

    ev = sub.add_parser("evaluate", help="the daemon's pipeline over labelled real clips and stills: levels, "
                                         "ROC AUC, alerts, start-frame dependence")
    ev.add_argument("labels", help="a labels JSON (segments per file with expect pain / no_pain / none; files "
                                   "relative to it)")
    ev.add_argument("--config", default=None, metavar="PATH", help="TOML settings (gate, smoothing, alerts, face)")
    ev.add_argument("--model", default=None, metavar="PATH", help="a .tflite model (its .json beside it)")
    ev.add_argument("--still-frames", type=int, default=60, metavar="N", help="a still is read as N copies of itself")
    ev.add_argument("--still-fps", type=float, default=15.0, metavar="FPS")
    ev.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON ('-': print it)")
    ev.add_argument("--plot", default=None, metavar="FILE.png", help="a timeline per file")
    ev.set_defaults(func=cmd_evaluate)
    return p


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Real-footage evaluation (painedge/evaluate.py)."""
    from . import evaluate

    logging.getLogger("painedge").setLevel(logging.WARNING)
    report = evaluate.evaluate(args.labels, _settings(args), args.still_frames, args.still_fps)
    if args.json and args.json != "-":
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    if args.plot:
        evaluate.plot(report, args.plot)
    print(json.dumps(report.to_dict(), indent=1) if args.json == "-" else evaluate.table(report))
    return 0


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="PATH",
                   help="TOML settings (default $PAINEDGE_CONFIG or /etc/painedge/painedge.toml if it exists)")
    p.add_argument("--source", default=None, metavar="SRC",
                   help="demo, a video file, a device index or /dev/videoN, an rtsp:// or http:// URL, or gst:PIPELINE")
    p.add_argument("--pub", default=None, metavar="ENDPOINT", help="ZeroMQ PUB bind address")
    p.add_argument("--replay", default=None, metavar="ENDPOINT", help="ZeroMQ ROUTER bind address of the replay service")
    p.add_argument("--metrics", default=None, metavar="HOST:PORT", help="Prometheus endpoint, or 'off'")
    p.add_argument("--device-id", default=None, metavar="ID")
    p.add_argument("--model", default=None, metavar="PATH", help="a .tflite model (its .json beside it)")
    p.add_argument("--fast", action="store_true", help="read a video file as fast as possible (benchmarks)")
    p.add_argument("--no-loop", action="store_true", help="do not restart a video file at its end")
    p.add_argument("--no-gate", action="store_true", help="process every frame (no frame skipping)")


def _default_model():  # noqa: ANN202
    from .model import DEFAULT_MODEL

    return DEFAULT_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .logsetup import configure

    configure("DEBUG" if args.debug else "INFO")
    if getattr(args, "command", None) == "listen" and not args.connect:
        args.connect = ["tcp://127.0.0.1:5556"]
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except _user_errors() as e:
        if args.debug:
            raise
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
        print(f"painedge: error: {msg}", file=sys.stderr)
        return 2
