"""The board on the web: a Starlette app. Pages are rendered here; live updates are server-sent events.

    GET  /                      the board (beds, open alarms on top)        view
    GET  /events                server-sent events: alarms, beds, tick        view
    GET  /api/state             the board as JSON                            view
    GET  /api/health            counters: messages applied, queued, dropped   view
    POST /api/alarms/{id}/ack   name, note                                   acknowledge
    POST /api/alarms/{id}/silence  minutes                                   acknowledge
    GET  /beds/{device}         a bed's history (inline SVG plot)            view
    POST /api/beds/{device}     name, scale                                  configure
    GET  /handover[.csv]        pain episodes in a time range                view
    GET|POST /login, POST /logout

Everything runs on the event loop that owns the board, so a request and a
device message never interleave. A bad request gets one message (JSON
``{"ok": false, "error": ...}`` with a 4xx) and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import time
from html import escape
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import host_header_is_loopback
from ..levels import LABELS
from ..logsetup import fields
from ..scales import SCALES
from .alarms import AlarmError
from .board import alarm_view
from .plot import history_svg
from .settings import ROLE_CAN, StationSettings, User, is_loopback_host

log = logging.getLogger("painedge.station.web")
audit_log = logging.getLogger("painedge.station.audit")

ASSETS = Path(__file__).parent / "assets"
COOKIE = "painedge_station"
MAX_FORM_BYTES = 4096
OPEN_ACCOUNT = "open board (loopback)"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


class Access:
    """Who is asking, and may they: open on loopback with no users, else a token (cookie or Bearer) and a role."""

    def __init__(self, settings: StationSettings) -> None:
        self.users = settings.users
        self.open = not settings.users and is_loopback_host(settings.host_port[0])
        self.secure_cookie = settings.tls

    def user(self, request: Request) -> User | None:
        token = request.cookies.get(COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not token:
            return None
        return next((u for u in self.users if u.matches(token)), None)

    def may(self, request: Request, action: str) -> bool:
        try:
            self.account(request, action)
        except Refused:
            return False
        return True

    def account(self, request: Request, action: str) -> str:
        """The account name allowed to do ``action``; raises Refused."""
        if self.open:
            return OPEN_ACCOUNT
        user = self.user(request)
        if user is None:
            raise Refused(401, "log in first")
        if action not in ROLE_CAN[user.role]:
            raise Refused(403, f"a {user.role} account may not {action}")
        return user.name


class LoopbackHostOnly:
    """An open board (loopback, no users) answers only requests addressed to a loopback name: a web page
    elsewhere whose DNS name is made to point at 127.0.0.1 (DNS rebinding) sends its own name, gets 403."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_header_is_loopback(host):
                await _error(403, "this board is open on loopback only: address it as 127.0.0.1 or localhost")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on POST: a form posted from another site is refused (with SameSite=Strict cookies)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request, allowed: set[str]) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/json"):
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                raise Refused(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form(max_files=0, max_fields=10)
            data = {k: v for k, v in form.items()}
        else:
            raise Refused(415, "send the form as application/x-www-form-urlencoded or JSON")
    except Refused:
        raise
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise Refused(400, "the form could not be read") from None
    unknown = set(data) - allowed
    if unknown:
        raise Refused(400, f"unknown field {sorted(unknown)[0]!r}; expected {', '.join(sorted(allowed))}")
    if not all(isinstance(v, str) for v in data.values()):
        raise Refused(400, "every field must be text")
    return data


def _page(title: str, body: str, head: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="stylesheet" href="/assets/station.css">{head}</head>
<body>{body}</body></html>""", status_code=status, headers={"Cache-Control": "no-store"})


def _nav(active: str) -> str:
    links = [("/", "Board"), ("/handover", "Handover")]
    items = "".join(f'<a href="{h}"{" class=on" if h == active else ""}>{t}</a>' for h, t in links)
    return f'<header><span class="brand">painedge station</span><nav>{items}</nav><span id="clock"></span></header>'


def _clock(ts: float | None, fmt: str = "%H:%M:%S") -> str:
    return "-" if ts is None else time.strftime(fmt, time.localtime(ts))


def _parse_time(value: str | None, default: float) -> float:
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


def create_app(hub: Any) -> Starlette:
    """The ASGI app around a ``service.Hub`` (board, store, sinks)."""
    settings: StationSettings = hub.settings
    access = Access(settings)
    stop = asyncio.Event()

    def guarded(action: str, json_errors: bool = True) -> Callable:
        def wrap(fn: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                try:
                    if request.method == "POST" and not _same_origin(request):
                        raise Refused(403, "the form came from another site")
                    account = access.account(request, action)
                    return await fn(request, account)
                except Refused as r:
                    if r.status == 401 and not json_errors:
                        return RedirectResponse("/login", status_code=303)
                    return _error(r.status, r.message) if json_errors else _page(
                        "painedge station", f"{_nav('')}<main><p class=error>{escape(r.message)}</p></main>",
                        status=r.status)
                except Exception:  # noqa: BLE001 - the station never dies from a request
                    log.exception("request %s %s failed", request.method, request.url.path)
                    return _error(500, "the station could not handle this request (see its log)")
            return endpoint
        return wrap

    # ------------------------------------------------------------ board

    @guarded("view", json_errors=False)
    async def board(request: Request, account: str) -> Response:
        who = (f'signed in as {escape(account)} <form class="inline" method="post" action="/logout">'
               '<button class="link">sign out</button></form>') if not access.open else "open board (loopback, no users)"
        body = f"""{_nav('/')}
<main id="board" data-stale-after="{settings.stale_after_s}" data-ack-timeout="{settings.ack_timeout_s}">
  <section id="alarms" aria-live="assertive"><h2>Alarms</h2><div id="alarm-list"><p class="quiet">No open alarms.</p></div></section>
  <section><h2>Beds</h2><div id="beds" class="beds"></div></section>
  <footer><span id="conn">connecting</span> · {who} · levels, cues and states only: no image leaves a bed</footer>
</main>
<script src="/assets/board.js"></script>"""
        return _page("painedge station", body)

    @guarded("view")
    async def state(request: Request, account: str) -> Response:
        now = time.time()
        return JSONResponse({"now": now, "stale_after_s": settings.stale_after_s,
                             "alarms": hub.board.open_alarms(now), "beds": hub.board.bed_views(now)})

    @guarded("view")
    async def health(request: Request, account: str) -> Response:
        """Counters for whoever runs the station (and the load benchmark)."""
        return JSONResponse({"devices": len(hub.board.beds), "applied": hub.applied, "queued": hub.inbox.qsize(),
                             "dropped": hub.receiver_dropped(), "listeners": len(hub.listeners),
                             "open_alarms": len(hub.board.alarms.open()), "sinks": hub.sinks.stats()})

    @guarded("view")
    async def events(request: Request, account: str) -> Response:
        q: asyncio.Queue = asyncio.Queue()
        hub.listeners.add(q)

        async def stream():  # noqa: ANN202
            now = time.time()
            first = {"now": now, "stale_after_s": settings.stale_after_s, "beds": hub.board.bed_views(now)}
            yield f"event: beds\ndata: {json.dumps(first)}\n\n"
            yield f"event: alarms\ndata: {json.dumps({'now': now, 'alarms': hub.board.open_alarms(now)})}\n\n"
            try:
                while not stop.is_set():
                    try:
                        item = await asyncio.wait_for(q.get(), 1.0)
                    except asyncio.TimeoutError:
                        yield f"event: tick\ndata: {json.dumps({'now': time.time()})}\n\n"
                        continue
                    if item is None:
                        return
                    name, data = item
                    yield f"event: {name}\ndata: {json.dumps(data)}\n\n"
            finally:
                hub.listeners.discard(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------ alarm handling

    @guarded("acknowledge")
    async def acknowledge(request: Request, account: str) -> Response:
        alarm_id = request.path_params["alarm_id"]
        form = await _form(request, {"name", "note"})
        now = time.time()
        try:
            changes = hub.board.alarms.acknowledge(alarm_id, form.get("name", ""), form.get("note", ""), now)
        except AlarmError as e:
            return _error(404 if str(e).startswith("no alarm") else 400, str(e))
        alarm = changes[0].alarm
        client = request.client.host if request.client else "?"
        hub.store.begin()
        try:
            hub.board.record(changes)
            hub.store.audit(now, account, "acknowledge", alarm, alarm.acked_by, alarm.ack_note, client)
        finally:
            hub.store.commit()
        audit_log.info("acknowledged alarm %s on %s by %r (account %s, from %s)%s", alarm.alarm_id, alarm.device_id,
                       alarm.acked_by, account, client, f": {alarm.ack_note}" if alarm.ack_note else "",
                       extra=fields("ack", alarm_id=alarm.alarm_id, device=alarm.device_id, account=account))
        hub.route(changes)
        return JSONResponse({"ok": True, "alarm": alarm_view(alarm, now)})

    @guarded("acknowledge")
    async def silence(request: Request, account: str) -> Response:
        alarm_id = request.path_params["alarm_id"]
        form = await _form(request, {"minutes"})
        try:
            minutes = float(form.get("minutes", ""))
        except ValueError:
            return _error(400, "minutes must be a number, 1 to 60")
        now = time.time()
        try:
            changes = hub.board.alarms.silence(alarm_id, minutes, account, now)
        except AlarmError as e:
            return _error(404 if str(e).startswith("no alarm") else 400, str(e))
        client = request.client.host if request.client else "?"
        hub.store.begin()
        try:
            hub.board.record(changes)
            hub.store.audit(now, account, "silence", changes[0].alarm, "", f"{minutes:g} min", client)
        finally:
            hub.store.commit()
        audit_log.info("silenced alarm %s for %g min (account %s, from %s)", alarm_id, minutes, account, client,
                       extra=fields("silence", alarm_id=alarm_id, account=account))
        hub.route(changes)
        return JSONResponse({"ok": True})

    @guarded("configure")
    async def configure_bed(request: Request, account: str) -> Response:
        device_id = request.path_params["device_id"]
        form = await _form(request, {"name", "scale"})
        name = form.get("name", "").strip()
        scale = form.get("scale", "").strip()
        if not name or len(name) > 40:
            return _error(400, "a bed name is 1 to 40 characters")
        if scale not in SCALES:
            return _error(400, f"unknown scale {scale[:20]!r}; use one of {', '.join(SCALES)}")
        hub.board.configure_bed(device_id, name, scale)
        audit_log.info("bed %s configured by %s: name %r, scale %s", device_id, account, name, scale,
                       extra=fields("configure", device=device_id, account=account))
        if "text/html" in request.headers.get("accept", ""):  # the bed page's own form: back to the page
            return RedirectResponse(f"/beds/{quote(device_id)}", status_code=303)
        return JSONResponse({"ok": True})

    # ------------------------------------------------------------ history and handover

    @guarded("view", json_errors=False)
    async def bed_history(request: Request, account: str) -> Response:
        device_id = request.path_params["device_id"]
        now = time.time()
        try:
            hours = float(request.query_params.get("hours", settings.history_hours))
        except ValueError:
            raise Refused(400, "hours must be a number") from None
        if not 0 < hours <= 24 * 14:
            raise Refused(400, "hours must be between 0 and 336")
        since = now - hours * 3600
        bed = hub.board.beds.get(device_id)
        points = hub.store.history(device_id, since, now)
        if bed is None and not points:
            raise Refused(404, f"no bed {device_id!r} has been heard")
        name = bed.name if bed else device_id
        alerts = hub.store.alerts_of(device_id, since, now)
        svg = history_svg(points, alerts, since, now, settings.reading_interval_s)
        episodes = [e for e in hub.store.episodes(since, now) if e.device_id == device_id]
        rows = "".join(
            f"<tr><td>{_clock(e.start_ts, '%d %b %H:%M:%S')}</td><td>{_duration(e.duration_s(now))}</td>"
            f"<td>{LABELS[e.peak_level]}</td><td>{e.priority}</td><td>{'yes' if e.escalated else 'no'}</td>"
            f"<td>{escape(e.acked_by) or '<em>not acknowledged</em>'}</td><td>{escape(e.ack_note)}</td></tr>"
            for e in episodes)
        spans = "".join(f'<a href="?hours={h}"{" class=on" if h == hours else ""}>{h:g} h</a>'
                        for h in (1, 4, 12, 24))
        admin = ""
        if access.may(request, "configure"):
            scale_now = bed.scale if bed else settings.bed(device_id).scale
            options = "".join(f'<option value="{k}"{" selected" if k == scale_now else ""}>{v.title}</option>'
                              for k, v in SCALES.items())
            admin = f"""<h2>Bed settings</h2>
<form class="range" method="post" action="/api/beds/{escape(quote(device_id))}">
<label>Name <input name="name" value="{escape(name)}" maxlength="40" required></label>
<label>Ward scale (face item shown) <select name="scale">{options}</select></label><button>Save</button></form>"""
        body = f"""{_nav('')}<main>
<h1>{escape(name)} <small>{escape(device_id)}</small></h1>
<p class="spans">Last {spans}</p>
<figure class="plot">{svg}<figcaption>Smoothed pain level (line, left scale) and PSPI estimate (shaded, right
scale 0-16) over the last {_span(hours)}, one point per {settings.reading_interval_s:g} s; alarms raised are marked
above the plot, the dashed lines are where they cleared. Gaps are times the bed was not heard or no face was
seen.</figcaption></figure>
<h2>Pain episodes</h2>
<table><thead><tr><th>Started</th><th>Lasted</th><th>Peak</th><th>Priority</th><th>Escalated</th>
<th>Acknowledged by</th><th>Note</th></tr></thead><tbody>{rows or '<tr><td colspan=7 class=quiet>None in this span.</td></tr>'}</tbody></table>
{admin}</main>"""
        return _page(f"{name}: history", body)

    def _range(request: Request) -> tuple[float, float]:
        now = time.time()
        until = _parse_time(request.query_params.get("to"), now)
        since = _parse_time(request.query_params.get("from"), until - 12 * 3600)
        if since >= until:
            raise Refused(400, "the range must start before it ends")
        return since, until

    @guarded("view", json_errors=False)
    async def handover(request: Request, account: str) -> Response:
        since, until = _range(request)
        now = time.time()
        episodes = hub.store.episodes(since, until)
        names = {d: b.name for d, b in hub.board.beds.items()}
        rows = "".join(
            f"<tr><td><a href='/beds/{escape(e.device_id)}'>{escape(names.get(e.device_id, e.device_id))}</a></td>"
            f"<td>{_clock(e.start_ts, '%d %b %H:%M')}</td><td>{_duration(e.duration_s(now))}</td>"
            f"<td>{LABELS[e.peak_level]}</td><td>{e.priority}</td><td>{'yes' if e.escalated else 'no'}</td>"
            f"<td>{escape(e.acked_by) or '<em>not acknowledged</em>'}</td>"
            f"<td>{_clock(e.acked_ts) if e.acked_ts else '-'}</td><td>{escape(e.ack_note)}</td></tr>"
            for e in episodes)
        qs = f"from={_clock(since, '%Y-%m-%dT%H:%M')}&to={_clock(until, '%Y-%m-%dT%H:%M')}"
        body = f"""{_nav('/handover')}<main>
<h1>Handover</h1>
<form class="range" method="get"><label>From <input type="datetime-local" name="from" value="{_clock(since, '%Y-%m-%dT%H:%M')}"></label>
<label>To <input type="datetime-local" name="to" value="{_clock(until, '%Y-%m-%dT%H:%M')}"></label>
<button>Show</button> <a href="/handover.csv?{qs}">CSV</a></form>
<p>{len(episodes)} pain episodes (alarms) from {_clock(since, '%d %b %H:%M')} to {_clock(until, '%d %b %H:%M')}.</p>
<table><thead><tr><th>Bed</th><th>Started</th><th>Lasted</th><th>Peak</th><th>Priority</th><th>Escalated</th>
<th>Acknowledged by</th><th>At</th><th>Note</th></tr></thead>
<tbody>{rows or '<tr><td colspan=9 class=quiet>No pain episodes in this range.</td></tr>'}</tbody></table></main>"""
        return _page("Handover", body)

    @guarded("view")
    async def handover_csv(request: Request, account: str) -> Response:
        since, until = _range(request)
        now = time.time()
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["bed", "device_id", "alarm_id", "started", "ended", "duration_s", "peak_level", "peak_level_name",
                    "priority", "escalated", "acknowledged_by", "acknowledged_at", "note"])
        names = {d: b.name for d, b in hub.board.beds.items()}
        iso = "%Y-%m-%dT%H:%M:%S"
        for e in hub.store.episodes(since, until):
            w.writerow([names.get(e.device_id, e.device_id), e.device_id, e.alarm_id, _clock(e.start_ts, iso),
                        _clock(e.end_ts, iso) if e.end_ts else "", f"{e.duration_s(now):.0f}", e.peak_level,
                        LABELS[e.peak_level], e.priority, int(e.escalated), e.acked_by,
                        _clock(e.acked_ts, iso) if e.acked_ts else "", e.ack_note])
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="handover.csv"'})

    # ------------------------------------------------------------ login

    async def login(request: Request) -> Response:
        message = ""
        if request.method == "POST":
            if not _same_origin(request):
                return _error(403, "the form came from another site")
            try:
                form = await _form(request, {"token"})
            except Refused as r:
                return _error(r.status, r.message)
            token = form.get("token", "").strip()
            user = next((u for u in access.users if u.matches(token)), None) if token else None
            if user is not None:
                log.info("login: %s (%s) from %s", user.name, user.role, request.client.host if request.client else "?",
                         extra=fields("login", account=user.name))
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=access.secure_cookie,
                                max_age=12 * 3600)
                return resp
            message = "<p class=error>That token is not known here.</p>"
        body = f"""{_nav('')}<main class="login"><h1>Sign in</h1>{message}
<form method="post"><label>Access token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button>Sign in</button></form></main>"""
        return _page("Sign in", body)

    async def logout(request: Request) -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"nothing at {request.url.path[:80]}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        task = asyncio.create_task(hub.pump(stop))
        try:
            yield
        finally:
            stop.set()
            for q in list(hub.listeners):
                q.put_nowait(None)
            await task

    routes = [
        Route("/", board),
        Route("/events", events),
        Route("/api/state", state),
        Route("/api/health", health),
        Route("/api/alarms/{alarm_id}/ack", acknowledge, methods=["POST"]),
        Route("/api/alarms/{alarm_id}/silence", silence, methods=["POST"]),
        Route("/api/beds/{device_id}", configure_bed, methods=["POST"]),
        Route("/beds/{device_id}", bed_history),
        Route("/handover", handover),
        Route("/handover.csv", handover_csv),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/assets", StaticFiles(directory=ASSETS), name="assets"),
    ]
    middleware = [Middleware(LoopbackHostOnly)] if access.open else []
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={404: not_found, 405: _method_not_allowed})


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, f"{request.method} is not allowed on {request.url.path[:80]}")


def _span(hours: float) -> str:
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:.0f} minutes"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
