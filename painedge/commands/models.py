"""Looking at a model: `painedge model info` (its metadata), `model verify` (int8 against the float model on a
clip), `explain` (a Grad-CAM heat map of what the float model looks at in a face crop) and `evaluate` (the
whole pipeline over labelled real footage)."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import Settings
from ..errors import UserError, need, writing
from .training import need_tensorflow


def model_info(model: str, as_json: bool = False) -> int:
    """Show a model's metadata, inputs and size."""
    from dataclasses import asdict

    from ..model import PainModel

    m = PainModel(model)
    size = m.path.stat().st_size
    info = {"path": str(m.path), "size_bytes": size, "interpreter": m.backend} | asdict(m.meta)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    meta = m.meta
    print(f"{meta.name} {meta.version} ({meta.variant}, {meta.quantization}) {m.path} "
          f"{size / 1024:.0f} KiB, interpreter {m.backend}")
    print(f"  features {meta.feature_version}: window {meta.window_frames} frames x {meta.frame_dim} values "
          f"({len(meta.landmark_ids)} landmarks x 2 + {len(meta.cue_names)} cues), crop {meta.crop_px}x{meta.crop_px}x{meta.crop_channels}")
    print(f"  labels: {', '.join(f'{i} {n}' for i, n in enumerate(meta.labels))}")
    model_cal = (f"vector scaling {list(meta.calibration_scale)} / {list(meta.calibration_bias)}" if meta.calibration_scale
                 else f"temperature {meta.temperature}" if meta.temperature != 1.0 else "none")
    published = (f"temperature {meta.fusion_temperature} at cue weight {meta.fusion_cue_weight}"
                 if meta.fusion_cue_weight is not None else "none")
    print(f"  applied calibration: the model's {model_cal}; the published level's {published}")
    for k, v in meta.metrics.items():
        print(f"  {k}: {json.dumps(v)}")
    return 0


def verify_model(model: str, clip: str, float_model: str | None = None, max_frames: int | None = None,
                 min_agreement: float = 0.95) -> int:
    """Run the TFLite model over a clip beside the float model and compare; 1 below ``min_agreement``."""
    need_tensorflow("painedge model verify")
    import keras
    import numpy as np

    from .. import face as F
    from ..model import LandmarkWindow, PainModel, frame_vector, model_input

    m = PainModel(model)
    keras_path = Path(float_model) if float_model else m.path.with_name(m.path.stem.replace("-int8", "") + ".keras")
    if not keras_path.exists():
        raise UserError(f"{keras_path}: float model not found; pass --float PATH.keras")
    km = keras.models.load_model(keras_path)
    win = LandmarkWindow(m.window_frames, m.meta.window_period_s)
    fps = F.video_fps(clip)
    rows = []
    for i, feats in F.stream(F.read_video(clip, max_frames=max_frames), baseline=F.Baseline()):
        if feats is None:
            win.clear()
            continue
        win.push(i / fps, frame_vector(feats))
        window = win.sample(i / fps)
        p8 = m.predict(window, feats.crop, calibrated=False)  # the float model is not calibrated either
        x = model_input(window[None], feats.crop[None], m.meta.crop_px, m.meta.crop_channels)
        pf = np.asarray(km(x, training=False))[0]
        rows.append((i, int(p8.argmax()), int(pf.argmax()), float(np.abs(p8 - pf).max())))
    if not rows:
        raise UserError(f"{clip}: no frame with a face for {m.window_frames} frames in a row; nothing to compare")
    agree = float(np.mean([r[1] == r[2] for r in rows]))
    worst = max(r[3] for r in rows)
    q = m.meta.quantization
    print(f"{clip}: {len(rows)} windows; {q} vs float top-1 agreement {agree:.4f}, largest probability difference {worst:.3f}")
    print(f"  {q} levels: {np.bincount([r[1] for r in rows], minlength=5).tolist()}, float levels: {np.bincount([r[2] for r in rows], minlength=5).tolist()}")
    ok = agree >= min_agreement
    print("OK" if ok else f"FAILED: agreement below {min_agreement}")
    return 0 if ok else 1


def explain_frame(source: str, float_model: str, out: str, frame: int = 0, image: bool = False) -> int:
    """Grad-CAM heat map over the face crop of a frame (of a video, or an image), from the float model."""
    need_tensorflow("painedge explain")
    import cv2
    import keras

    from .. import face as F
    from ..landmarks import open_mesh
    from ..levels import LABELS
    from ..model import LandmarkWindow, frame_vector
    from ..train.explain import figure, grad_cam

    km = keras.models.load_model(float_model)
    win = LandmarkWindow(km.get_layer("landmarks").output.shape[1])
    fps = 1.0 if image else F.video_fps(source)
    frames = [(0, F.read_image(source))] if image else F.read_video(source, max_frames=frame + 1)
    feats, t = None, 0.0
    for i, feats in F.stream(frames, open_mesh(static=image, max_faces=2), F.Baseline()):
        t = i / fps
        if feats is not None:
            win.push(t, frame_vector(feats))
    if feats is None:
        raise UserError(f"{source}: no face in the chosen frame")
    cam, level, probs = grad_cam(km, win.sample(t), feats.crop)  # a still image: its frame, repeated
    title = f"Grad-CAM: where the float model looks for level {level} {LABELS[level]} (p={probs[level]:.2f})"
    if not cv2.imwrite(out, figure(feats.crop, cam, title, f"cues: {feats.cues.describe()}")):
        raise UserError(f"{out}: cannot write the image (use a .png or .jpg name in a writable folder)")
    print(f"{out}: Grad-CAM for level {level} {LABELS[level]} (p={probs[level]:.2f}); cues: {feats.cues.describe()}")
    return 0


def evaluate_footage(labels: str, settings: Settings, still_frames: int = 60, still_fps: float = 15.0,
                     json_out: str | None = None, plot: str | None = None) -> int:
    """The daemon's pipeline over labelled real clips and stills (painedge/evaluate.py): a table, or the JSON
    report for ``json_out`` '-' (any other ``json_out`` is written); ``plot``: a timeline per file."""
    import logging

    from .. import evaluate

    if plot:
        need("matplotlib", "plot", "painedge evaluate --plot")  # before the run, not after it
    logging.getLogger("painedge").setLevel(logging.WARNING)
    report = evaluate.evaluate(labels, settings, still_frames, still_fps)
    if json_out and json_out != "-":
        with writing(json_out, "the report"):
            Path(json_out).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    if plot:
        with writing(plot, "the timeline"):
            evaluate.plot(report, plot)
    print(json.dumps(report.to_dict(), indent=1) if json_out == "-" else evaluate.table(report))
    return 0
