"""Outputs: a stamper gives each message its envelope, the journal keeps it, sinks send it.

    any thread --send()--> Publisher thread: Stamper (seq, boot_id, ts) -> Journal (alerts, status)
                                           -> each sink's own queue -> SinkThread -> ZeroMQ PUB (, MQTT, ...)
                           (same thread)   <- replay ROUTER requests, answered from the journal

The publisher thread alone stamps the envelope, so seq has no gaps and no
races. Alerts and status changes are written to the journal (synchronously,
in that thread) *before* any sink is handed them: a sink never sends what a
crash could lose. Every sink then has its own thread and queue, so a slow one
(a hospital bridge, later) cannot stall the others; the ZeroMQ PUB socket
never blocks (messages beyond its high-water mark are dropped for that
subscriber, which its seq tells it).

Sockets are created and bound inside the thread that uses them; a bind failure
comes back to the caller of ``start_and_bind`` as an exception, so a port in
use stops the daemon before it runs. If a thread ever fails after that, it
says so (``unhealthy``) and stops: the daemon then exits non-zero so that
systemd restarts it, rather than running on with nothing published.

Publishing goes first: each turn of the loop sends the heartbeat when due and
every queued message before the replay service answers at most
``replay.REQUESTS_PER_TURN`` requests; see ``painedge.replay``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import zmq
from pydantic import ValidationError

from . import messages as M
from .journal import JOURNALED_KINDS, Entry, Journal, OpenAlert
from .replay import ROUTER_OPTIONS, ReplayEndpoint, ReplayServer
from .sockets import LINGER_MS, ZAP_DOMAIN, Curve, PublishError, bind, bound_endpoint

__all__ = ["ZAP_DOMAIN", "Curve", "PublishError", "Publisher", "Sink", "SinkThread", "Stamped", "Stamper", "ZmqPub"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # messages waiting for the publisher thread, and for each sink
PUB_HWM = 10_000
BIND_TIMEOUT_S = 10.0

OnSent = Callable[[M.Kind, float, "float | None"], None]  # (kind, seconds since queued, origin time.monotonic())


@dataclass(frozen=True)
class JournalSpec:
    """Where the publisher journals and how much it keeps (``path`` None: in memory, nothing survives a stop)."""

    path: Path | None = None
    retention_rows: int = 100_000  # journal rows kept, oldest removed first ([state] retention_rows)
    retention_days: float = 30.0  # and none older than this ([state] retention_days)


@dataclass(frozen=True)
class Outgoing:
    """Message fields handed to the publisher thread; the envelope comes later."""

    kind: type[M.AnyMessage]
    fields: dict[str, Any]
    queued_at: float  # time.perf_counter()
    origin_mono: float | None = None  # when its data was captured, for the capture-to-publish latency


@dataclass(frozen=True)
class Stamped:
    """A message with its envelope, encoded: the two frames exactly as every sink sends them."""

    kind: M.Kind
    seq: int
    topic: bytes
    payload: bytes
    ts: float
    queued_at: float
    origin_mono: float | None = None

    @property
    def entry(self) -> Entry:
        return self.seq, self.topic.decode(), self.payload.decode()


class Stamper:
    """seq, boot_id and ts for each message; ``reserve(seq)`` is called before a seq is used."""

    def __init__(self, device_id: str, first_seq: int, reserve: Callable[[int], None],
                 boot_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.device_id, self.next_seq, self.reserve, self.clock = device_id, first_seq, reserve, clock
        self.boot_id = boot_id or uuid.uuid4().hex
        self.invalid = 0  # messages that could not be built (dropped, logged)

    def stamp(self, out: Outgoing) -> Stamped | None:
        """The message built and encoded; None (logged) when its fields are invalid: a bug upstream
        must cost this one message, not the publisher."""
        try:
            msg = out.kind(device_id=self.device_id, seq=self.next_seq, boot_id=self.boot_id, ts=self.clock(),
                           **out.fields)
        except ValidationError as e:
            self.invalid += 1
            log.error("a %s message could not be built and was dropped: %s", out.kind.__name__,
                      "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:3]))
            return None
        self.reserve(self.next_seq)
        topic, payload = M.encode(msg)
        self.next_seq += 1
        return Stamped(M.Kind(msg.kind), msg.seq, topic, payload, msg.ts, out.queued_at, out.origin_mono)


def offer(q: queue.Queue[Any], item: Any) -> bool:
    """Queue ``item`` unless ``q`` is full (False): no producer ever waits for a consumer."""
    try:
        q.put_nowait(item)
    except queue.Full:
        return False
    return True


class Sink(Protocol):
    """An output. ``open`` and ``send`` run in the sink's own thread (it owns its sockets)."""

    name: str

    def open(self) -> str:
        """Connect or bind; returns where (for the log). Raises on what the user must fix."""

    def send(self, msg: Stamped) -> None: ...

    def close(self) -> None: ...


class ZmqPub:
    """The ZeroMQ PUB socket: two frames per message, the topic then the JSON."""

    name = "pub"

    def __init__(self, endpoint: str, curve: Curve | None = None, context: zmq.Context | None = None) -> None:
        self.endpoint, self.curve = endpoint, curve
        self.context = context or zmq.Context.instance()
        self.sock: zmq.Socket | None = None

    def open(self) -> str:
        self.sock = bind(self.context, zmq.PUB, self.endpoint, self.curve, {zmq.SNDHWM: PUB_HWM})
        return bound_endpoint(self.sock)

    def send(self, msg: Stamped) -> None:
        assert self.sock is not None
        self.sock.send_multipart([msg.topic, msg.payload])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(LINGER_MS)


class _Worker(threading.Thread):
    """A thread with a stop flag, a failure it reports, and a proof of progress for the watchdog."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.failed: BaseException | None = None  # why the thread stopped, if it failed after starting
        self.turn_mono = time.monotonic()  # when its loop last went round
        self._halt = threading.Event()
        self._bound: Future[Any] = Future()

    def stop(self) -> None:
        self._halt.set()

    def unhealthy(self, now: float, stale_after_s: float) -> str:
        """Why this thread cannot be relied on ('' while alive, not failed, and going round)."""
        if self.failed is not None:
            return f"the {self.name} thread failed: {self.failed!r}"
        if not self.is_alive():
            return f"the {self.name} thread stopped"
        if now - self.turn_mono >= stale_after_s:
            return f"the {self.name} thread is stuck for {now - self.turn_mono:.1f} s"
        return ""


class SinkThread(_Worker):
    """One sink, its own bounded queue and thread: a slow sink drops its own messages, nobody else's."""

    def __init__(self, sink: Sink, on_sent: OnSent | None = None) -> None:
        super().__init__(f"sink-{sink.name}")
        self.sink, self.on_sent = sink, on_sent
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[Stamped] = queue.Queue(maxsize=QUEUE_SIZE)

    def start_and_open(self, timeout_s: float = BIND_TIMEOUT_S) -> str:
        self.start()
        return self._bound.result(timeout_s)

    def put(self, msg: Stamped) -> None:
        if not offer(self._queue, msg):
            self.dropped += 1
            log.error("sink %s is behind: a %s message was dropped for it", self.sink.name, msg.kind)

    def run(self) -> None:
        try:
            self._bound.set_result(self.sink.open())
        except Exception as e:  # noqa: BLE001 - handed to the starting thread
            self.sink.close()
            self._bound.set_exception(e)
            return
        try:
            while True:
                self.turn_mono = time.monotonic()
                try:
                    msg = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self._halt.is_set():
                        break  # everything handed over has gone out
                    continue
                self.sink.send(msg)
                self.sent += 1
                if self.on_sent is not None:
                    self.on_sent(msg.kind, time.perf_counter() - msg.queued_at, msg.origin_mono)
        except Exception as e:  # reported to the daemon, which exits non-zero
            self.failed = e
            log.exception("sink %s failed; nothing more goes out through it", self.sink.name)
        finally:
            self.sink.close()


class Bound(NamedTuple):
    """Where the publisher is, once started, and the open alerts its journal held."""

    pub: str
    replay: str | None
    open_alerts: list[OpenAlert]


class Publisher(_Worker):
    """The publisher thread: stamps, journals, hands to the sinks, serves the replay ROUTER."""

    def __init__(self, sinks: list[SinkThread], device_id: str, heartbeat_s: float,
                 heartbeat_fields: Callable[[], dict[str, Any]], journal: JournalSpec = JournalSpec(),
                 replay_endpoint: str | None = None, curve: Curve | None = None,
                 context: zmq.Context | None = None) -> None:
        super().__init__("publish")
        self.sinks, self.device_id, self.heartbeat_s = sinks, device_id, heartbeat_s
        self.heartbeat_fields = heartbeat_fields
        self.journal, self.replay_endpoint, self.curve = journal, replay_endpoint, curve
        self.context = context or zmq.Context.instance()
        self.stamper: Stamper | None = None  # made in the thread, from the journal's seq
        self.replay: ReplayEndpoint | None = None
        self._queue: queue.Queue[Outgoing] = queue.Queue(maxsize=QUEUE_SIZE)

    @classmethod
    def with_pub(cls, pub_endpoint: str, device_id: str, heartbeat_s: float,
                 heartbeat_fields: Callable[[], dict[str, Any]], on_sent: OnSent | None = None,
                 context: zmq.Context | None = None, **kw: Any) -> Publisher:
        """The daemon's publisher: one sink, the ZeroMQ PUB socket."""
        sinks = [SinkThread(ZmqPub(pub_endpoint, kw.get("curve"), context), on_sent)]
        return cls(sinks, device_id, heartbeat_s, heartbeat_fields, context=context, **kw)

    @property
    def sent(self) -> int:
        return self.sinks[0].sent if self.sinks else 0

    @property
    def invalid(self) -> int:
        return self.stamper.invalid if self.stamper is not None else 0

    def start_and_bind(self, timeout_s: float = BIND_TIMEOUT_S) -> Bound:
        """Start the sinks and the thread; where they bound, or PublishError / JournalError."""
        opened: list[str] = []
        try:
            for sink in self.sinks:
                opened.append(sink.start_and_open(timeout_s))
            self.start()
            replay_at, open_alerts = self._bound.result(timeout_s)
        except BaseException:
            self.stop()
            raise
        return Bound(opened[0] if opened else "", replay_at, open_alerts)

    def send(self, kind: type[M.AnyMessage], origin_mono: float | None = None, **fields: Any) -> None:
        """Queue a message (from any thread); the envelope is added when it is sent."""
        if not offer(self._queue, Outgoing(kind, fields, time.perf_counter(), origin_mono)):
            log.error("publish queue full: a message of kind %s was dropped", kind.__name__)

    def stop(self) -> None:
        """Stop the thread; it hands on what is queued, then stops the sinks (and they send what they hold)."""
        super().stop()
        if not self.is_alive():  # never started, or gone: the thread itself stops them on its way out
            self._stop_sinks()

    def join(self, timeout: float | None = None) -> None:
        if self.ident is not None:
            super().join(timeout)
        for sink in self.sinks:
            if sink.ident is not None:
                sink.join(timeout)

    def unhealthy(self, now: float, stale_after_s: float) -> str:
        """Why nothing may be published any more ('' while this thread and every sink are fine)."""
        for worker in (self, *self.sinks):
            why = _Worker.unhealthy(worker, now, stale_after_s)
            if why:
                return why
        return ""

    # ---------------------------------------------------------------- inside the thread

    def _dispatch(self, journal: Journal, out: Outgoing) -> None:
        assert self.stamper is not None
        msg = self.stamper.stamp(out)
        if msg is None:
            return
        if msg.kind in JOURNALED_KINDS:
            journal.write(msg.seq, msg.kind, msg.topic.decode(), msg.payload.decode(), msg.ts)
        elif msg.kind == M.Kind.READING:
            journal.note_reading(msg.entry)
        for sink in self.sinks:
            sink.put(msg)

    def _open(self) -> tuple[Journal, ReplayEndpoint | None]:
        spec = self.journal
        journal = Journal(spec.path or ":memory:", self.device_id, spec.retention_rows, spec.retention_days)
        try:
            stamper = self.stamper = Stamper(self.device_id, journal.start_seq(), journal.ensure)
            if self.replay_endpoint:
                router = bind(self.context, zmq.ROUTER, self.replay_endpoint, self.curve, ROUTER_OPTIONS)
                self.replay = ReplayEndpoint(router, ReplayServer(journal, lambda: stamper.next_seq))
        except BaseException:
            journal.close()
            raise
        return journal, self.replay

    def run(self) -> None:
        try:
            journal, replay = self._open()
        except Exception as e:  # noqa: BLE001 - handed to the starting thread
            self._stop_sinks()
            self._bound.set_exception(e)
            return
        self._bound.set_result((bound_endpoint(replay.router) if replay else None, journal.open_alert_values()))
        next_beat = time.monotonic()
        try:
            while True:
                now = self.turn_mono = time.monotonic()
                if now >= next_beat:
                    self._dispatch(journal, Outgoing(M.Heartbeat, self.heartbeat_fields(), time.perf_counter()))
                    next_beat = now + self.heartbeat_s
                while True:  # everything queued goes out before any request is answered
                    try:
                        self._dispatch(journal, self._queue.get_nowait())
                    except queue.Empty:
                        break
                if replay is not None:
                    replay.answer_some(now)
                if self._halt.is_set():
                    break
                try:
                    out = self._queue.get(timeout=max(0.0, min(0.01, next_beat - now)))
                except queue.Empty:
                    continue
                self._dispatch(journal, out)
        except Exception as e:  # reported to the daemon, which exits non-zero
            self.failed = e
            log.exception("publisher failed; nothing more can be published or journaled")
        finally:
            if replay is not None:
                replay.close()
            journal.close()
            self._stop_sinks()

    def _stop_sinks(self) -> None:
        for sink in self.sinks:
            sink.stop()
