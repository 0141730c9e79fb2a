"""The face side, no model: `painedge cues` (what painedge sees in each frame) and `painedge synth` (a clip)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from ..errors import UserError
from ..messages import CUE_FIELDS, CUES, PSPI

_CUE_COLUMNS = CUE_FIELDS
_CUE_HEADERS = tuple(c.header for c in (*CUES, PSPI))


def print_cues(clip: str, *, image: bool = False, population: bool = False, max_frames: int | None = None,
               as_json: bool = False, out: TextIO | None = None) -> int:
    """The face features of every frame of a video (or of one image): a table, or a JSON object per frame."""
    from .. import face as F
    from ..landmarks import open_mesh

    out = out or sys.stdout
    mesh = open_mesh(static=image, max_faces=2)  # the default backend (the landmarks the shipped model expects)
    baseline = None if population else F.Baseline()
    if not as_json:
        out.write(f"{'frame':>5} {'face':>4} " + " ".join(f"{h:>11}" for h in _CUE_HEADERS) + "  explanation\n")
    frames = F.read_video(clip, max_frames=max_frames) if not image else [(0, F.read_image(clip))]
    n = n_face = 0
    for i, feats in F.stream(frames, mesh, baseline):
        n += 1
        if feats is None:
            if as_json:
                out.write(json.dumps({"frame": i, "face": False}) + "\n")
            else:
                out.write(f"{i:>5} {'no':>4} " + " ".join(f"{'-':>11}" for _ in _CUE_HEADERS) + "  no face\n")
            continue
        n_face += 1
        c = feats.cues.as_dict()
        if as_json:
            rec = {"frame": i, "face": True, "faces_in_frame": feats.face.n_faces, **c,
                   "explanation": feats.cues.describe()}
            out.write(json.dumps(rec) + "\n")
        else:
            out.write(f"{i:>5} {'yes':>4} " + " ".join(f"{c[k]:>11.2f}" for k in _CUE_COLUMNS)
                      + f"  {feats.cues.describe()}\n")
    mesh.close()
    if not as_json:
        out.write(f"{n} frames, face in {n_face}\n")
    return 0


def write_synth_clip(out: str, face: str, fps: float, seconds: float | None) -> int:
    """The demo's synthetic expression script on a face photo, written to an .mp4."""
    import cv2

    from .. import synth as S

    photo = S.Photo.from_image(S.load_face(face), face)
    script = S.demo_script()
    duration = seconds or script.duration_s
    h, w = photo.image.shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise UserError(f"{out}: cannot write a video there (check the folder exists and ends in .mp4)")
    n = 0
    for _t, frame, _pspi in S.play(photo, script, fps, duration):
        writer.write(frame)
        n += 1
    writer.release()
    print(f"wrote {n} frames ({duration:.1f} s at {fps} fps) to {out}")
    return 0
