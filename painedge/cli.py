"""The `painedge` command.

Each subcommand is a small function taking parsed arguments and returning an
exit code. Errors meant for users are ``UserError``: one line, no traceback
(unless --debug).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Sequence

from . import __version__


class UserError(Exception):
    """An error the user can fix; printed as one line."""


# Exceptions that carry a message meant for users, from the modules below.
def _user_errors() -> tuple[type[BaseException], ...]:
    from .face import FrameError, VideoError
    from .model import ModelError
    from .train.datasets import DatasetError

    return (UserError, FrameError, VideoError, ModelError, DatasetError, FileNotFoundError, PermissionError)


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


# ---------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    """Play the built-in demo (a synthetic face: calm, smile, grimace) through the face features."""
    import time

    from . import face as F
    from . import synth as S

    photo = S.Photo.from_image(S.load_face("astronaut"), "astronaut")
    script = S.demo_script()
    mesh, baseline = F.FaceMesh(), F.Baseline()
    print(f"{'t_s':>5} {'true PSPI':>9} {'seen PSPI':>9}  cues")
    every = max(1, int(args.fps / 2))
    t0 = time.monotonic()
    for i, (t, frame, pspi) in enumerate(S.play(photo, script, args.fps, script.duration_s)):
        feats = F.extract(frame, mesh, baseline)
        if i % every == 0:
            seen = "-" if feats is None else f"{feats.cues.pspi:.1f}"
            print(f"{t:5.1f} {pspi:9.1f} {seen:>9}  {'no face' if feats is None else feats.cues.describe()}", flush=True)
        lag = t - (time.monotonic() - t0)
        if lag > 0:
            time.sleep(lag)
    mesh.close()
    return 0


# ---------------------------------------------------------------- model: train, export, info, verify, explain


def _need_tensorflow(what: str) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"{what} needs TensorFlow: pip install 'painedge[train]'")


def cmd_train(args: argparse.Namespace) -> int:
    """Train the fused model on synthetic expressions of the given faces."""
    _need_tensorflow("painedge train")
    from pathlib import Path

    from .train.fit import TrainConfig, train

    cfg = TrainConfig(variant=args.variant, epochs=args.epochs, cv_epochs=args.cv_epochs, folds=args.folds,
                      seed=args.seed, sequences_per_identity=args.sequences, sequence_s=args.sequence_s,
                      faces=args.faces, same_person=[g.split(",") for g in args.same_person],
                      test_subjects=args.test_subjects, limit_train=args.limit_train,
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
        crop_px=v.crop_px, crop_channels=v.crop_channels, quantization="int8",
        training={k: report["config"][k] for k in ("epochs", "batch_size", "learning_rate", "folds", "seed",
                                                   "sequences_per_identity", "sequence_s", "fps", "test_subjects", "mapping")}
        | {"train_windows": report["train_windows"], "test_windows": report["test_windows"]},
        metrics={"test": {k: report["test"][k] for k in ("accuracy", "macro_f1", "within_one_level", "severe_or_worse_recall")},
                 "cross_validation": {k: report.get("cross_validation", {}).get(k) for k in ("accuracy_mean", "accuracy_sd", "macro_f1_mean")}},
    )
    write_model(tfl, out, meta)
    agree = agreement(PainModel(out), model, te, v.crop_px, v.crop_channels)
    meta = ModelMeta.read(out.with_suffix(".json"))
    from dataclasses import replace

    meta = replace(meta, metrics=meta.metrics | {"int8_vs_float": agree, "float_ops": float_ops(out)})
    out.with_suffix(".json").write_text(meta.to_json())
    shutil.copy(run / "model.keras", out.with_name(out.stem.replace("-int8", "") + ".keras"))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) and its metadata; int8 vs float on "
          f"{agree['n']} held-out windows: top-1 agreement {agree['top1_agreement']:.4f}, "
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
    from .model import PainModel, crop_input, frame_vector

    m = PainModel(args.model)
    keras_path = Path(args.float) if args.float else m.path.with_name(m.path.stem.replace("-int8", "") + ".keras")
    if not keras_path.exists():
        raise UserError(f"{keras_path}: float model not found; pass --float PATH.keras")
    km = keras.models.load_model(keras_path)
    mesh, baseline = F.FaceMesh(), F.Baseline()
    buf: list[np.ndarray] = []
    rows = []
    for i, frame in F.read_video(args.clip, max_frames=args.max_frames):
        feats = F.extract(frame, mesh, baseline)
        if feats is None:
            buf.clear()
            continue
        buf = (buf + [frame_vector(feats)])[-m.window_frames:]
        if len(buf) < m.window_frames:
            continue
        window = np.stack(buf)
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
    from .model import frame_vector
    from .train.explain import grad_cam, overlay

    km = keras.models.load_model(args.float)
    window = km.get_layer("landmarks").output.shape[1]
    mesh, baseline = F.FaceMesh(), F.Baseline()
    frames = [(0, F.read_image(args.source))] if args.image else F.read_video(args.source, max_frames=args.frame + 1)
    buf: list[np.ndarray] = []
    feats = None
    for _i, frame in frames:
        feats = F.extract(frame, mesh, baseline)
        if feats is not None:
            buf = (buf + [frame_vector(feats)])[-window:]
    if feats is None:
        raise UserError(f"{args.source}: no face in the chosen frame")
    buf = [buf[0]] * (window - len(buf)) + buf  # a still image: its one frame, repeated
    cam, level, probs = grad_cam(km, np.stack(buf), feats.crop)
    cv2.imwrite(args.out, overlay(feats.crop, cam))
    print(f"{args.out}: Grad-CAM for level {level} {LABELS[level]} (p={probs[level]:.2f}); cues: {feats.cues.describe()}")
    return 0


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="painedge", description="Real-time pain monitor for the bedside (Jetson Nano).")
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

    d = sub.add_parser("demo", help="play the built-in synthetic face through the face features")
    d.add_argument("--fps", type=float, default=15.0)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("synth", help="write the demo's synthetic expression clip to a video file")
    s.add_argument("out", help="output .mp4 path")
    s.add_argument("--face", default="astronaut", help="a face photo path, or 'astronaut' (shipped)")
    s.add_argument("--fps", type=float, default=15.0)
    s.add_argument("--seconds", type=float, default=None)
    s.set_defaults(func=cmd_synth)
    t = sub.add_parser("train", help="train the fused model on synthetic expressions (needs painedge[train])")
    t.add_argument("--faces", nargs="+", default=["astronaut"],
                   help="face photos or videos ('astronaut' is shipped); a photo with several faces gives one identity per face")
    t.add_argument("--same-person", action="append", default=[], metavar="A,B",
                   help="names of photos of one person, kept on the same side of every split")
    t.add_argument("--test-subjects", nargs="+", default=["astronaut"], help="identities held out for the final test")
    t.add_argument("--variant", choices=["edge", "paper"], default="edge")
    t.add_argument("--window", type=int, default=8, help="landmark frames per window")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--cv-epochs", type=int, default=10)
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds by subject (1: none)")
    t.add_argument("--sequences", type=int, default=8, help="synthetic sequences per identity")
    t.add_argument("--sequence-s", type=float, default=40.0)
    t.add_argument("--limit-train", type=int, default=None, metavar="N")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/edge")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="convert a training run to a full-int8 TFLite model with metadata")
    e.add_argument("run", help="a folder written by `painedge train`")
    e.add_argument("--out", default="models/painedge-edge-int8.tflite")
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
    return p


def _default_model():  # noqa: ANN202
    from .model import DEFAULT_MODEL

    return DEFAULT_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
