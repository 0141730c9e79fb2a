"""ZeroMQ out: the publisher thread owns the PUB socket, the replay ROUTER socket and the journal.

Other threads hand it message fields through a queue; it alone stamps the
envelope (seq, boot_id, ts), so seq has no gaps and no races. Alerts and status
changes are written to the journal before they are sent. Sockets are created
and bound inside the thread; a bind failure comes back to the caller of
``start_and_bind`` as an exception, so a port in use stops the daemon before
it runs. If the thread ever fails after that, it says so (``failed``) and
stops: the daemon then exits non-zero so that systemd restarts it, rather than
running on with nothing published.

The replay service (the ZeroMQ Guide's "Clone" pattern) answers on a ROUTER
socket beside the PUB. A request is one frame of JSON, at most
``MAX_REQUEST_BYTES``:

    {"op": "snapshot"}                    the open alerts, the last status and the last reading
    {"op": "replay", "since_seq": N}      every journaled alert message with seq > N (at most REPLAY_LIMIT)

The reply is one multipart message: zero or more (topic, payload) pairs, exactly
as published, then ``b"end"`` and ``{"ok": true, "complete_to": S, "count": n}``:
the replay holds every alert message up to seq S (ask again from S for more).
A bad request gets ``b"error"`` and ``{"ok": false, "error": "..."}`` and
changes nothing; no request can raise out of the reply path. REQ and DEALER
clients both work.

Publishing goes first: each turn of the loop sends the heartbeat when due and
every queued message before it answers at most ``REQUESTS_PER_TURN`` requests
(within ``REQUEST_TIME_PER_TURN_S``): that per-turn limit is what keeps heartbeats and alerts on
time however many peers ask. Each connection also gets at most ``PEER_REQUESTS_PER_S`` (a burst of
``PEER_REQUEST_BURST``; over it, a short error): a courtesy between well-behaved clients, since a
ROUTER knows connections, not hosts, and a client can reconnect.
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
from pydantic import ValidationError

from . import messages as M
from .journal import JOURNALED_KINDS, SEQ_MAX, Entry, Journal

log = logging.getLogger(__name__)

LINGER_MS = 200  # on close: let queued messages go, but never hang shutdown
MAX_REQUEST_BYTES = 1024  # a replay request is tiny; anything larger gets an error
TRANSPORT_LIMIT_BYTES = 65_536  # libzmq drops peers sending more than this (no reply possible)
REPLAY_LIMIT = 1_000  # messages per reply (about 0.7 MB); ask again from complete_to for more
REQUESTS_PER_TURN = 8  # replay requests answered per turn of the publisher loop, after publishing ...
REQUEST_TIME_PER_TURN_S = 0.05  # ... within this time, so a reading waits at most about this long for a flood
PEER_REQUESTS_PER_S = 20.0  # a station asks at first contact, on a gap and on a restart: a few a minute
PEER_REQUEST_BURST = 40.0
_MAX_PEERS_TRACKED = 4096
ZAP_DOMAIN = "painedge"  # the sockets' ZAP domain; the authenticator is configured for exactly this one
_USAGE = 'send {"op": "snapshot"} or {"op": "replay", "since_seq": N}'


class PublishError(OSError):
    """A socket cannot be bound."""


class RequestError(ValueError):
    """A replay request that gets an error reply (the text is sent to the peer)."""


@dataclass(frozen=True)
class Curve:
    """CURVE server keys for both sockets (z85 text)."""

    public: bytes
    secret: bytes


@dataclass(frozen=True)
class Request:
    op: str  # "snapshot" | "replay"
    since_seq: int = -1


def parse_request(frames: list[bytes]) -> Request:
    """A replay request from its frames; RequestError (never anything else) when it is not one."""
    if len(frames) != 1:
        raise RequestError(f"expected one request frame, got {len(frames)}")
    raw = frames[0]
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(f"request of {len(raw)} bytes; the limit is {MAX_REQUEST_BYTES}")
    # A valid request is a flat object: refuse nesting before the parser recurses into it.
    if raw.count(b"[") + raw.count(b"{") > 1:
        raise RequestError(f"request is not a flat JSON object; {_USAGE}")
    try:
        req = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError(f"request is not JSON; {_USAGE}") from None
    if not isinstance(req, dict) or req.get("op") not in ("snapshot", "replay"):
        raise RequestError(f"unknown request; {_USAGE}")
    extra = set(req) - {"op", "since_seq"}
    if extra:
        raise RequestError(f"unknown fields {sorted(extra)[:5]}")
    if req["op"] == "snapshot":
        if "since_seq" in req:
            raise RequestError("a snapshot takes no since_seq")
        return Request("snapshot")
    since = req.get("since_seq")
    if not isinstance(since, int) or isinstance(since, bool) or not -1 <= since <= SEQ_MAX:
        raise RequestError(f"since_seq must be an integer from -1 to {SEQ_MAX}")
    return Request("replay", since)


def error_reply(text: str) -> list[bytes]:
    return [b"error", json.dumps({"ok": False, "error": text}).encode()]


class ReplayServer:
    """The replay service's answers: a function of the request, the journal and the last reading.

    ``reply`` never raises: a request it cannot serve gets an error reply.
    """

    def __init__(self, journal: Journal, next_seq: Callable[[], int], limit: int = REPLAY_LIMIT) -> None:
        self.journal, self.next_seq, self.limit = journal, next_seq, limit
        self.last_reading: Entry | None = None
        self.errors = 0

    def reply(self, frames: list[bytes]) -> list[bytes]:
        try:
            return self._reply(parse_request(frames))
        except RequestError as e:
            self.errors += 1
            return error_reply(str(e))
        except Exception:  # noqa: BLE001  (a request must never take the publisher down)
            self.errors += 1
            log.exception("replay request could not be answered")
            return error_reply("internal error; the request was not served")

    def _reply(self, req: Request) -> list[bytes]:
        if req.op == "snapshot":
            status = self.journal.last_status()
            entries = sorted([*self.journal.open_alerts(), *(e for e in (status, self.last_reading) if e)])
            complete_to = self.next_seq() - 1
        else:
            entries = self.journal.since(req.since_seq, ("alert",), self.limit)
            complete_to = self.next_seq() - 1 if len(entries) < self.limit else entries[-1][0]
        out: list[bytes] = []
        for _seq, topic, payload in entries:
            out += [topic.encode(), payload.encode()]
        return out + [b"end", json.dumps({"ok": True, "complete_to": complete_to, "count": len(entries)}).encode()]


class RequestBudget:
    """Token buckets per peer: at most ``rate_per_s`` requests a second each, bursts up to ``burst``."""

    def __init__(self, rate_per_s: float = PEER_REQUESTS_PER_S, burst: float = PEER_REQUEST_BURST,
                 max_peers: int = _MAX_PEERS_TRACKED) -> None:
        self.rate_per_s, self.burst, self.max_peers = rate_per_s, burst, max_peers
        self._buckets: dict[bytes, tuple[float, float]] = {}  # peer -> (tokens, at)
        self.refused = 0

    def allow(self, peer: bytes, now: float) -> bool:
        tokens, at = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        ok = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if ok else tokens, now)
        if not ok:
            self.refused += 1
        if len(self._buckets) > self.max_peers:  # forget the peers that have been quiet longest
            for old in sorted(self._buckets, key=lambda p: self._buckets[p][1])[: len(self._buckets) // 2]:
                del self._buckets[old]
        return ok


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
        self.invalid = 0  # messages that could not be built (dropped, logged)
        self.budget = RequestBudget()
        # The open alerts the journal held at start (filled in before start_and_bind returns).
        self.restored_alerts: list[dict[str, Any]] = []
        self.failed: BaseException | None = None  # why the thread stopped, if it failed after starting
        self.turn_mono = time.monotonic()  # when the loop last went round: the watchdog's proof of progress
        self._queue: queue.Queue[tuple[type[M.Envelope], dict[str, Any], float, float | None]] = queue.Queue(maxsize=10_000)
        self._halt = threading.Event()
        self._bound: Future[tuple[str, str | None]] = Future()
        self._journal: Journal | None = None
        self._replay: ReplayServer | None = None

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

    def healthy(self, now: float, stale_after_s: float) -> bool:
        """Alive, not failed, and its loop went round within ``stale_after_s``."""
        return self.is_alive() and self.failed is None and now - self.turn_mono < stale_after_s

    # ---------------------------------------------------------------- inside the thread

    def _socket(self, kind: int, endpoint: str, options: dict[int, int] | None = None) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        for opt, value in (options or {}).items():  # before bind: some options only apply to later connections
            sock.setsockopt(opt, value)
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
        assert self._journal is not None and self._replay is not None
        try:
            msg = kind(device_id=self.device_id, seq=self.seq, boot_id=self.boot_id, ts=time.time(), **fields)
        except ValidationError as e:  # a bug upstream must cost this one message, not the publisher
            self.invalid += 1
            log.error("a %s message could not be built and was dropped: %s", kind.__name__,
                      "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:3]))
            return
        topic, payload = M.encode(msg)
        k = msg.kind  # type: ignore[attr-defined]
        self._journal.ensure(self.seq)
        if k in JOURNALED_KINDS:
            self._journal.write(self.seq, k, topic.decode(), payload.decode(), msg.ts)
        sock.send_multipart([topic, payload])
        if k == "reading":
            self._replay.last_reading = (self.seq, topic.decode(), payload.decode())
        self.seq += 1
        self.sent += 1
        self.on_sent(k, time.perf_counter() - queued_at, origin_mono)

    def _answer(self, router: zmq.Socket, now: float) -> None:
        """Receive one request and answer it; nothing here may raise out of the loop."""
        assert self._replay is not None
        try:
            frames = router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(frames) < 2:
            return  # not a routed request (cannot happen on a ROUTER); nothing to answer
        ident, rest = frames[0], frames[1:]
        envelope = [ident]
        if rest and rest[0] == b"":  # a REQ client
            envelope.append(b"")
            rest = rest[1:]
        if self.budget.allow(ident, now):
            reply = self._replay.reply(rest)
        else:
            reply = error_reply(f"too many requests; at most {PEER_REQUESTS_PER_S:.0f} a second per peer")
        try:
            router.send_multipart(envelope + reply, zmq.NOBLOCK)
        except zmq.ZMQError as e:  # the peer is gone or its queue is full: its loss, not ours
            log.debug("replay answer not sent: %s", e)
        self.replies += 1

    def run(self) -> None:
        router = None
        sock = None
        try:
            self._journal = Journal(self.journal_path or ":memory:", self.device_id, *self.retention)
            self.seq = self._journal.start_seq()
            self._replay = ReplayServer(self._journal, lambda: self.seq)
            self.restored_alerts = [json.loads(p) for _s, _t, p in self._journal.open_alerts()]
            sock = self._socket(zmq.PUB, self.endpoint, {zmq.SNDHWM: 10_000})
            if self.replay_endpoint:
                router = self._socket(zmq.ROUTER, self.replay_endpoint,
                                      {zmq.MAXMSGSIZE: TRANSPORT_LIMIT_BYTES, zmq.ROUTER_MANDATORY: 0,
                                       zmq.SNDHWM: 1_000, zmq.RCVHWM: 1_000})
        except Exception as e:  # noqa: BLE001  (handed to the starting thread)
            for s in (sock, router):
                if s is not None:
                    s.close(0)
            if self._journal is not None:
                self._journal.close()
            self._bound.set_exception(e)
            return
        self._bound.set_result((sock.getsockopt_string(zmq.LAST_ENDPOINT),
                                router.getsockopt_string(zmq.LAST_ENDPOINT) if router is not None else None))
        next_beat = time.monotonic()
        try:
            while True:
                now = self.turn_mono = time.monotonic()
                if now >= next_beat:
                    self._emit(sock, M.Heartbeat, self.heartbeat_fields(), time.perf_counter())
                    next_beat = now + self.heartbeat_s
                while True:  # everything queued goes out before any request is answered
                    try:
                        kind, fields, t, origin = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    self._emit(sock, kind, fields, t, origin)
                if router is not None:
                    for _ in range(REQUESTS_PER_TURN):
                        if time.monotonic() - now > REQUEST_TIME_PER_TURN_S or not router.poll(0):
                            break
                        self._answer(router, now)
                if self._halt.is_set():
                    break
                try:
                    kind, fields, t, origin = self._queue.get(timeout=max(0.0, min(0.01, next_beat - now)))
                except queue.Empty:
                    continue
                self._emit(sock, kind, fields, t, origin)
        except Exception as e:  # noqa: BLE001  (reported to the daemon, which exits non-zero)
            self.failed = e
            log.exception("publisher failed; nothing more can be published or journaled")
        finally:
            sock.close(LINGER_MS)
            if router is not None:
                router.close(0)
            self._journal.close()
