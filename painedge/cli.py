"""The `painedge` command: parses arguments and calls the library. Each subcommand names the library function
it runs (``_Call``: commands/, console.py, demo.py, bench*.py, config/), called with the parsed arguments as
keywords by name. Errors meant for users print as one line, no traceback (unless --debug): see errors.py."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from typing import Any, Callable, Sequence

from . import __version__
from .commands.training import TRAIN_FACES, TRAIN_TEST_SUBJECTS
from .config.loader import RUN_FLAG_SETTINGS
from .config.settings import DEFAULT_MODEL
from .errors import user_message
from .logsetup import configure

# Parsed arguments that choose the command or shape the process, not the command's work.
NOT_ARGUMENTS = frozenset({"command", "func", "debug", "keys_command", "model_command"})


def call_arguments(fn: Callable[..., int], args: argparse.Namespace,
                   made: dict[str, Callable[[argparse.Namespace], Any]]) -> tuple[dict[str, Any], set[str]]:
    """The keywords for ``fn``: each parameter from the parsed argument of its name, or from ``made``; and the
    parsed arguments nothing took (a test keeps that empty for every command)."""
    params = inspect.signature(fn).parameters
    kwargs = {name: make(args) for name, make in made.items()}
    kwargs |= {name: getattr(args, name) for name in params if name not in kwargs and hasattr(args, name)}
    taken = set(kwargs) | NOT_ARGUMENTS | (SETTINGS_FLAGS if made else set())
    return kwargs, set(vars(args)) - taken


class _Call:
    """A subcommand's action: ``painedge.<module>:<function>``, imported when the command runs (so `painedge
    --help` loads neither OpenCV nor TensorFlow) and called with the parsed arguments."""

    def __init__(self, target: str, **made: Callable[[argparse.Namespace], Any]) -> None:
        self.target, self.made = target, made

    def function(self) -> Callable[..., int]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(f".{module}", __package__), name)

    def __call__(self, args: argparse.Namespace) -> int:
        fn = self.function()
        return fn(**call_arguments(fn, args, self.made)[0])


# What _settings reads: a command given ``settings`` (or a way to load them) takes these through it.
SETTINGS_FLAGS = frozenset({"config"} | {dest for dest, _, _ in RUN_FLAG_SETTINGS})


def _settings(args: argparse.Namespace) -> Any:
    """The settings: the file, the environment, then the run flags given (each named in errors)."""
    from . import config

    return config.load_with_flags(args.config, {dest: getattr(args, dest, None) for dest in SETTINGS_FLAGS - {"config"}})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="painedge", description="Real-time pain monitor for the bedside (NVIDIA Jetson: Orin Nano or Nano).")
    p.add_argument("--version", action="version", version=f"painedge {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("cues", help="print the face features of each frame of a video (what painedge sees)")
    c.add_argument("clip", help="a video file (or an image with --image)")
    c.add_argument("--json", dest="as_json", action="store_true", help="one JSON object per frame instead of a table")
    c.add_argument("--image", action="store_true", help="CLIP is a still image")
    c.add_argument("--population", action="store_true",
                   help="measure against the population's neutral face, not the person's own (learnt from the clip)")
    c.add_argument("--max-frames", type=int, default=None, metavar="N")
    c.set_defaults(func=_Call("commands.faces:print_cues"))

    r = sub.add_parser("run", help="run the daemon (camera -> face mesh -> gate -> model -> ZeroMQ + Prometheus)")
    _run_flags(r)
    _limit_flags(r)
    r.add_argument("--show", action="store_true", help="show the annotated frames in a window on this device's screen")
    r.set_defaults(func=_Call("commands.deploy:run_daemon", settings=_settings))

    pv = sub.add_parser("preview", help="run the daemon and serve its annotated frames as MJPEG on loopback "
                                        "(aim the camera over an SSH tunnel)")
    _run_flags(pv)
    pv.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT",
                    help="a loopback address only (default 127.0.0.1:8090): ssh -L 8090:127.0.0.1:8090 DEVICE")
    _limit_flags(pv)
    pv.set_defaults(func=_Call("commands.deploy:run_daemon", settings=_settings))

    d = sub.add_parser("demo", help="run the daemon on the built-in demo source and show its live readings")
    d.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    d.add_argument("--interval", type=float, default=0.5, metavar="S", help="print a reading at most every S seconds")
    d.add_argument("--metrics", default="127.0.0.1:9108", metavar="HOST:PORT")
    d.set_defaults(func=_Call("demo:run_demo"))

    ls = sub.add_parser("listen", help="the station console: live table per bed, alert log, gap recovery")
    _device_flags(ls, stale_after_s=3.0, when_none="tcp://127.0.0.1:5556")
    ls.add_argument("--key", default=None, metavar="FILE", help="this station's CURVE .key_secret")
    ls.add_argument("--server-key", default=None, metavar="FILE", help="the devices' CURVE public .key")
    ls.add_argument("--lines", action="store_true", help="print lines even on a terminal (no live table)")
    ls.add_argument("--kinds", default=None, help="comma-separated: reading,alert,heartbeat,status")
    ls.add_argument("--json", dest="as_json", action="store_true", help="one JSON object per message")
    ls.add_argument("--interval", type=float, default=0.0, metavar="S",
                    help="print a device's readings at most every S seconds (0: all)")
    ls.add_argument("--count", type=int, default=None, metavar="N", help="stop after N messages")
    ls.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")
    ls.add_argument("--idle-exit", type=float, default=None, metavar="S", help="stop after S seconds without a message")
    ls.set_defaults(func=_Call("console:listen"))

    st = sub.add_parser("station", help="the nursing station: a web board for many devices, alarm acknowledgement")
    _device_flags(st, stale_after_s=None, when_none="the devices in --config")
    st.add_argument("--http", default=None, metavar="HOST:PORT", help="where the board listens (default 127.0.0.1:8080)")
    st.add_argument("--db", default=None, metavar="PATH", help="the station's SQLite history")
    st.add_argument("--config", default=None, metavar="PATH", help="station settings (TOML): users, beds, channels")
    st.add_argument("--ack-timeout", type=float, default=None, metavar="S", help="escalate unacknowledged alarms after S")
    st.set_defaults(func=_Call("commands.deploy:run_station"))

    b = sub.add_parser("bench", help="time the real pipeline stage by stage on this machine")
    _run_flags(b)
    b.add_argument("--frames", type=int, default=None, metavar="N", help="measure N frames after the warm-up")
    b.add_argument("--seconds", type=float, default=None, metavar="S", help="measure S seconds (default 20)")
    b.add_argument("--warmup", type=float, default=3.0, metavar="S")
    b.add_argument("--threads", type=int, default=1, help="TFLite threads")
    b.add_argument("--compare-model", default=None, metavar="PATH", help="also time this .tflite on the same inputs")
    b.add_argument("--project", dest="board", default=None, metavar="BOARD", choices=("nano", "orin-nano"),
                   help="instead of running: a projection (not a measurement) for nano or orin-nano from the models' op counts")
    b.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="write the report as JSON ('-': print it)")
    b.add_argument("--csv", default=None, metavar="FILE", help="write the latency table as CSV")
    b.add_argument("--plot", default=None, metavar="FILE.png", help="latency percentiles per stage and their distributions (CDF), log time axis")
    b.set_defaults(func=_Call("bench:command", settings=_settings))

    k = sub.add_parser("keys", help="CURVE keys")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kg = ksub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (mode 0600)")
    kg.add_argument("name", help="e.g. bed-12 or station-3")
    kg.add_argument("--dir", default=".", help="folder to write the files in")
    kg.add_argument("--force", action="store_true", help="replace an existing pair (cuts off every peer that knew it)")
    kg.set_defaults(func=_Call("commands.deploy:generate_key_pair"))

    cf = sub.add_parser("config", help="check or show the effective configuration, or print the example file")
    cf.add_argument("config_command", choices=["check", "show", "example"],
                    help="check: what `run` checks before starting; show: the effective settings; example: every "
                         "key with its default and description (deploy/painedge.example.toml)")
    _run_flags(cf)
    cf.set_defaults(func=_Call("commands.deploy:config_command", load_settings=lambda a: lambda: _settings(a)))

    sc = sub.add_parser("schema", help="print (or write) the JSON Schema of the wire messages")
    sc.add_argument("--out", default=None)
    sc.set_defaults(func=_Call("commands.deploy:write_schema"))

    s = sub.add_parser("synth", help="write the demo's synthetic expression clip to a video file")
    s.add_argument("out", help="output .mp4 path")
    s.add_argument("--face", default="astronaut", help="a face photo path, or 'astronaut' (shipped)")
    s.add_argument("--fps", type=float, default=15.0)
    s.add_argument("--seconds", type=float, default=None)
    s.set_defaults(func=_Call("commands.faces:write_synth_clip"))
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
    t.add_argument("--noise", type=float, default=0.0, help="training-only Gaussian noise (int8 robustness)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--boost-rounds", type=int, default=1, choices=range(1, 11), metavar="K", help="SAMME boosting: K heads (1: off)")
    t.add_argument("--landmarks", choices=["litert", "mediapipe"], default="litert", help="landmark backend for the windows")
    t.add_argument("--episodes", metavar="KIND=W,...", help="synthetic episode mix, e.g. pain=0.45,smile=0.2,calm=0.35 (default: every kind)")
    t.add_argument("--out", default="runs/edge")
    t.set_defaults(func=_Call("commands.training:train_run"))

    e = sub.add_parser("export", help="convert a training run to an int8 TFLite model with metadata")
    e.add_argument("run", help="a folder written by `painedge train`")
    e.add_argument("--out", default="painedge/models/painedge-edge-int8.tflite",
                   help="the .tflite to write (and .json, .keras); from a checkout the default replaces the shipped one")
    e.add_argument("--name", default="painedge-edge")
    e.add_argument("--version", default="1")
    e.add_argument("--activations", choices=["dynamic", "int8", "int16"], default="dynamic",
                   help="activations quantised per call (dynamic, ships), calibrated int8, or 16-bit (not for a Nano)")
    e.add_argument("--calibration", choices=["temperature", "vector", "none"], default="temperature",
                   help="which of the run's out-of-fold calibrations the model applies (see the model card)")
    e.set_defaults(func=_Call("commands.training:export_run"))

    m = sub.add_parser("model", help="inspect or verify a TFLite model")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mi = msub.add_parser("info", help="metadata, inputs, size and measured metrics")
    mi.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    mi.add_argument("--json", dest="as_json", action="store_true")
    mi.set_defaults(func=_Call("commands.models:model_info"))
    mv = msub.add_parser("verify", help="run the TFLite model on a clip and compare with the float model")
    mv.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    mv.add_argument("--clip", required=True)
    mv.add_argument("--float", dest="float_model", metavar="FLOAT", default=None, help="the float Keras model (default: beside the .tflite)")
    mv.add_argument("--max-frames", type=int, default=None)
    mv.add_argument("--min-agreement", type=float, default=0.95)
    mv.set_defaults(func=_Call("commands.models:verify_model"))

    x = sub.add_parser("explain", help="Grad-CAM heat map of the face crop (float model)")
    x.add_argument("source", help="a video (use --frame) or an image (--image)")
    x.add_argument("--image", action="store_true")
    x.add_argument("--frame", type=int, default=0)
    x.add_argument("--float", dest="float_model", metavar="FLOAT", default=str(DEFAULT_MODEL.with_name("painedge-edge.keras")))
    x.add_argument("--out", default="gradcam.png")
    x.set_defaults(func=_Call("commands.models:explain_frame"))

    ev = sub.add_parser("evaluate", help="the daemon's pipeline over labelled real clips and stills: levels, "
                                         "ROC AUC, alerts, start-frame dependence")
    ev.add_argument("labels", help="a labels JSON (per file, segments that expect pain / no_pain / none; paths relative to it)")
    ev.add_argument("--config", default=None, metavar="PATH", help="TOML settings (gate, smoothing, alerts, face)")
    ev.add_argument("--model", default=None, metavar="PATH", help="a .tflite model (its .json beside it)")
    ev.add_argument("--still-frames", type=int, default=60, metavar="N", help="a still is read as N copies of itself")
    ev.add_argument("--still-fps", type=float, default=15.0, metavar="FPS")
    ev.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="write the report as JSON ('-': print it)")
    ev.add_argument("--plot", default=None, metavar="FILE.png", help="a timeline per file")
    ev.set_defaults(func=_Call("commands.models:evaluate_footage", settings=_settings))
    return p


def _device_flags(p: argparse.ArgumentParser, stale_after_s: float | None, when_none: str) -> None:
    """What a station subscribes to (listen and station alike): the devices, and when a silent one is stale."""
    p.add_argument("--connect", action="append", default=[], metavar="PUB[,REPLAY]",
                   help="a device's PUB endpoint, optionally with its replay endpoint (default: PUB port + 1); "
                        f"repeat for several devices; none given: {when_none}")
    p.add_argument("--stale-after", type=float, default=stale_after_s, metavar="S", help="mark a bed stale after S s of silence")


def _limit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--exit-at-end", action="store_true", help="stop when a video file ends")


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("DEBUG" if args.debug else "INFO")
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        message = user_message(e)
        if message is None or args.debug:
            raise
        print(f"painedge: error: {message}", file=sys.stderr)
        return 2
