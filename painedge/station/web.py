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
``{"ok": false, "error": ...}`` with a 4xx) and changes nothing. Who may do what
is access.py; the pages' HTML is pages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..logsetup import fields
from ..scales import SCALES
from .access import COOKIE, Access, LoopbackHostOnly, Refused, json_error, read_form, same_origin
from .alarms import AlarmError
from .board import alarm_view
from . import pages
from .pages import (bed_settings_form, board_page, error_page, handover_page, history_page, login_page,
                    parse_time)
from .plot import history_svg
from .settings import StationSettings
from .store import Episode

log = logging.getLogger("painedge.station.web")
audit_log = logging.getLogger("painedge.station.audit")

ASSETS = Path(__file__).parent / "assets"


def create_app(hub: Any) -> Starlette:
    """The ASGI app around a ``service.Hub`` (board, store, sinks)."""
    settings: StationSettings = hub.settings
    access = Access(settings)
    stop = asyncio.Event()

    def guarded(action: str, json_errors: bool = True) -> Callable:
        def wrap(fn: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                try:
                    if request.method == "POST" and not same_origin(request):
                        raise Refused(403, "the form came from another site")
                    account = access.account(request, action)
                    return await fn(request, account)
                except Refused as r:
                    if r.status == 401 and not json_errors:
                        return RedirectResponse("/login", status_code=303)
                    return json_error(r.status, r.message) if json_errors else error_page(r.message, r.status)
                except Exception:  # the station never dies from a request
                    log.exception("request %s %s failed", request.method, request.url.path)
                    return json_error(500, "the station could not handle this request (see its log)")
            return endpoint
        return wrap

    # ------------------------------------------------------------ board

    @guarded("view", json_errors=False)
    async def board(request: Request, account: str) -> Response:
        return board_page(settings.stale_after_s, settings.ack_timeout_s, None if access.open else account)

    @guarded("view")
    async def state(request: Request, account: str) -> Response:
        now = hub.board.clock()
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

        async def stream():
            now = hub.board.clock()
            first = {"now": now, "stale_after_s": settings.stale_after_s, "beds": hub.board.bed_views(now)}
            yield f"event: beds\ndata: {json.dumps(first)}\n\n"
            yield f"event: alarms\ndata: {json.dumps({'now': now, 'alarms': hub.board.open_alarms(now)})}\n\n"
            try:
                while not stop.is_set():
                    try:
                        item = await asyncio.wait_for(q.get(), 1.0)
                    except asyncio.TimeoutError:
                        yield f"event: tick\ndata: {json.dumps({'now': hub.board.clock()})}\n\n"
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

    def record(request: Request, account: str, action: str, changes: list, now: float, by: str, note: str) -> str:
        """Alarm ``changes`` and their audit row, in one transaction; the client's address."""
        client = request.client.host if request.client else "?"
        hub.store.begin()
        try:
            hub.board.record(changes)
            hub.store.audit(now, account, action, changes[0].alarm, by, note, client)
        finally:
            hub.store.commit()
        return client

    @guarded("acknowledge")
    async def acknowledge(request: Request, account: str) -> Response:
        alarm_id = request.path_params["alarm_id"]
        form = await read_form(request, {"name", "note"})  # name: the person (an account may be shared)
        now = hub.board.clock()
        changes = _changed(lambda: hub.board.alarms.acknowledge(alarm_id, form.get("name", ""), form.get("note", ""),
                                                                 now))
        alarm = changes[0].alarm
        client = record(request, account, "acknowledge", changes, now, alarm.acked_by, alarm.ack_note)
        audit_log.info("acknowledged alarm %s on %s by %r (account %s, from %s)%s", alarm.alarm_id, alarm.device_id,
                       alarm.acked_by, account, client, f": {alarm.ack_note}" if alarm.ack_note else "",
                       extra=fields("ack", alarm_id=alarm.alarm_id, device=alarm.device_id, account=account))
        hub.route(changes)
        return JSONResponse({"ok": True, "alarm": alarm_view(alarm, now)})

    @guarded("acknowledge")
    async def silence(request: Request, account: str) -> Response:
        alarm_id = request.path_params["alarm_id"]
        form = await read_form(request, {"minutes"})
        try:
            minutes = float(form.get("minutes", ""))
        except ValueError:
            return json_error(400, "minutes must be a number, 1 to 60")
        now = hub.board.clock()
        changes = _changed(lambda: hub.board.alarms.silence(alarm_id, minutes, account, now))
        client = record(request, account, "silence", changes, now, "", f"{minutes:g} min")
        audit_log.info("silenced alarm %s for %g min (account %s, from %s)", alarm_id, minutes, account, client,
                       extra=fields("silence", alarm_id=alarm_id, account=account))
        hub.route(changes)
        return JSONResponse({"ok": True})

    @guarded("configure")
    async def configure_bed(request: Request, account: str) -> Response:
        device_id = request.path_params["device_id"]
        form = await read_form(request, {"name", "scale"})
        name = form.get("name", "").strip()
        scale = form.get("scale", "").strip()
        if not name or len(name) > 40:
            return json_error(400, "a bed name is 1 to 40 characters")
        if scale not in SCALES:
            return json_error(400, f"unknown scale {scale[:20]!r}; use one of {', '.join(SCALES)}")
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
        now = hub.board.clock()
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
        admin = ""
        if access.may(request, "configure"):
            admin = bed_settings_form(device_id, name, bed.scale if bed else settings.bed(device_id).scale)
        return history_page(device_id, name, hours, svg, episodes, now, settings.reading_interval_s, admin)

    def _handover(request: Request) -> tuple[list[Episode], dict[str, str], float, float, float]:
        """What the handover page and its CSV show: the pain episodes in the range asked for (``from``, ``to``;
        default the last 12 hours), the beds' names, the range and now."""
        now = hub.board.clock()
        until = parse_time(request.query_params.get("to"), now)
        since = parse_time(request.query_params.get("from"), until - 12 * 3600)
        if since >= until:
            raise Refused(400, "the range must start before it ends")
        names = {d: b.name for d, b in hub.board.beds.items()}
        return hub.store.episodes(since, until), names, since, until, now

    @guarded("view", json_errors=False)
    async def handover(request: Request, account: str) -> Response:
        episodes, names, since, until, now = _handover(request)
        return handover_page(episodes, names, since, until, now)

    @guarded("view")
    async def handover_csv(request: Request, account: str) -> Response:
        episodes, names, _since, _until, now = _handover(request)
        return Response(pages.handover_csv(episodes, names, now), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="handover.csv"'})

    # ------------------------------------------------------------ login

    async def login(request: Request) -> Response:
        message = ""
        if request.method == "POST":
            if not same_origin(request):
                return json_error(403, "the form came from another site")
            try:
                form = await read_form(request, {"token"})
            except Refused as r:
                return json_error(r.status, r.message)
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
        return login_page(message)

    async def logout(request: Request) -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    async def not_found(request: Request, exc: Exception) -> Response:
        return json_error(404, f"nothing at {request.url.path[:80]}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
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


def _changed(change: Callable[[], list]) -> list:
    """The alarm changes ``change`` makes; Refused for an alarm not known (404) or a change it cannot take (400)."""
    try:
        return change()
    except AlarmError as e:
        raise Refused(404 if str(e).startswith("no alarm") else 400, str(e)) from None


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return json_error(405, f"{request.method} is not allowed on {request.url.path[:80]}")
