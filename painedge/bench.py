"""`painedge bench`: the real pipeline over a source, timed stage by stage.

Runs the service in-process (capture thread, face mesh, gate, model,
publisher thread; metrics endpoint off) for a number of frames or seconds
after a warm-up, and reports per-stage and capture-to-publish latency
(p50/p95/p99/max), frames per second captured / processed / inferred, the
gate's skip ratio, CPU use and peak memory, and the machine it ran on (CPU
model, cores, governor, and on a Jetson its power mode and clocks), so
numbers from different machines can be compared. ``compare_model`` times a
second TFLite model on the same inputs in the same run.

bench_report.py writes the report (table, CSV, JSON, plot); bench_projection.py projects a
named board's figures from op counts instead of measuring.
"""

from __future__ import annotations

import logging
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
from .errors import need, writing
from .messages import Stage
from .metrics import FRAME
from .model import PainModel
from .service import RunLimits, Service
from . import bench_report

COMPARE = "compare"  # the second model of --compare-model


def _report_stages() -> tuple[str, ...]:
    """The report's order: the timed stages, the compared model right after the model, then capture to publish."""
    out: list[str] = []
    for stage in Stage:
        out += [stage.value, COMPARE] if stage == Stage.INFERENCE else [stage.value]
    return (*out, FRAME)


STAGES = _report_stages()


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


class _Compared:
    """The model stage, with a second model timed on the very inputs of the first (``--compare-model``)."""

    def __init__(self, model: PainModel, compare: PainModel) -> None:
        self.model, self.compare = model, compare
        self.samples: list[float] = []  # seconds per run of the second model

    def __call__(self, window: np.ndarray, crop: np.ndarray) -> np.ndarray:
        out = self.model.predict(window, crop)
        t0 = time.perf_counter()
        self.compare.predict(np.resize(window, (self.compare.window_frames, window.shape[1])), crop)
        self.samples.append(time.perf_counter() - t0)
        return out


def run(settings: Settings, frames: int | None = None, seconds: float | None = None, warmup_s: float = 3.0,
        compare_model: str | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One timed run: (the report, the raw per-frame samples in ms by stage)."""
    model = PainModel(settings.model.path, num_threads=settings.model.threads)
    compared = _Compared(model, PainModel(compare_model, settings.model.threads)) if compare_model else None
    svc = Service(settings, RunLimits(), record=True, model=model, infer=compared)
    assert svc.samples is not None
    samples = {**svc.samples, COMPARE: compared.samples if compared else []}  # the same lists, kept as they fill
    marks: dict[str, Any] = {}

    def counts() -> tuple[int, int, float]:
        inferred = svc.metrics.registry.get_sample_value("painedge_inferences_total") or 0.0
        return svc.capture.captured, svc.handled, inferred

    svc.start()

    def supervise() -> None:
        time.sleep(warmup_s)
        for v in samples.values():
            v.clear()
        marks["t0"] = time.monotonic()
        marks["counts0"] = counts()
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
        end = counts()
        svc.close()
    c0 = marks.get("counts0", end)
    ru0 = marks.get("ru0", ru1)
    elapsed = max(elapsed, 1e-6)
    captured, processed, inferred = (end[i] - c0[i] for i in range(3))
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
        "latency": {k: pct(samples[k]) for k in STAGES if samples.get(k)},
    }
    return report, {k: [x * 1000 for x in v] for k, v in samples.items()}


def bench_settings(settings: Settings, threads: int) -> Settings:
    """The settings a bench runs with: no metrics endpoint, no alerts, an in-process PUB and no replay service."""
    return settings.model_copy(update={
        "metrics": settings.metrics.model_copy(update={"enabled": False}),
        "publish": settings.publish.model_copy(update={"pub": "inproc://painedge-bench", "replay": ""}),
        "alerts": settings.alerts.model_copy(update={"enabled": False}),
        "model": settings.model.model_copy(update={"threads": threads}),
    })


def command(settings: Settings, board: str | None = None, frames: int | None = None, seconds: float | None = None,
            warmup: float = 3.0, threads: int = 1, compare_model: str | None = None, json_out: str | None = None,
            csv: str | None = None, plot: str | None = None) -> int:
    """`painedge bench`: one timed run (20 s when neither ``frames`` nor ``seconds`` is given), its report
    printed (as JSON for ``json_out`` '-') and written to the files named; for a ``board``, its projection
    from op counts instead (bench_projection)."""
    if board:
        from .bench_projection import print_projection

        return print_projection(board, threads, settings, json_out)
    if plot:
        need("matplotlib", "plot", "painedge bench --plot")  # before the run, not after it
    if frames is None and seconds is None:
        seconds = 20.0
    settings = bench_settings(settings, threads)
    logging.getLogger("painedge").setLevel(logging.WARNING)
    report, samples = run(settings, frames, seconds, warmup, compare_model)
    with writing(csv or plot or json_out or "", "the benchmark's files"):
        print(bench_report.write(report, samples, json_out, csv, plot))
    return 0
