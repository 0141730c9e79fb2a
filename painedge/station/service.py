"""Wiring: the ZeroMQ thread, the event-loop pump that owns the board and the store, the sinks, uvicorn.

    devices --ZeroMQ--> [receiver thread: Station client] --queue--> [event loop: pump -> Board, Store, SSE]
                                                                                   └--> sinks (a thread each)

The receiver thread owns every ZeroMQ socket; the event loop owns the board,
the alarms and the SQLite connection, so web requests and device messages are
applied one at a time with no locks.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import messages as M
from ..client import ClientKeys, Station
from ..config import ConfigError
from ..logsetup import fields
from .alarms import Change
from .board import Board
from .settings import StationSettings, check_exposure
from .sinks import LogSink, Outgoing, Sink, Sinks
from .store import Store

log = logging.getLogger("painedge.station")

PUMP_INTERVAL_S = 0.05  # device message to board, and the alarm clock's resolution
PUSH_BEDS_INTERVAL_S = 1.0  # bed tiles are pushed to browsers at most this often (alarms at once)
QUEUE_SIZE = 50_000
POSITIONS_EVERY_S = 2.0  # how often the receiver's stream positions are saved (for resuming after a restart)
POSITIONS = "positions"


class Receiver:
    """The thread that owns the ZeroMQ sockets: device messages onto a queue, nothing else."""

    def __init__(self, settings: StationSettings, out: queue.Queue, *, keys: ClientKeys | None,
                 resume: dict[str, tuple[str, int]] | None = None) -> None:
        """``keys``: the CURVE keys loaded from the settings, or None for plaintext (named by every caller)."""
        self.settings, self.out, self.keys = settings, out, keys
        self.resume = resume or {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="station-receiver", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()  # the loop sees it after each read (0.2 s) or replay request (3 s at most)
        self.thread.join(3)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._receive()
            except Exception:  # the receiver must outlive any surprise; sockets are made anew
                log.exception("the device receiver failed; starting it again in 1 s")
                self.stop_event.wait(1.0)

    def _receive(self) -> None:
        # resume: where the station was in each device's stream when it last stopped, so alerts raised *and
        # cleared* while it was down come in through the replay service instead of leaving alarms open.
        with Station(self.settings.connect, keys=self.keys, resume=self.resume or None) as station:
            last_saved = time.monotonic()
            while not self.stop_event.is_set():
                for msg in station.messages(for_s=0.2):
                    self._put(msg)
                for err in station.errors:
                    log.warning("replay: %s", err, extra=fields("replay_error"))
                station.errors.clear()
                if time.monotonic() - last_saved >= POSITIONS_EVERY_S:
                    last_saved = time.monotonic()
                    self.resume = station.positions()
                    try:
                        self.out.put_nowait((POSITIONS, self.resume))
                    except queue.Full:
                        pass  # saved next time

    def _put(self, msg: M.Reading | M.Alert | M.Heartbeat | M.Status) -> None:
        item = (msg, time.time())
        if msg.kind in (M.Kind.ALERT, M.Kind.STATUS):
            # Never drop these: the client has marked the seq seen, so no replay would bring it back.
            # Wait for the board's loop as long as this receiver runs.
            while True:
                try:
                    self.out.put(item, timeout=1.0)
                    return
                except queue.Full:
                    if self.stop_event.is_set():
                        self.dropped += 1
                        return
        try:
            self.out.put_nowait(item)
        except queue.Full:
            self.dropped += 1


@dataclass
class Hub:
    """The event loop's side: board, store, sinks and the browsers listening for events."""

    settings: StationSettings
    board: Board
    store: Store
    sinks: Sinks
    inbox: queue.Queue
    listeners: set[asyncio.Queue] = field(default_factory=set)
    applied: int = 0
    _last_obs: dict[str, float] = field(default_factory=dict)
    receiver: Receiver | None = None

    def receiver_dropped(self) -> int:
        return 0 if self.receiver is None else self.receiver.dropped

    def broadcast(self, event: str, data: Any) -> None:
        for q in list(self.listeners):
            if q.qsize() > 100:  # a browser that stopped reading: drop it rather than grow
                self.listeners.discard(q)
                q.put_nowait(None)
                continue
            q.put_nowait((event, data))

    def route(self, changes: list[Change]) -> None:
        for c in changes:
            bed = self.board.bed(c.alarm.device_id)
            self.sinks.send(Outgoing("alarm", c.alarm.device_id, bed.name, c.ts, event=c.event, alarm=c.alarm,
                                     by=c.by, level=c.alarm.level, level_name=c.alarm.level_name,
                                     explanation=c.alarm.explanation))

    def drain(self, now: float) -> int:
        n = 0
        self.store.begin()
        try:
            while n < 5000:
                try:
                    msg, payload = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if msg == POSITIONS:
                    self.store.save_positions(payload)
                    continue
                n += 1
                try:
                    changes = self.board.apply(msg, self.board.clock())
                    self.route(changes)
                    if isinstance(msg, M.Reading) and self._observation_due(msg):
                        bed = self.board.bed(msg.device_id)
                        view = bed.view(now, self.settings.stale_after_s)
                        self.sinks.send(Outgoing("observation", msg.device_id, bed.name, msg.ts,
                                                 level=msg.smoothed_level, level_name=msg.smoothed_level_name,
                                                 pspi=msg.cues.pspi, explanation=msg.explanation,
                                                 face_item=view["face_item"]))
                except Exception:  # one bad message must never take the station down
                    log.exception("could not apply a message from %s", getattr(msg, "device_id", "?"))
            self.route(self.board.tick(now))
        finally:
            self.store.commit()
        self.applied += n
        return n

    def _observation_due(self, msg: M.Reading) -> bool:
        last = self._last_obs.get(msg.device_id)
        if last is None or msg.ts - last >= self.settings.reading_interval_s:
            self._last_obs[msg.device_id] = msg.ts
            return True
        return False

    async def pump(self, stop: asyncio.Event) -> None:
        last_beds = 0.0
        while not stop.is_set():
            now = self.board.clock()
            self.drain(now)
            if self.board.alarms_dirty:
                self.board.alarms_dirty = False
                self.broadcast("alarms", {"now": now, "alarms": self.board.open_alarms(now)})
            if now - last_beds >= PUSH_BEDS_INTERVAL_S:
                last_beds = now
                dirty = sorted(self.board.dirty_beds)
                self.board.dirty_beds.clear()
                self.broadcast("beds", {"now": now, "stale_after_s": self.settings.stale_after_s,
                                        "beds": [self.board.beds[d].view(now, self.settings.stale_after_s)
                                                 for d in dirty]})
            try:
                await asyncio.wait_for(stop.wait(), PUMP_INTERVAL_S)
            except asyncio.TimeoutError:
                pass


def build_sinks(settings: StationSettings) -> Sinks:
    sinks: list[Sink] = [LogSink()]
    if settings.hl7 is not None:
        from .hl7sink import Hl7Sink

        sinks.append(Hl7Sink(settings.hl7))
    if settings.fhir is not None:
        from .fhirsink import FhirSink

        sinks.append(FhirSink(settings.fhir))
    return Sinks(sinks)


def run(settings: StationSettings) -> int:
    """The station until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn

    from .web import create_app

    exposure = check_exposure(settings)
    if not settings.connect:
        raise ConfigError("no devices: give --connect PUB[,REPLAY] (repeatable) or connect = [...] in the config")
    keys = ClientKeys.both_or_neither(settings.client_key, settings.server_key)  # checked before anything opens
    store = Store(settings.db, settings.reading_interval_s)
    inbox: queue.Queue = queue.Queue(QUEUE_SIZE)
    connected = {spec.split(",")[0] for spec in settings.connect}
    receiver = Receiver(settings, inbox, keys=keys, resume={k: v for k, v in store.positions().items() if k in connected})
    sinks = build_sinks(settings)
    hub = Hub(settings, Board(settings, store), store, sinks, inbox, receiver=receiver)
    app = create_app(hub)
    host, port = settings.host_port
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
                            ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    log.info("station: %s; %d devices; history in %s", exposure, len(settings.connect), settings.db,
             extra=fields("station_start"))
    sinks.start()
    receiver.start()
    try:
        server.run()
    finally:
        receiver.stop()
        sinks.stop()
        store.close()
    return 0
