"""`painedge evaluate`'s output for people: the text table and the PNG timeline of an ``Evaluation``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import need

if TYPE_CHECKING:
    from .evaluate import Evaluation


def _fmt(v: Any, nd: int = 2) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(ev: Evaluation) -> str:
    """The report for people: one line per segment, then the ROC AUCs and the start-frame check."""
    out = [f"painedge evaluate {ev.labels}: model {ev.model['name']} {ev.model['version']} ({ev.model['quantization']}), "
           f"gate {'on' if ev.gate['enabled'] else 'off'}; stills as {ev.still['frames']} frames at {ev.still['fps']} fps",
           "levels per frame (published: the model fused with its cue, every frame) / smoothed (daemon, gated): share of frames at 0 1 2 3 4",
           f"{'file':<17} {'seg':>3} {'frames':>9} {'expect':<7} {'face':>4} {'per-frame 0/1/2/3/4':<25} "
           f"{'smoothed 0/1/2/3/4':<25} {'>=Sev':>5} {'max':>3} {'PSPI':>5} {'alerts':<14} {'checks'}"]
    for r in ev.segments:
        dist = "/".join(f"{x:.2f}" for x in r.level_dist) if r.face_frames else "-"
        gdist = "/".join(f"{x:.2f}" for x in r.gated_smoothed_dist) if r.max_smoothed is not None else "-"
        alerts = ", ".join(f"{e}@{f}" for f, e in r.alerts) or "none"
        alerts += "".join(f"; reset@{f}" for f, _ in r.resets)
        failed = [k for k, ok in r.checks.items() if not ok]
        checks = "ok" if r.checks and not failed else ("FAIL: " + "; ".join(failed) if failed else "")
        out.append(f"{r.item:<17} {r.segment:>3} {f'{r.start}-{r.end}':>9} {r.expect:<7} {r.face_frames:>4} {dist:<25} "
                   f"{gdist:<25} {_fmt(r.share_severe):>5} {_fmt(r.max_smoothed):>3} {_fmt(r.pspi_median, 1):>5} "
                   f"{alerts:<14} {checks}")
    a = ev.auc
    out.append(f"ROC AUC pain vs no pain, {a['frames']} face frames ({a['pain_frames']} pain, {a['no_pain_frames']} "
               f"no pain), every frame: published P(level>=Moderate) {_fmt(a['model_p_moderate_or_worse'], 3)}, "
               f"published expected level {_fmt(a['model_expected_level'], 3)}, PSPI cue {_fmt(a['pspi_cue'], 3)}, "
               f"model alone P(level>=Moderate) {_fmt(a['model_alone_p_moderate_or_worse'], 3)}")
    for r in ev.segments:
        sf = r.start_frame
        if sf:
            out.append(f"start frame: {r.item} segment {r.segment}, run started {sf['started']}: smoothed level differs "
                       f"by up to {sf['max_level_difference']} ({sf['share_differing_over_one']:.0%} of "
                       f"{sf['frames_compared']} frames by more than one; shares at 0-4 "
                       f"{'/'.join(f'{x:.2f}' for x in sf['smoothed_dist_from_clip_start'])} from the clip's start, "
                       f"{'/'.join(f'{x:.2f}' for x in sf['smoothed_dist_from_here'])} from here); "
                       f"alert {sf['alert_from_clip_start']} from the "
                       f"clip's start, {sf['alert_from_here']} from here: {'invariant' if sf['invariant'] else 'NOT invariant'}")
    out += [f"note: {n}" for n in ev.notes]
    return "\n".join(out)


def plot(ev: Evaluation, path: str | Path) -> None:
    """A timeline per file: per-frame level, the daemon's smoothed level, PSPI; segments shaded."""
    need("matplotlib", "plot", "painedge evaluate --plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"pain": "tab:red", "no_pain": "tab:green", "none": "0.6"}
    names = list(ev.timelines)
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 2.1 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        t = ev.timelines[name]
        for start, end, expect in t["segments"]:
            ax.axvspan(start - 0.5, end + 0.5, color=colours[expect], alpha=0.12, lw=0)
        x = np.asarray(t["frame"])
        lv = np.array([np.nan if v is None else v for v in t["level"]], float)
        sm = np.array([np.nan if v is None else v for v in t["smoothed"]], float)
        ps = np.array([np.nan if v is None else v for v in t["pspi"]], float)
        ax.step(x, sm, where="post", color="black", lw=1.4, label="smoothed level (daemon, gated)")
        ax.plot(x, lv, ".", ms=4, color="tab:blue", label="level (model, every frame)", zorder=3)
        for f, e in t["alerts"]:
            ax.axvline(f, color="tab:red", ls="--", lw=1)
            ax.text(f, 4.1, e, fontsize=7, color="tab:red")
        ax.set_ylim(-0.3, 4.6)
        ax.set_yticks(range(5))
        ax.set_ylabel("level")
        ax.set_title(name, fontsize=9, loc="left")
        ax2 = ax.twinx()
        ax2.plot(x, ps, color="tab:orange", lw=1)
        ax.plot([], [], color="tab:orange", lw=1, label="PSPI cue (right axis)")
        ax2.set_ylim(-0.5, 16.5)
        ax2.set_ylabel("PSPI", fontsize=8)
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("frame (shading: green no pain, red pain, grey no face)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
