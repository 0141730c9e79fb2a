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

    return (UserError, FrameError, VideoError, FileNotFoundError, PermissionError)


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
    return p


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
