"""`painedge bench`'s report as a person reads it: a table, CSV, JSON and a latency plot (from bench.run)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import need


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
    need("matplotlib", "plot", "painedge bench --plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [(k, np.sort(np.asarray(xs, float))) for k, xs in samples_ms.items() if len(xs)]
    colours = matplotlib.color_sequences["tab10"]  # the tab10 colormap's colours
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


def write(report: dict[str, Any], samples_ms: dict[str, list[float]], json_path: str | None = None,
          csv_path: str | None = None, plot_path: str | None = None) -> str:
    """Write the files asked for (``json_path`` '-': none, the JSON is what is returned to print) and return
    what to print: the JSON for '-', else the table."""
    if json_path and json_path != "-":
        write_json(report, json_path)
    if csv_path:
        Path(csv_path).write_text(to_csv(report))
    if plot_path:
        m = report["machine"]
        plot(samples_ms, plot_path, f"painedge bench: {Path(report['source']).name} on {m.get('cpu')}, "
                                    f"{m.get('cores')} cores, model {report['model']['name']} "
                                    f"{report['model']['version']}")
    return json.dumps(report, indent=2) if json_path == "-" else table(report)
