"""`painedge bench --project`: a projection for a named board from the models' op counts, NOT a measurement.

What each model costs in multiply-accumulates (counted from the .tflite files), divided by what a
board's CPU cores can do, as a range; beside it, each model timed on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def model_macs(path: str | Path) -> dict[str, Any]:
    """Multiply-accumulates of one inference of a .tflite model, by op type, and whether it computes in int8.

    Counted from the model's own graph (delegates off, so every op is visible):
    CONV_2D out_h*out_w*out_c*k_h*k_w*in_c, DEPTHWISE_CONV_2D out_h*out_w*out_c*k_h*k_w,
    FULLY_CONNECTED rows*out*in, BATCH_MATMUL; element-wise ops are left out (a few percent).
    A model's description (.json, ``painedge.landmarks.attention``) counts the file it names.
    """
    from .model import interpreter_class

    if Path(path).suffix == ".json":  # a model's description (the landmark mesh): the file it names
        import json

        return model_macs(Path(path).parent / json.loads(Path(path).read_text())["model"])

    cls, _ = interpreter_class()
    kwargs: dict[str, Any] = {}
    try:
        from ai_edge_litert.interpreter import OpResolverType

        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    except ImportError:
        pass
    it = cls(model_path=str(path), **kwargs)  # not allocated: shapes are in the file, custom ops need no kernel
    shape = {t["index"]: [int(v) for v in t["shape"]] for t in it.get_tensor_details()}
    by_op: dict[str, int] = {}
    int8 = False
    for op in it._get_ops_details():  # the only way LiteRT lists ops
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if not outs or outs[0] < 0:
            continue
        out = shape[outs[0]]
        macs = 0
        if name == "CONV_2D":
            w = shape[ins[1]]  # (out_c, k_h, k_w, in_c)
            macs = int(np.prod(out)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":
            w = shape[ins[1]]  # (1, k_h, k_w, out_c)
            macs = int(np.prod(out)) * w[1] * w[2]
        elif name == "FULLY_CONNECTED":
            w = shape[ins[1]]  # (out, in)
            macs = int(np.prod(out)) * w[1]
        elif name == "BATCH_MATMUL":
            macs = int(np.prod(out)) * shape[ins[0]][-1]
        if macs:
            by_op[name] = by_op.get(name, 0) + macs
            # int8 input (full-integer) or int8 weights with a float input (dynamic range: the kernel
            # quantises the input at each call and multiplies in int8): int8 MACs either way.
            int8 = int8 or any(t in (np.int8, np.uint8) for t in op.get("operand_types", [])[:2])
    return {"macs": sum(by_op.values()), "by_op": by_op, "int8": int8}


@dataclass(frozen=True)
class Board:
    """What a projection assumes about a board's CPU (each figure says where it comes from)."""

    name: str
    cpu: str
    cores: int
    clock_ghz: float
    fp32_macs_per_cycle: int  # per core
    int8_macs_per_cycle: int  # per core
    source: str


BOARDS: dict[str, Board] = {
    # Jetson Nano module data sheet: 4x Cortex-A57 at 1.43 GHz (MAXN). Armv8.0: one 128-bit
    # FMLA per cycle (Cortex-A57 Software Optimization Guide: two 64-bit FP pipes) = 4 fp32 MACs;
    # no dot-product instruction, so int8 goes through widening SMLAL, 8 MACs per cycle at best.
    "nano": Board("Jetson Nano (JetPack 4.6)", "Cortex-A57", 4, 1.43, 4, 8,
                  "NVIDIA Jetson Nano data sheet; Arm Cortex-A57 Software Optimization Guide"),
    # Jetson Orin Nano 8GB data sheet: 6x Cortex-A78AE at 1.5 GHz (1.7 GHz in the 25 W "Super"
    # mode). Armv8.2 with dot product: two 128-bit NEON pipes, 2 FMLA (8 fp32 MACs) or 2 SDOT
    # (32 int8 MACs) per cycle (Cortex-A78 Software Optimization Guide).
    "orin-nano": Board("Jetson Orin Nano (JetPack 6)", "Cortex-A78AE", 6, 1.5, 8, 32,
                       "NVIDIA Jetson Orin Nano series data sheet; Arm Cortex-A78 Software Optimization Guide"),
}
# Fraction of peak a batch-1 TFLite/XNNPACK inference reaches on one core: an assumption, given
# as a range. Depthwise convolutions and small layers (these face models) stay well under peak.
EFFICIENCY_RANGE = (0.2, 0.5)


def project(board_name: str, models: Mapping[str, tuple[str | Path, float]], threads: int = 1) -> dict[str, Any]:
    """Per-model and per-frame time on ``board_name`` from op counts: a range, labelled a projection.

    ``models``: stage -> (model file, runs per frame: 1 every frame, 0 only on a lost face).
    """
    if board_name not in BOARDS:
        raise ValueError(f"unknown board {board_name!r}: choose one of {', '.join(BOARDS)}")
    b = BOARDS[board_name]
    rows = {}
    for stage, (path, runs) in models.items():
        m = model_macs(path)
        per_cycle = b.int8_macs_per_cycle if m["int8"] else b.fp32_macs_per_cycle
        peak = b.clock_ghz * 1e9 * per_cycle * threads
        slow, fast = (m["macs"] / (peak * e) * 1000 for e in EFFICIENCY_RANGE)
        here = time_here(path, threads)
        rows[stage] = {"model": Path(path).name, "macs_m": round(m["macs"] / 1e6, 1), "int8": m["int8"],
                       "ms": [round(fast, 2), round(slow, 2)], "runs_per_frame": runs,
                       "here_ms": None if here is None else round(here, 3),
                       "here_gmacs": None if not here else round(m["macs"] / here / 1e6, 1)}
    per_frame = [sum(r["ms"][i] * r["runs_per_frame"] for r in rows.values()) for i in (0, 1)]
    return {"board": b.name, "assumptions": {
        "cpu": f"{b.cores}x {b.cpu} at {b.clock_ghz} GHz", "threads_per_model": threads,
        "fp32_macs_per_cycle_per_core": b.fp32_macs_per_cycle, "int8_macs_per_cycle_per_core": b.int8_macs_per_cycle,
        "efficiency": list(EFFICIENCY_RANGE), "source": b.source},
        "models": rows, "frame_ms": [round(x, 2) for x in per_frame],
        "fps_ceiling": [round(1000 / per_frame[1], 1), round(1000 / per_frame[0], 1)]}


def time_here(path: str | Path, threads: int = 1, runs: int = 30) -> float | None:
    """Median ms of one inference on this machine (zero inputs), None for a model LiteRT cannot load alone."""
    from .model import ModelError, load_interpreter

    if Path(path).suffix == ".json":  # the landmark mesh as the backend runs it (its outputs read, as there)
        from .landmarks.attention import RefinedLandmarkModel

        mesh = RefinedLandmarkModel(path, threads)
        zeros = np.zeros(mesh.input_shape[1:], np.uint8)
        call = lambda: mesh(zeros)  # noqa: E731
    else:
        try:
            it, _ = load_interpreter(path, threads)
        except ModelError:
            return None  # e.g. MediaPipe's refined mesh file: its custom ops live in mediapipe
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        call = it.invoke
    times = []
    for _ in range(runs + 3):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[3:]) * 1000)


def projection_table(p: dict[str, Any]) -> str:
    a = p["assumptions"]
    lines = [f"PROJECTION for {p['board']}, from op counts, NOT a measurement",
             f"assumes {a['cpu']}, {a['threads_per_model']} thread per model, peak per core "
             f"{a['fp32_macs_per_cycle_per_core']} fp32 / {a['int8_macs_per_cycle_per_core']} int8 MACs per cycle, "
             f"{a['efficiency'][0]:.0%}-{a['efficiency'][1]:.0%} of peak reached ({a['source']})",
             f"{'stage':<24} {'model':<38} {'MMACs':>7} {'type':>5} {'ms (range)':>13} {'runs/frame':>10} "
             f"{'here: ms, GMAC/s (measured)':>28}"]
    for stage, r in p["models"].items():
        here = "cannot load alone" if r["here_ms"] is None else f"{r['here_ms']:.3f} ms, {r['here_gmacs']:.1f}"
        lines.append(f"{stage:<24} {r['model']:<38} {r['macs_m']:>7.1f} {'int8' if r['int8'] else 'fp32':>5} "
                     f"{r['ms'][0]:>6.2f}-{r['ms'][1]:<6.2f} {r['runs_per_frame']:>10g} {here:>28}")
    lines.append(f"models per frame (each model times its runs per frame; pain model on every frame, gate off): "
                 f"{p['frame_ms'][0]:.2f}-{p['frame_ms'][1]:.2f} ms, so at most "
                 f"{p['fps_ceiling'][0]:.0f}-{p['fps_ceiling'][1]:.0f} fps from the models alone; painedge's Python and "
                 f"OpenCV work per frame (see `painedge bench` here) comes on top and is not projected")
    return "\n".join(lines)


def default_project_models(backend: str) -> dict[str, tuple[Path, float]]:
    """The models a frame runs with this landmark backend (the detector only when no face is tracked)."""
    from .landmarks import DETECTOR_MODEL, MESH_MODEL
    from .model import DEFAULT_MODEL

    if backend == "litert":
        return {"landmarks": (MESH_MODEL, 1.0), "pain model": (DEFAULT_MODEL, 1.0),
                "detector (on loss only)": (DETECTOR_MODEL, 0.0)}
    # MediaPipe's graph runs the same detector on every frame with max_num_faces=2, and the
    # refined (attention) mesh; its models are inside the mediapipe wheel.
    import importlib.util

    from .errors import need

    need("mediapipe", "mediapipe", 'painedge bench --project with face.backend = "mediapipe"')
    spec = importlib.util.find_spec("mediapipe")
    assert spec is not None and spec.submodule_search_locations
    mp = Path(list(spec.submodule_search_locations)[0]) / "modules"
    return {"landmarks (refined)": (mp / "face_landmark" / "face_landmark_with_attention.tflite", 1.0),
            "detector (every frame)": (mp / "face_detection" / "face_detection_short_range.tflite", 1.0),
            "pain model": (DEFAULT_MODEL, 1.0)}


def print_projection(board: str, threads: int, settings: Any, json_out: str | None = None) -> int:
    """`painedge bench --project BOARD`: the projection for the models of ``settings``' landmark backend, as a
    table (as JSON for ``json_out`` '-')."""
    import json

    p = project(board, default_project_models(settings.face.backend), threads)
    print(json.dumps(p, indent=2) if json_out == "-" else projection_table(p))
    return 0
