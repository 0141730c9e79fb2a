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
             f"source {r['source']}, gate {'on' if r['gate'] else 'off'}, model {r['model']['name']} "
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
