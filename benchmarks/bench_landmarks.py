"""The landmark stage, MediaPipe's graph against painedge's own LiteRT backend, on the same frames in one run.

    python benchmarks/bench_landmarks.py [--json out.json] [--rounds 7] [--no-daemon]

Backends, each fed every frame in turn (interleaved, so machine noise hits all alike):
- ``mp``: the MediaPipe graph as painedge used it before (max_num_faces=2, refined, 478 points);
- ``mp1``: the same with max_num_faces=1 (the detector stops running while a face is tracked);
- ``lite``: painedge.landmarks (BlazeFace on demand + the same refined model, as builtin operators, on a tracked ROI).

Reported: landmark-stage p50/p95 per backend and lite/mp (over all clip frames, the frames with
a face and those without, where both run their face detector); the same on the clips' frames with
a face with each backend over a whole clip in turn, as a daemon runs one (interleaving frame by
frame makes each evict the other's models from the cache); agreement in IOD units (of
the reference's eye corners), lite against mp, over the landmarks painedge's features use
and over all 478;
face found/lost agreement; the features (measures and cues) lite vs mp; then the
daemon's processed fps on single_face.mp4 with --fast --no-loop --exit-at-end, old
backend vs new, alternating, ``--rounds`` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from painedge import face as F  # noqa: E402
from painedge.landmarks import lite_face_mesh  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = ("single_face.mp4", "face_noface.mov", "no_face.mp4")
STILLS = ("single_face.jpg", "laughing.jpg", "surprise.jpg", "unbc_neutral.png", "unbc_pain.png", "multi_face.jpg")
BROWS_MID = (53, 52, 65, 55, 105, 66, 107, 283, 282, 295, 285, 334, 296, 336)
# Every landmark a feature reads: pose (eye corners), the model's subset, the measures, the face oval (identity).
FEATURE_LANDMARKS: tuple[int, ...] = tuple(sorted(set(F.MODEL_LANDMARKS) | set(BROWS_MID) | set(F.FACE_OVAL)
                                                  | {F.R_EYE_OUTER, F.R_EYE_INNER, F.L_EYE_OUTER, F.L_EYE_INNER}))


def mp_mesh(max_faces: int, refine: bool, static: bool = False) -> Any:
    """MediaPipe's graph in a painedge FaceMesh; refine=False returns 468 points, so the raw graph is used."""
    return F.import_solution("face_mesh").FaceMesh(static_image_mode=static, max_num_faces=max_faces,
                                                   refine_landmarks=refine, min_detection_confidence=0.7,
                                                   min_tracking_confidence=0.7)


def run_mp(graph: Any) -> Callable[[np.ndarray], np.ndarray | None]:
    """The landmark stage as painedge's FaceMesh.largest does it: BGR->RGB, graph, points, the largest face."""
    import cv2

    def largest(image: np.ndarray) -> np.ndarray | None:
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        found = graph.process(rgb).multi_face_landmarks or []
        faces = [F.landmarks_px(lms, w, h) for lms in found]
        return max(faces, key=lambda p: float(np.prod(p.max(0) - p.min(0))), default=None)

    return largest


def run_lite(mesh: Any) -> Callable[[np.ndarray], np.ndarray | None]:
    def largest(image: np.ndarray) -> np.ndarray | None:
        face = mesh.largest(image)
        return None if face is None else face.points_px

    return largest


def frames_of(name: str) -> list[np.ndarray]:
    path = str(DATA / name)
    if name.endswith((".jpg", ".png")):
        return [F.read_image(path)] * 5  # a still as a 5-frame clip: detection, then tracking on the same image
    return [f for _, f in F.read_video(path)]


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"n": len(xs), "p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def iod_dist(a: np.ndarray, ref: np.ndarray, ids: tuple[int, ...] = FEATURE_LANDMARKS) -> np.ndarray:
    return np.linalg.norm(a[list(ids)] - ref[list(ids)], axis=1) / F.pose_of(ref).iod_px


def measures_vec(points: np.ndarray) -> np.ndarray:
    m = F.measure(F.normalise(points))
    return np.array([getattr(m, k) for k in F.Measures.__dataclass_fields__])


def compare_stage(names: tuple[str, ...], warmup: int = 3, threads: int = 1) -> dict[str, Any]:
    times: dict[str, list[float]] = {k: [] for k in ("mp", "mp1", "lite")}
    face_times: dict[str, list[float]] = {k: [] for k in times}  # frames where MediaPipe's graph found a face
    no_face_times: dict[str, list[float]] = {k: [] for k in times}  # the others: both run their face detector
    dist_mp: list[np.ndarray] = []
    dist_all: list[np.ndarray] = []  # all 478 landmarks
    per_clip: dict[str, Any] = {}
    feat_diff: list[np.ndarray] = []
    cue_diff: list[np.ndarray] = []
    cue_diff_own: list[np.ndarray] = []  # each backend against its own patient baseline, as the daemon measures
    model_lm_diff: list[np.ndarray] = []  # the model's 72-landmark input, normalised (IOD)
    iris_diff: list[np.ndarray] = []  # 468-477, the irises (IOD)
    crop_diff: list[float] = []  # the 64x64 grey crop, mean absolute grey-level difference
    gate_motion: dict[str, list[float]] = {"lite": [], "mp": []}  # frame-to-frame mean landmark move (IOD)
    for name in names:
        frames = frames_of(name)
        still = name.endswith((".jpg", ".png"))
        graphs = {"mp": mp_mesh(2, True), "mp1": mp_mesh(1, True)}
        runs = {k: run_mp(g) for k, g in graphs.items()}
        lite = lite_face_mesh(num_threads=threads)
        base = {"lite": F.Baseline(), "mp": F.Baseline()}
        prev: dict[str, np.ndarray] | None = None
        runs["lite"] = run_lite(lite)
        found = {k: 0 for k in runs}
        disagree = 0
        detector_runs = 0
        clip_d: list[np.ndarray] = []
        for i, image in enumerate(frames):
            out: dict[str, np.ndarray | None] = {}
            order = list(runs) if i % 2 == 0 else list(reversed(runs))  # alternate who goes first
            dts = {}
            for k in order:
                t0 = time.perf_counter()
                out[k] = runs[k](image)
                dts[k] = time.perf_counter() - t0
            if i >= warmup and not still:
                for k, dt in dts.items():
                    times[k].append(dt)
                    (face_times if out["mp"] is not None else no_face_times)[k].append(dt)
            detector_runs += int(lite.last.detected)
            for k in runs:
                found[k] += out[k] is not None
            disagree += (out["lite"] is None) != (out["mp"] is None)
            if out["lite"] is not None and out["mp"] is not None:
                d = iod_dist(out["lite"], out["mp"])
                dist_mp.append(d)
                clip_d.append(d)
                feat_diff.append(measures_vec(out["lite"]) - measures_vec(out["mp"]))
                c_l, c_m = F.cues_from(F.normalise(out["lite"])), F.cues_from(F.normalise(out["mp"]))
                cue_diff.append(c_l.vector() - c_m.vector())
                own = {k: F.features_of(image, F.Face(out[k], image.shape[:2]), base[k]).cues.vector()
                       for k in ("lite", "mp")}  # as the daemon computes them
                cue_diff_own.append(own["lite"] - own["mp"])
                n_l, n_m = F.normalise(out["lite"]), F.normalise(out["mp"])
                ids = list(F.MODEL_LANDMARKS)
                model_lm_diff.append(np.linalg.norm(n_l[ids] - n_m[ids], axis=1))
                iris_diff.append(np.linalg.norm(n_l[468:] - n_m[468:], axis=1))
                crop_diff.append(float(np.abs(F.align_crop(image, out["lite"]).astype(int)
                                              - F.align_crop(image, out["mp"]).astype(int)).mean()))
                if not still and prev is not None:
                    for k, n in (("lite", n_l), ("mp", n_m)):
                        gate_motion[k].append(float(np.linalg.norm(n - prev[k], axis=1).mean()))
                prev = {"lite": n_l, "mp": n_m}
            else:
                prev = None
            if out["lite"] is not None and out["mp"] is not None:
                dist_all.append(iod_dist(out["lite"], out["mp"], tuple(range(F.N_LANDMARKS))))
        for g in graphs.values():
            g.close()
        cd = np.concatenate(clip_d) if clip_d else np.zeros(0)
        per_clip[name] = {"frames": len(frames), "found": found, "found_disagree_lite_vs_mp": disagree,
                          "lite_detector_runs": detector_runs,
                          "iod_lite_vs_mp": {"mean": round(float(cd.mean()), 5) if cd.size else None,
                                             "p95": round(float(np.percentile(cd, 95)), 5) if cd.size else None}}
    a_mp, a_all = np.concatenate(dist_mp), np.concatenate(dist_all)
    fd, cdf, cdo = np.abs(np.asarray(feat_diff)), np.abs(np.asarray(cue_diff)), np.abs(np.asarray(cue_diff_own))
    stage = {k: pct(v) for k, v in times.items()}
    stage_face = {k: pct(v) for k, v in face_times.items()}
    stage_no_face = {k: pct(v) for k, v in no_face_times.items()}
    return {
        "landmarks": len(FEATURE_LANDMARKS),
        "stage": stage,
        "ratio_p50": {k: round(stage[k]["p50_ms"] / stage["mp"]["p50_ms"], 3) for k in ("mp1", "lite")},
        "ratio_p95": {k: round(stage[k]["p95_ms"] / stage["mp"]["p95_ms"], 3) for k in ("mp1", "lite")},
        "stage_face_frames": stage_face,
        "ratio_p50_face_frames": {k: round(stage_face[k]["p50_ms"] / stage_face["mp"]["p50_ms"], 3)
                                  for k in ("mp1", "lite")},
        "ratio_p95_face_frames": {k: round(stage_face[k]["p95_ms"] / stage_face["mp"]["p95_ms"], 3)
                                  for k in ("mp1", "lite")},
        "stage_no_face_frames": stage_no_face,
        "ratio_p50_no_face_frames": {k: round(stage_no_face[k]["p50_ms"] / stage_no_face["mp"]["p50_ms"], 3)
                                     for k in ("mp1", "lite")},
        "iod_lite_vs_mp": {"mean": round(float(a_mp.mean()), 5), "p95": round(float(np.percentile(a_mp, 95)), 5),
                           "max": round(float(a_mp.max()), 5)},
        "iod_lite_vs_mp_all_478": {"mean": round(float(a_all.mean()), 6), "p95": round(float(np.percentile(a_all, 95)), 6),
                                   "max": round(float(a_all.max()), 6)},
        "measures_abs_diff_iod": {k: {"mean": round(float(fd[:, i].mean()), 4), "p95": round(float(np.percentile(fd[:, i], 95)), 4)}
                                  for i, k in enumerate(F.Measures.__dataclass_fields__)},
        "cues_abs_diff_population_neutral": {k: {"mean": round(float(cdf[:, i].mean()), 4),
                                                 "p95": round(float(np.percentile(cdf[:, i], 95)), 4)}
                                             for i, k in enumerate((*F.Cues.NAMES, "pspi/16"))},
        "cues_abs_diff_own_baseline": {k: {"mean": round(float(cdo[:, i].mean()), 4),
                                           "p95": round(float(np.percentile(cdo[:, i], 95)), 4)}
                                       for i, k in enumerate((*F.Cues.NAMES, "pspi/16"))},
        "model_landmarks_iod": {"mean": round(float(np.concatenate(model_lm_diff).mean()), 4),
                                "p95": round(float(np.percentile(np.concatenate(model_lm_diff), 95)), 4)},
        "iris_iod": {"mean": round(float(np.concatenate(iris_diff).mean()), 4),
                     "p95": round(float(np.percentile(np.concatenate(iris_diff), 95)), 4)},
        "crop_abs_grey_levels": {"mean": round(float(np.mean(crop_diff)), 2),
                                 "p95": round(float(np.percentile(crop_diff, 95)), 2)},
        "gate_motion_iod": {k: {"mean": round(float(np.mean(v)), 4), "p95": round(float(np.percentile(v, 95)), 4)}
                            for k, v in gate_motion.items()},
        "per_clip": per_clip,
    }


def compare_stage_warm(names: tuple[str, ...], rounds: int = 3, warmup: int = 3, threads: int = 1) -> dict[str, Any]:
    """The stage as a daemon runs it: one backend over a whole clip, frame after frame (its models stay in the
    cache), then the other on the same frames; the order swaps each round. Frames with a face: where
    MediaPipe's graph found one in that round."""
    times: dict[str, list[float]] = {"mp": [], "lite": []}
    for r in range(rounds):
        for name in names:
            frames = frames_of(name)
            graph = mp_mesh(2, True)
            runs = {"mp": run_mp(graph), "lite": run_lite(lite_face_mesh(num_threads=threads))}
            took: dict[str, list[float]] = {}
            found: list[bool] = []
            for k in (("mp", "lite") if r % 2 == 0 else ("lite", "mp")):
                took[k] = []
                for image in frames:
                    t0 = time.perf_counter()
                    out = runs[k](image)
                    took[k].append(time.perf_counter() - t0)
                    if k == "mp":
                        found.append(out is not None)
            graph.close()
            for k in times:
                times[k] += [dt for i, dt in enumerate(took[k]) if i >= warmup and found[i]]
    stage = {k: pct(v) for k, v in times.items()}
    return {"stage_face_frames_warm": stage, "rounds_warm": rounds,
            "ratio_p50_face_frames_warm": round(stage["lite"]["p50_ms"] / stage["mp"]["p50_ms"], 3),
            "ratio_p95_face_frames_warm": round(stage["lite"]["p95_ms"] / stage["mp"]["p95_ms"], 3)}


@dataclass
class _Frame:
    index: int
    image: np.ndarray
    capture_ts: float
    capture_mono: float


def compare_levels(names: tuple[str, ...]) -> dict[str, Any]:
    """The published (smoothed) level frame by frame with each backend and the shipped model, gate off."""
    from painedge.config import load
    from painedge.model import PainModel
    from painedge.pipeline import Pipeline

    out: dict[str, Any] = {}
    for name in names:
        path = str(DATA / name)
        still = name.endswith((".jpg", ".png"))
        frames = [F.read_image(path)] * 30 if still else [f for _, f in F.read_video(path)]
        fps = 10.0 if still else F.video_fps(path)
        levels = {}
        for backend in ("mediapipe", "litert"):
            s = load(None, environ={"PAINEDGE_FACE__BACKEND": backend, "PAINEDGE_GATE__ENABLED": "false"})
            pipe = Pipeline.from_settings(s, PainModel(s.model.path))
            levels[backend] = [None if (r := pipe.step(_Frame(i, im, i / fps, i / fps))).assessment is None
                               else r.assessment.smoothed_level for i, im in enumerate(frames)]
            pipe.close()
        both = [(a, b) for a, b in zip(levels["mediapipe"], levels["litert"]) if a is not None and b is not None]
        if both:
            out[name] = {"frames": len(both), "equal": round(float(np.mean([a == b for a, b in both])), 3),
                         "max_diff": int(max(abs(a - b) for a, b in both)),
                         "mediapipe": np.bincount([a for a, _ in both], minlength=5).tolist(),
                         "litert": np.bincount([b for _, b in both], minlength=5).tolist()}
    return out


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def daemon_fps(backend: str, clip: Path, threads: int = 1) -> dict[str, float]:
    """One daemon run over ``clip`` as fast as it goes: processed fps from its own log (first frame to source end)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PAINEDGE_FACE__BACKEND=backend, PAINEDGE_STATE__DIR=tmp, PAINEDGE_FACE__THREADS=str(threads))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "painedge", "run", "--source", str(clip), "--fast", "--no-loop",
                            "--exit-at-end", "--metrics", "off", "--pub", f"ipc://{tmp}/pub",
                            "--replay", f"ipc://{tmp}/replay", "--device-id", "bench"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"daemon ({backend}) exited {p.returncode}: {p.stderr[-2000:]}")

    def at(marker: str) -> float:
        for line in p.stderr.splitlines() + p.stdout.splitlines():
            m = _STAMP.match(line)
            if m and marker in line:
                return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        raise RuntimeError(f"daemon ({backend}): no '{marker}' line in its log")

    handled = int(re.search(r"stopped: (\d+) frames handled", p.stderr + p.stdout).group(1))  # type: ignore[union-attr]
    # With --fast every frame is handed over and none dropped, so the source ends when processing has taken its last frame.
    span = at("camera ended") - at("ready: first frame")
    return {"frames": handled, "fps": round((handled - 1) / span, 1), "wall_s": round(wall, 2)}


def compare_daemon(rounds: int, threads: int = 1) -> dict[str, Any]:
    clip = DATA / "single_face.mp4"
    runs: dict[str, list[dict[str, float]]] = {"mediapipe": [], "litert": []}
    for r in range(rounds):
        for b in (("mediapipe", "litert") if r % 2 == 0 else ("litert", "mediapipe")):
            runs[b].append(daemon_fps(b, clip, threads if b == "litert" else 1))
    med = {b: float(np.median([x["fps"] for x in v])) for b, v in runs.items()}
    # Each round's two runs are back to back, so their ratio sees the same load on a shared machine.
    paired = [n["fps"] / o["fps"] for n, o in zip(runs["litert"], runs["mediapipe"])]
    return {"runs": runs, "median_fps": med, "paired_ratios": [round(r, 2) for r in paired],
            "ratio": round(float(np.median(paired)), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, metavar="PATH")
    ap.add_argument("--rounds", type=int, default=7, help="daemon runs per backend (alternating, back to back)")
    ap.add_argument("--no-daemon", action="store_true", help="only the landmark stage")
    ap.add_argument("--threads", type=int, default=1, help="TFLite threads for the LiteRT backend (face.threads; "
                                                           "MediaPipe's graph runs its one)")
    args = ap.parse_args()
    report: dict[str, Any] = {"clips": CLIPS, "stills": STILLS, "cores": os.cpu_count()}
    report["lite_threads"] = args.threads
    report.update(compare_stage(CLIPS + STILLS, threads=args.threads))
    for key, what in (("", "all clip frames"), ("_face_frames", "clip frames with a face"),
                      ("_no_face_frames", "clip frames without (both run their detector)")):
        s = report["stage" + key]
        print(f"landmark stage, {what} ({s['mp']['n']}, after {3} warm-up frames per clip; interleaved), p50 / p95 ms:")
        for k, label in (("mp", "MediaPipe graph, as painedge ran it before (2 faces, refined)"),
                         ("mp1", "MediaPipe, max_num_faces=1"), ("lite", "painedge.landmarks (LiteRT)")):
            ratio = "" if k == "mp" else f"   x{report['ratio_p50' + key][k]:.2f}" + (
                f" / x{report['ratio_p95' + key][k]:.2f}" if "ratio_p95" + key in report else "") + " of MediaPipe's"
            print(f"  {label:<56} {s[k]['p50_ms']:7.2f} / {s[k]['p95_ms']:7.2f}{ratio}")
    report.update(compare_stage_warm(CLIPS, threads=args.threads))
    w = report["stage_face_frames_warm"]
    print(f"landmark stage, clip frames with a face, each backend over a whole clip in turn (as a daemon runs it; "
          f"{report['rounds_warm']} rounds, {w['mp']['n']} frames each), p50 / p95 ms:")
    print(f"  {'MediaPipe graph, as painedge ran it before (2 faces, refined)':<56} {w['mp']['p50_ms']:7.2f} / "
          f"{w['mp']['p95_ms']:7.2f}")
    print(f"  {'painedge.landmarks (LiteRT)':<56} {w['lite']['p50_ms']:7.2f} / {w['lite']['p95_ms']:7.2f}   "
          f"x{report['ratio_p50_face_frames_warm']:.2f} / x{report['ratio_p95_face_frames_warm']:.2f} of MediaPipe's")
    a, b = report["iod_lite_vs_mp"], report["iod_lite_vs_mp_all_478"]
    print(f"agreement with MediaPipe's refined graph, IOD units: over the {report['landmarks']} feature landmarks "
          f"mean {a['mean']:.5f} p95 {a['p95']:.5f} max {a['max']:.4f}; "
          f"over all 478 mean {b['mean']:.5f} p95 {b['p95']:.5f} max {b['max']:.4f}")
    for name, c in report["per_clip"].items():
        print(f"  {name:<18} frames {c['frames']:4d} found mp/mp1/lite "
              f"{c['found']['mp']}/{c['found']['mp1']}/{c['found']['lite']}, "
              f"found/lost disagreements lite vs mp {c['found_disagree_lite_vs_mp']}, detector ran {c['lite_detector_runs']}x, "
              f"IOD mean {c['iod_lite_vs_mp']['mean']} p95 {c['iod_lite_vs_mp']['p95']}")
    print("measures, |lite - mp| in IOD (mean / p95): " + ", ".join(
        f"{k} {v['mean']:.4f}/{v['p95']:.4f}" for k, v in report["measures_abs_diff_iod"].items()))
    print("cues against the population neutral, |lite - mp| (mean / p95): " + ", ".join(
        f"{k} {v['mean']:.3f}/{v['p95']:.3f}" for k, v in report["cues_abs_diff_population_neutral"].items()))
    print("cues against each backend's own patient baseline (as the daemon measures), |lite - mp| (mean / p95): "
          + ", ".join(f"{k} {v['mean']:.3f}/{v['p95']:.3f}" for k, v in report["cues_abs_diff_own_baseline"].items()))
    print(f"model input, the {len(F.MODEL_LANDMARKS)} normalised landmarks, |lite - mp| IOD: mean "
          f"{report['model_landmarks_iod']['mean']:.4f} p95 {report['model_landmarks_iod']['p95']:.4f}; irises "
          f"mean {report['iris_iod']['mean']:.4f} p95 {report['iris_iod']['p95']:.4f}; 64x64 crop mean |diff| "
          f"{report['crop_abs_grey_levels']['mean']:.2f} grey levels (p95 {report['crop_abs_grey_levels']['p95']:.2f}); "
          f"gate motion per frame (IOD, mean / p95) lite {report['gate_motion_iod']['lite']['mean']:.4f} / "
          f"{report['gate_motion_iod']['lite']['p95']:.4f}, mp {report['gate_motion_iod']['mp']['mean']:.4f} / "
          f"{report['gate_motion_iod']['mp']['p95']:.4f}")
    report["published_level"] = compare_levels(("single_face.mp4", "face_noface.mov", "unbc_neutral.png", "unbc_pain.png",
                                                 "laughing.jpg", "surprise.jpg", "single_face.jpg"))
    print("published level with the shipped model, gate off (stills as 30 frames), same on both backends: " + ", ".join(
        f"{k} {v['equal']:.0%} of {v['frames']} (max diff {v['max_diff']})" for k, v in report["published_level"].items()))
    if not args.no_daemon:
        d = compare_daemon(args.rounds, args.threads)
        report["daemon"] = d
        print(f"daemon on single_face.mp4 --fast --no-loop --exit-at-end, processed fps (median of {args.rounds}): "
              f"mediapipe {d['median_fps']['mediapipe']:.1f}, litert {d['median_fps']['litert']:.1f}; "
              f"litert/mediapipe per round {d['paired_ratios']}, median x{d['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
