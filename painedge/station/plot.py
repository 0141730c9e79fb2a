"""A bed's history as inline SVG, drawn here from stored points: no JavaScript library, nothing to download.

The level (0-4) is a step line; the PSPI estimate (0-16) a shaded area on the
same height; alarms are marks along the top. A silence of more than three
reading intervals breaks the line, so an offline bed never looks calm.
"""

from __future__ import annotations

import time
from html import escape
from typing import Sequence

from ..levels import LABELS
from ..messages import AlertState, Priority
from .store import HistoryPoint

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 92, 44, 26, 30
GAP_FACTOR = 3.0  # a break in the line after this many missing reading intervals
LEVEL_COLOURS = ("#6b8f71", "#8aa36c", "#c9a227", "#d9822b", "#c0392b")


def _segments(points: Sequence[HistoryPoint], max_gap_s: float) -> list[list[HistoryPoint]]:
    segs: list[list[HistoryPoint]] = []
    for p in points:
        if not p.face:
            segs.append([])
            continue
        if not segs or not segs[-1] or p.ts - segs[-1][-1].ts > max_gap_s:
            segs.append([])
        segs[-1].append(p)
    return [s for s in segs if s]


def history_svg(points: Sequence[HistoryPoint], alerts: Sequence[tuple[float, str, str, int]], since_ts: float,
                until_ts: float, interval_s: float = 5.0) -> str:
    span = max(until_ts - since_ts, 1.0)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ts: float) -> float:
        return LEFT + (ts - since_ts) / span * pw

    def y_level(level: float) -> float:
        return TOP + ph - level / 4 * ph

    parts = [f'<svg class="history" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="pain level and PSPI over time" xmlns="http://www.w3.org/2000/svg">']
    for lv, name in enumerate(LABELS):  # bands and the level axis
        y = y_level(lv)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" class="axis">{lv} {escape(name)}</text>')
        parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{y + 4:.1f}" class="axis pspi-axis">{lv * 4}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{TOP - 10}" class="axis pspi-axis">PSPI</text>')
    step = _tick_step(span)
    t = (since_ts // step + 1) * step
    while t < until_ts:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{TOP + ph}" class="grid"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 10}" text-anchor="middle" class="axis">'
                     f'{time.strftime("%H:%M", time.localtime(t))}</text>')
        t += step
    for seg in _segments(points, GAP_FACTOR * max(interval_s, 1.0)):
        area = " ".join(f"{x(p.ts):.1f},{y_level(min(p.pspi, 16) / 4):.1f}" for p in seg)
        base = f"{x(seg[-1].ts):.1f},{y_level(0):.1f} {x(seg[0].ts):.1f},{y_level(0):.1f}"
        parts.append(f'<polygon points="{area} {base}" class="pspi"/>')
        path = [f"M{x(seg[0].ts):.1f},{y_level(seg[0].smoothed_level):.1f}"]
        for _a, b in zip(seg, seg[1:]):
            path.append(f"H{x(b.ts):.1f}V{y_level(b.smoothed_level):.1f}")
        parts.append(f'<path d="{"".join(path)}" class="level"/>')
        if len(seg) == 1:
            parts.append(f'<circle cx="{x(seg[0].ts):.1f}" cy="{y_level(seg[0].smoothed_level):.1f}" r="2.5" '
                         f'class="level-dot"/>')
    for ts, state, priority, level in alerts:
        if state == AlertState.CLEARED:
            parts.append(f'<line x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{TOP - 14}" y2="{TOP + ph}" class="cleared"/>')
            continue
        cls = "alarm-high" if priority == Priority.HIGH else "alarm-medium"
        parts.append(f'<path d="M{x(ts) - 6:.1f},{TOP - 16} h12 l-6,10 z" class="{cls}">'
                     f'<title>{state} {escape(LABELS[level])} ({priority} priority) at '
                     f'{time.strftime("%H:%M:%S", time.localtime(ts))}</title></path>')
    if not points:
        parts.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph / 2}" text-anchor="middle" class="axis">'
                     'no readings in this span</text>')
    parts.append("</svg>")
    return "".join(parts)


def _tick_step(span_s: float) -> float:
    for step in (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if span_s / step <= 10:
            return step
    return 43200
