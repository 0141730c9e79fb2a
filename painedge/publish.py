"""ZeroMQ out: the publisher thread owns the PUB socket, the replay ROUTER socket and the journal.

Other threads hand it message fields through a queue; it alone stamps the
envelope (seq, boot_id, ts), so seq has no gaps and no races. Alerts and status
changes are written to the journal before they are sent. Sockets are created
and bound inside the thread; a bind failure comes back to the caller of
``start_and_bind`` as an exception, so a port in use stops the daemon before
it runs.

The replay service (the ZeroMQ Guide's "Clone" pattern) answers on a ROUTER
socket beside the PUB. A request is one frame of JSON, at most
``MAX_REQUEST_BYTES``:

    {"op": "snapshot"}                    the open alerts, the last status and the last reading
    {"op": "replay", "since_seq": N}      every journaled alert message with seq > N

The reply is one multipart message: zero or more (topic, payload) pairs, exactly
as published, then ``b"end"`` and ``{"ok": true, "complete_to": S, "count": n}``:
the replay holds every alert message up to seq S. A bad request gets
``b"error"`` and ``{"ok": false, "error": "..."}`` and changes nothing. REQ
and DEALER clients both work.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zmq

from . import messages as M
from .journal import JOURNALED_KINDS, Journal

log = logging.getLogger(__name__)

LINGER_MS = 200  # on close: let queued messages go, but never hang shutdown
MAX_REQUEST_BYTES = 1024  # a replay request is tiny; anything larger gets an error
TRANSPORT_LIMIT_BYTES = 65_536  # libzmq drops peers sending more than this (no reply possible)
REPLAY_LIMIT = 10_000  # messages per reply; ask again from complete_to for more
ZAP_DOMAIN = "painedge"  # the sockets' ZAP domain; the authenticator is configured for exactly this one


class PublishError(OSError):
    """A socket cannot be bound."""


@dataclass(frozen=True)
class Curve:
    """CURVE server keys for both sockets (z85 text)."""

    public: bytes
    secret: bytes


class Publisher(threading.Thread):
    def __init__(self, endpoint: str, device_id: str, heartbeat_s: float,
                 heartbeat_fields: Callable[[], dict[str, Any]], context: zmq.Context | None = None,
                 on_sent: Callable[[str, float, float | None], None] = lambda kind, latency_s, origin: None,
                 replay_endpoint: str | None = None, journal_path: Path | None = None,
                 retention_rows: int = 100_000, retention_days: float = 30.0, curve: Curve | None = None) -> None:
        super().__init__(name="publish", daemon=True)
        self.endpoint, self.device_id, self.heartbeat_s = endpoint, device_id, heartbeat_s
        self.replay_endpoint, self.journal_path = replay_endpoint, journal_path
        self.retention = (retention_rows, retention_days)
        self.curve = curve
        self.heartbeat_fields, self.on_sent = heartbeat_fields, on_sent
        self.context = context or zmq.Context.instance()
        self.boot_id = uuid.uuid4().hex
        self.seq = 0
        self.sent = 0
        self.replies = 0
        self._queue: queue.Queue[tuple[type[M.Envelope], dict[str, Any], float, float | None]] = queue.Queue(maxsize=10_000)
        self._halt = threading.Event()
        self._bound: Future[tuple[str, str | None]] = Future()
        self._journal: Journal | None = None
        self._open_alerts: dict[str, tuple[int, str, str]] = {}
        self._last: dict[str, tuple[int, str, str]] = {}

    def start_and_bind(self, timeout_s: float = 10.0) -> tuple[str, str | None]:
        """Start the thread; return the bound (PUB, replay) endpoints or raise PublishError / JournalError."""
        self.start()
        return self._bound.result(timeout_s)

    def send(self, kind: type[M.Envelope], origin_mono: float | None = None, **fields: Any) -> None:
        """Queue a message (from any thread); the envelope is added when it is sent.

        ``origin_mono``: the time.monotonic() the message's data was captured,
        reported back through ``on_sent`` for the capture-to-publish latency.
        """
        try:
            self._queue.put_nowait((kind, fields, time.perf_counter(), origin_mono))
        except queue.Full:
            log.error("publish queue full: a message of kind %s was dropped", kind.__name__)

    def stop(self) -> None:
        self._halt.set()

    # ---------------------------------------------------------------- inside the thread

    def _socket(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        if self.curve is not None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise PublishError(f"cannot bind {endpoint}: {e.strerror} (another painedge running? "
                               f"change publish.pub / publish.replay or --pub)") from None
        return sock

    def _emit(self, sock: zmq.Socket, kind: type[M.Envelope], fields: dict[str, Any], queued_at: float,
              origin_mono: float | None = None) -> None:
        msg = kind(device_id=self.device_id, seq=self.seq, boot_id=self.boot_id, ts=time.time(), **fields)
        topic, payload = M.encode(msg)
        k = msg.kind  # type: ignore[attr-defined]
        if self._journal is not None:
            self._journal.ensure(self.seq)
            if k in JOURNALED_KINDS:
                self._journal.write(self.seq, k, topic.decode(), payload.decode(), msg.ts)
        sock.send_multipart([topic, payload])
        entry = (self.seq, topic.decode(), payload.decode())
        self._last[k] = entry
        if k == "alert":
            if fields["state"] == "cleared":
                self._open_alerts.pop(fields["alert_id"], None)
            else:
                self._open_alerts[fields["alert_id"]] = entry
        self.seq += 1
        self.sent += 1
        self.on_sent(k, time.perf_counter() - queued_at, origin_mono)

    def _answer(self, router: zmq.Socket) -> None:
        frames = router.recv_multipart()
        ident, rest = frames[0], frames[1:]
        envelope = [ident]
        if rest and rest[0] == b"":  # a REQ client
            envelope.append(b"")
            rest = rest[1:]
        try:
            reply = self._reply(rest)
        except ValueError as e:
            reply = [b"error", json.dumps({"ok": False, "error": str(e)}).encode()]
        router.send_multipart(envelope + reply)
        self.replies += 1

    def _reply(self, frames: list[bytes]) -> list[bytes]:
        if len(frames) != 1:
            raise ValueError(f"expected one request frame, got {len(frames)}")
        if len(frames[0]) > MAX_REQUEST_BYTES:
            raise ValueError(f"request of {len(frames[0])} bytes; the limit is {MAX_REQUEST_BYTES}")
        try:
            req = json.loads(frames[0])
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError('request is not JSON; send {"op": "snapshot"} or {"op": "replay", "since_seq": N}') from None
        if not isinstance(req, dict) or req.get("op") not in ("snapshot", "replay"):
            raise ValueError('unknown request; send {"op": "snapshot"} or {"op": "replay", "since_seq": N}')
        if set(req) - {"op", "since_seq"}:
            raise ValueError(f"unknown fields {sorted(set(req) - {'op', 'since_seq'})}")
        if req["op"] == "snapshot":
            entries = sorted([*self._open_alerts.values(), *(self._last[k] for k in ("status", "reading") if k in self._last)])
        else:
            since = req.get("since_seq")
            if not isinstance(since, int) or isinstance(since, bool) or since < -1:
                raise ValueError("since_seq must be an integer >= -1")
            entries = self._journal.since(since, ("alert",), REPLAY_LIMIT) if self._journal else []
        complete_to = self.seq - 1 if len(entries) < REPLAY_LIMIT else entries[-1][0]
        out: list[bytes] = []
        for _seq, topic, payload in entries:
            out += [topic.encode(), payload.encode()]
        return out + [b"end", json.dumps({"ok": True, "complete_to": complete_to, "count": len(entries)}).encode()]

    def run(self) -> None:
        router = None
        try:
            if self.journal_path is not None:
                self._journal = Journal(self.journal_path, *self.retention)
                self.seq = self._journal.start_seq()
                for kind in ("status",):
                    last = self._journal.last(kind)
                    if last:
                        self._last[kind] = last
            sock = self._socket(zmq.PUB, self.endpoint)
            sock.setsockopt(zmq.SNDHWM, 10_000)
            if self.replay_endpoint:
                router = self._socket(zmq.ROUTER, self.replay_endpoint)
                router.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_LIMIT_BYTES)
                router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        except Exception as e:  # noqa: BLE001  (handed to the starting thread)
            if self._journal is not None:
                self._journal.close()
            self._bound.set_exception(e)
            return
        self._bound.set_result((sock.getsockopt_string(zmq.LAST_ENDPOINT),
                                router.getsockopt_string(zmq.LAST_ENDPOINT) if router is not None else None))
        next_beat = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if now >= next_beat:
                    self._emit(sock, M.Heartbeat, self.heartbeat_fields(), time.perf_counter())
                    next_beat = now + self.heartbeat_s
                if router is not None:
                    while router.poll(0):
                        self._answer(router)
                try:
                    kind, fields, t, origin = self._queue.get(timeout=max(0.0, min(0.01, next_beat - now)))
                except queue.Empty:
                    if self._halt.is_set():
                        break
                    continue
                self._emit(sock, kind, fields, t, origin)
        except Exception:  # noqa: BLE001
            log.exception("publisher failed")
        finally:
            sock.close(LINGER_MS)
            if router is not None:
                router.close(0)
            if self._journal is not None:
                self._journal.close()
