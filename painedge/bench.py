"""`painedge bench`: the real pipeline over a source, timed stage by stage.

Runs the service in-process (capture thread, face mesh, gate, model,
publisher thread; metrics endpoint off) for a number of frames or seconds
after a warm-up, and reports per-stage and capture-to-publish latency
(p50/p95/p99/max), frames per second captured / processed / inferred, the
gate's skip ratio, CPU use and peak memory, and the machine it ran on (CPU
model, cores, governor, and on a Jetson its power mode and clocks), so
numbers from different machines can be compared. ``compare_model`` times a
second TFLite model on the same inputs in the same run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
import io
import json
import os
import platform
import resource
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .model import PainModel
from .service import RunLimits, Service

STAGES = ("capture", "landmarks", "gate", "inference", "compare", "publish", "frame")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "system": platform.platform(), "cores": os.cpu_count()}
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        if line.startswith(("model name", "Model", "Hardware")):
            info.setdefault("cpu", line.split(":", 1)[1].strip())
    info.setdefault("cpu", platform.processor() or platform.machine())
    info["governor"] = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    freqs = [_read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq") for i in range(os.cpu_count() or 1)]
    if any(freqs):
        info["cpu_mhz"] = [int(f) // 1000 for f in freqs if f and f.isdigit()]
    tegra = _read("/etc/nv_tegra_release")
    if tegra:  # a Jetson
        info["jetson"] = {"release": tegra.splitlines()[0]}
        try:
            q = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5)
            info["jetson"]["power_mode"] = " ".join(q.stdout.split())
        except (OSError, subprocess.TimeoutExpired):
            info["jetson"]["power_mode"] = None
        for name, path in (("gpu_hz", "/sys/devices/gpu.0/devfreq/57000000.gpu/cur_freq"),
                           ("emc_hz", "/sys/kernel/debug/clk/emc/clk_rate")):
            info["jetson"][name] = _read(path)
    return info


def pct(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    a = np.asarray(xs) * 1000
    return {"n": len(xs), "p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


class _Bench(Service):
    """The service with an optional second model timed on the very inputs of the first."""

    def __init__(self, settings: Settings, limits: RunLimits, compare: PainModel | None) -> None:
        super().__init__(settings, limits, record=True)
        self.compare = compare
        assert self.samples is not None
        self.samples["compare"] = []

    def infer(self, window: np.ndarray, crop: np.ndarray) -> np.ndarray:
        out = super().infer(window, crop)
        if self.compare is not None and self.samples is not None:
            t0 = time.perf_counter()
            self.compare.predict(np.resize(window, (self.compare.window_frames, window.shape[1])), crop)
            self.samples["compare"].append(time.perf_counter() - t0)
        return out


def run(settings: Settings, frames: int | None = None, seconds: float | None = None, warmup_s: float = 3.0,
        compare_model: str | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One timed run: (the report, the raw per-frame samples in ms by stage)."""
    compare = PainModel(compare_model, settings.model.threads) if compare_model else None
    svc = _Bench(settings, RunLimits(), compare)
    svc.start()
    marks: dict[str, Any] = {}

    def supervise() -> None:
        time.sleep(warmup_s)
        assert svc.samples is not None
        for v in svc.samples.values():
            v.clear()
        marks["t0"] = time.monotonic()
        marks["counts0"] = (svc.capture.captured, svc.handled, svc.metrics.inferences._value.get())  # noqa: SLF001
        marks["ru0"] = resource.getrusage(resource.RUSAGE_SELF)
        while not svc.stop_event.is_set():
            done_frames = frames is not None and svc.handled - marks["counts0"][1] >= frames
            done_time = seconds is not None and time.monotonic() - marks["t0"] >= seconds
            if done_frames or done_time or (frames is None and seconds is None):
                svc.request_stop()
            time.sleep(0.05)

    sup = threading.Thread(target=supervise, daemon=True)
    sup.start()
    try:
        svc.run()
    finally:
        svc.request_stop()
        sup.join(timeout=5)
        elapsed = time.monotonic() - marks.get("t0", time.monotonic())
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        counts = (svc.capture.captured, svc.handled, svc.metrics.inferences._value.get())  # noqa: SLF001
        svc.close()
    c0 = marks.get("counts0", counts)
    ru0 = marks.get("ru0", ru1)
    elapsed = max(elapsed, 1e-6)
    captured, processed, inferred = (counts[i] - c0[i] for i in range(3))
    s = svc.samples or {}
    report = {
        "machine": machine(),
        "source": settings.source.source,
        "gate": settings.gate.enabled,
        "face_backend": settings.face.backend,
        "model": {"name": svc.model.meta.name, "version": svc.model.meta.version, "threads": settings.model.threads},
        "compare_model": compare_model,
        "warmup_s": warmup_s,
        "seconds": round(elapsed, 2),
        "frames": {"captured": captured, "processed": processed, "inferred": int(inferred)},
        "fps": {"captured": round(captured / elapsed, 1), "processed": round(processed / elapsed, 1),
                "inferred": round(inferred / elapsed, 1)},
        "skip_ratio": round(svc.pipeline.gate.skipped / max(svc.pipeline.gate.skipped + svc.pipeline.gate.passed, 1), 3),
        "cpu_percent": round(100 * ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / elapsed, 1),
        "peak_rss_mb": round(ru1.ru_maxrss / 1024, 1),
        "latency": {k: pct(s.get(k, [])) for k in STAGES if s.get(k)},
    }
    return report, {k: [x * 1000 for x in v] for k, v in s.items()}


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"machine: {m.get('cpu')}, {m.get('cores')} cores, governor {m.get('governor')}"
             + (f", Jetson {m['jetson']}" if "jetson" in m else ""),
             f"source {r['source']}, landmarks {r.get('face_backend', 'mediapipe')}, gate {'on' if r['gate'] else 'off'}, "
             f"model {r['model']['name']} "
             f"{r['model']['version']} ({r['model']['threads']} thread(s)), {r['seconds']} s after {r['warmup_s']} s warm-up",
             f"fps: captured {r['fps']['captured']}, processed {r['fps']['processed']}, inferred {r['fps']['inferred']}; "
             f"skip ratio {r['skip_ratio']}; CPU {r['cpu_percent']} %; peak memory {r['peak_rss_mb']} MB",
             f"{'stage':<11} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}"]
    for k, v in r["latency"].items():
        name = {"frame": "end-to-end", "compare": "compare"}.get(k, k)
        lines.append(f"{name:<11} {v['n']:>6} {v['p50_ms']:>9.3f} {v['p95_ms']:>9.3f} {v['p99_ms']:>9.3f} {v['max_ms']:>9.3f}")
    return "\n".join(lines)


def to_csv(r: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["stage", "n", "p50_ms", "p95_ms", "p99_ms", "max_ms"])
    for k, v in r["latency"].items():
        w.writerow([k, v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["max_ms"]])
    for k, v in r["fps"].items():
        w.writerow([f"fps_{k}", "", v, "", "", ""])
    return buf.getvalue()


_STAGE_NAMES = {"frame": "end-to-end", "compare": "compared model"}


def plot(samples_ms: dict[str, list[float]], path: str, title: str) -> None:
    """Latency per stage: percentiles side by side, and the distributions as CDFs.

    Stages differ by three orders of magnitude (the gate takes microseconds, face
    mesh milliseconds), so both panels use a log time axis; every stage keeps one
    colour in both panels, and the legend gives how many frames each one timed
    (the model runs only on frames the gate lets through).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [(k, np.sort(np.asarray(xs, float))) for k, xs in samples_ms.items() if len(xs)]
    colours = plt.get_cmap("tab10").colors
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.55 * len(stages) + 3.2),
                                   gridspec_kw={"width_ratios": [1.15, 1]})
    for i, (k, a) in enumerate(stages):
        c = colours[i % len(colours)]
        name = _STAGE_NAMES.get(k, k)
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        y = len(stages) - 1 - i  # first stage on top, in pipeline order
        ax1.barh(y, p50, color=c, alpha=0.8, height=0.6)
        ax1.plot([p95], [y], marker="|", markersize=16, mew=2.5, color="black")
        ax1.plot([p99], [y], marker="|", markersize=16, mew=2.5, color="black", alpha=0.45)
        ax1.plot([a[-1]], [y], marker="x", markersize=7, color="black", alpha=0.6)
        ax1.annotate(f"p50 {p50:.3g}  p95 {p95:.3g}  p99 {p99:.3g}  max {a[-1]:.3g} ms", (a[-1], y),
                     xytext=(8, -4), textcoords="offset points", fontsize=8.5)
        ax2.step(a, np.arange(1, len(a) + 1) / len(a), where="post", color=c, lw=1.8,
                 label=f"{name} (n={len(a)})")
    ax1.set_yticks(range(len(stages)), [_STAGE_NAMES.get(k, k) for k, _ in reversed(stages)])
    ax1.set_xscale("log")
    lo = min(a[0] for _, a in stages)
    hi = max(a[-1] for _, a in stages)
    ax1.set_xlim(lo / 2, hi * 60)  # room for the figures to the right of each row
    ax1.set_xlabel("latency, ms (log scale)")
    ax1.set_title("per stage: bar to the median; | p95, faint | p99, x max")
    ax1.grid(axis="x", which="major", alpha=0.3)
    for q in (0.5, 0.95, 0.99):
        ax2.axhline(q, color="grey", lw=0.8, ls=":")
        ax2.annotate(f"p{round(q * 100)}", (1.0, q), xycoords=("axes fraction", "data"), xytext=(3, -3),
                     textcoords="offset points", fontsize=8, color="grey")
    ax2.set_xscale("log")
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("latency, ms (log scale)")
    ax2.set_ylabel("fraction of frames at or below")
    ax2.set_title("cumulative distribution")
    ax2.grid(which="major", alpha=0.3)
    ax2.legend(fontsize=8.5, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(r: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(r, indent=2) + "\n")


# ---------------------------------------------------------------- projection for a named board
#
# A projection from op counts, not a measurement: what each model costs in multiply-accumulates
# (counted from the .tflite files), divided by what a board's CPU cores can do.


def model_macs(path: str | Path) -> dict[str, Any]:
    """Multiply-accumulates of one inference of a .tflite model, by op type, and whether it computes in int8.

    Counted from the model's own graph (delegates off, so every op is visible):
    CONV_2D out_h*out_w*out_c*k_h*k_w*in_c, DEPTHWISE_CONV_2D out_h*out_w*out_c*k_h*k_w,
    FULLY_CONNECTED rows*out*in, BATCH_MATMUL; element-wise ops are left out (a few percent).
    """
    from .model import interpreter_class

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
    for op in it._get_ops_details():  # noqa: SLF001 (the only way LiteRT lists ops)
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
            int8 = int8 or any(t in (np.int8, np.uint8) for t in op.get("operand_types", [])[:1])
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


def project(board_name: str, models: dict[str, tuple[str | Path, float]], threads: int = 1) -> dict[str, Any]:
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

    try:
        it, _ = load_interpreter(path, threads)
    except ModelError:
        return None  # e.g. MediaPipe's refined mesh: its custom ops live in mediapipe
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    times = []
    for _ in range(runs + 3):
        t0 = time.perf_counter()
        it.invoke()
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

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("face.backend = mediapipe but mediapipe is not installed")
    mp = Path(list(spec.submodule_search_locations)[0]) / "modules"
    return {"landmarks (refined)": (mp / "face_landmark" / "face_landmark_with_attention.tflite", 1.0),
            "detector (every frame)": (mp / "face_detection" / "face_detection_short_range.tflite", 1.0),
            "pain model": (DEFAULT_MODEL, 1.0)}
