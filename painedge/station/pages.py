"""The station's HTML pages and the handover CSV, made from values (no request, no hub): the board's frame
(its live content comes from board.js over server-sent events), a bed's history, the handover list, sign-in."""

from __future__ import annotations

import csv
import io
import time
from html import escape
from typing import Any, Iterable
from urllib.parse import quote

from starlette.responses import HTMLResponse

from ..levels import LABELS
from ..scales import SCALES
from .access import Refused

HISTORY_SPANS_H = (1, 4, 12, 24)  # the bed page's quick choices


def page(title: str, body: str, head: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="stylesheet" href="/assets/station.css">{head}</head>
<body>{body}</body></html>""", status_code=status, headers={"Cache-Control": "no-store"})


def nav(active: str) -> str:
    links = [("/", "Board"), ("/handover", "Handover")]
    items = "".join(f'<a href="{h}"{" class=on" if h == active else ""}>{t}</a>' for h, t in links)
    return f'<header><span class="brand">painedge station</span><nav>{items}</nav><span id="clock"></span></header>'


def error_page(message: str, status: int) -> HTMLResponse:
    return page("painedge station", f"{nav('')}<main><p class=error>{escape(message)}</p></main>", status=status)


def clock(ts: float | None, fmt: str = "%H:%M:%S") -> str:
    return "-" if ts is None else time.strftime(fmt, time.localtime(ts))


def parse_time(value: str | None, default: float) -> float:
    """``YYYY-MM-DDTHH:MM`` (local time, as an <input type=datetime-local> sends it) or epoch seconds."""
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return time.mktime(time.strptime(value, fmt))
        except ValueError:
            continue
    raise Refused(400, f"cannot read the time {value[:40]!r}; use YYYY-MM-DDTHH:MM")


def span(hours: float) -> str:
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:.0f} minutes"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _episode_row(e: Any, now: float, started_fmt: str, bed: str | None = None, acked_at: bool = False) -> str:
    """One pain episode as a table row: (its bed,) start, length, peak, priority, escalated, who acknowledged
    it (and when), the note."""
    cells = [] if bed is None else [bed]
    cells += [clock(e.start_ts, started_fmt), duration(e.duration_s(now)), LABELS[e.peak_level], e.priority,
              "yes" if e.escalated else "no", escape(e.acked_by) or "<em>not acknowledged</em>"]
    if acked_at:
        cells.append(clock(e.acked_ts) if e.acked_ts else "-")
    cells.append(escape(e.ack_note))
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def board_page(stale_after_s: float, ack_timeout_s: float, account: str | None) -> HTMLResponse:
    """The board's frame; ``account`` None: an open board."""
    who = (f'signed in as {escape(account)} <form class="inline" method="post" action="/logout">'
           '<button class="link">sign out</button></form>') if account is not None else "open board (loopback, no users)"
    body = f"""{nav('/')}
<main id="board" data-stale-after="{stale_after_s}" data-ack-timeout="{ack_timeout_s}">
  <section id="alarms" aria-live="assertive"><h2>Alarms</h2><div id="alarm-list"><p class="quiet">No open alarms.</p></div></section>
  <section><h2>Beds</h2><div id="beds" class="beds"></div></section>
  <footer><span id="conn">connecting</span> · {who} · levels, cues and states only: no image leaves a bed</footer>
</main>
<script src="/assets/board.js"></script>"""
    return page("painedge station", body)


def bed_settings_form(device_id: str, name: str, scale_now: str) -> str:
    """The bed page's form to rename a bed and choose its ward scale (for accounts that may configure)."""
    options = "".join(f'<option value="{k}"{" selected" if k == scale_now else ""}>{v.title}</option>'
                      for k, v in SCALES.items())
    return f"""<h2>Bed settings</h2>
<form class="range" method="post" action="/api/beds/{escape(quote(device_id))}">
<label>Name <input name="name" value="{escape(name)}" maxlength="40" required></label>
<label>Ward scale (face item shown) <select name="scale">{options}</select></label><button>Save</button></form>"""


def history_page(device_id: str, name: str, hours: float, svg: str, episodes: Iterable[Any], now: float,
                 reading_interval_s: float, admin: str = "") -> HTMLResponse:
    """A bed's history: the plot over the last ``hours``, its pain episodes, and ``admin`` (the settings form)."""
    rows = "".join(_episode_row(e, now, "%d %b %H:%M:%S") for e in episodes)
    spans = "".join(f'<a href="?hours={h}"{" class=on" if h == hours else ""}>{h:g} h</a>' for h in HISTORY_SPANS_H)
    body = f"""{nav('')}<main>
<h1>{escape(name)} <small>{escape(device_id)}</small></h1>
<p class="spans">Last {spans}</p>
<figure class="plot">{svg}<figcaption>Smoothed pain level (line, left scale) and PSPI estimate (shaded, right
scale 0-16) over the last {span(hours)}, one point per {reading_interval_s:g} s; alarms raised are marked
above the plot, the dashed lines are where they cleared. Gaps are times the bed was not heard or no face was
seen.</figcaption></figure>
<h2>Pain episodes</h2>
<table><thead><tr><th>Started</th><th>Lasted</th><th>Peak</th><th>Priority</th><th>Escalated</th>
<th>Acknowledged by</th><th>Note</th></tr></thead><tbody>{rows or '<tr><td colspan=7 class=quiet>None in this span.</td></tr>'}</tbody></table>
{admin}</main>"""
    return page(f"{name}: history", body)


def handover_page(episodes: list[Any], names: dict[str, str], since: float, until: float, now: float) -> HTMLResponse:
    """Every pain episode from ``since`` to ``until``, with a link to the same range as CSV."""
    rows = "".join(
        _episode_row(e, now, "%d %b %H:%M", acked_at=True,
                     bed=f"<a href='/beds/{escape(e.device_id)}'>{escape(names.get(e.device_id, e.device_id))}</a>")
        for e in episodes)
    qs = f"from={clock(since, '%Y-%m-%dT%H:%M')}&to={clock(until, '%Y-%m-%dT%H:%M')}"
    body = f"""{nav('/handover')}<main>
<h1>Handover</h1>
<form class="range" method="get"><label>From <input type="datetime-local" name="from" value="{clock(since, '%Y-%m-%dT%H:%M')}"></label>
<label>To <input type="datetime-local" name="to" value="{clock(until, '%Y-%m-%dT%H:%M')}"></label>
<button>Show</button> <a href="/handover.csv?{qs}">CSV</a></form>
<p>{len(episodes)} pain episodes (alarms) from {clock(since, '%d %b %H:%M')} to {clock(until, '%d %b %H:%M')}.</p>
<table><thead><tr><th>Bed</th><th>Started</th><th>Lasted</th><th>Peak</th><th>Priority</th><th>Escalated</th>
<th>Acknowledged by</th><th>At</th><th>Note</th></tr></thead>
<tbody>{rows or '<tr><td colspan=9 class=quiet>No pain episodes in this range.</td></tr>'}</tbody></table></main>"""
    return page("Handover", body)


def handover_csv(episodes: Iterable[Any], names: dict[str, str], now: float) -> str:
    """The handover list as CSV, one row per episode, times in ISO local time."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["bed", "device_id", "alarm_id", "started", "ended", "duration_s", "peak_level", "peak_level_name",
                "priority", "escalated", "acknowledged_by", "acknowledged_at", "note"])
    iso = "%Y-%m-%dT%H:%M:%S"
    for e in episodes:
        w.writerow([names.get(e.device_id, e.device_id), e.device_id, e.alarm_id, clock(e.start_ts, iso),
                    clock(e.end_ts, iso) if e.end_ts else "", f"{e.duration_s(now):.0f}", e.peak_level,
                    LABELS[e.peak_level], e.priority, int(e.escalated), e.acked_by,
                    clock(e.acked_ts, iso) if e.acked_ts else "", e.ack_note])
    return out.getvalue()


def login_page(message: str = "") -> HTMLResponse:
    body = f"""{nav('')}<main class="login"><h1>Sign in</h1>{message}
<form method="post"><label>Access token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button>Sign in</button></form></main>"""
    return page("Sign in", body)
