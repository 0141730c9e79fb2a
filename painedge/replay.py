"""The replay service (the ZeroMQ Guide's "Clone" pattern): a ROUTER beside the PUB that serves the journal.

A request is one frame of JSON, at most ``MAX_REQUEST_BYTES``:

    {"op": "snapshot"}                    the open alerts, the last status and the last reading
    {"op": "replay", "since_seq": N}      every journaled alert message with seq > N (at most REPLAY_LIMIT)

The reply is one multipart message: zero or more (topic, payload) pairs, exactly
as published, then ``b"end"`` and ``{"ok": true, "complete_to": S, "count": n}``:
the replay holds every alert message up to seq S (ask again from S for more).
A bad request gets ``b"error"`` and ``{"ok": false, "error": "..."}`` and
changes nothing; no request can raise out of the reply path. REQ and DEALER
clients both work.

``ReplayServer.reply`` is the protocol, a function of the request frames and the
journal (testable as a table, no socket). ``ReplayEndpoint`` is the socket side:
it answers at most ``REQUESTS_PER_TURN`` requests per call (within
``REQUEST_TIME_PER_TURN_S``), which the publisher loop makes after it has
published everything queued: that per-turn limit is what keeps heartbeats and
alerts on time however many peers ask. Each connection also gets at most
``PEER_REQUESTS_PER_S`` (a burst of ``PEER_REQUEST_BURST``; over it, a short
error): a courtesy between well-behaved clients, since a ROUTER knows
connections, not hosts, and a client can reconnect.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from .journal import SEQ_MAX, Journal
from .messages import Kind

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024  # a replay request is tiny; anything larger gets an error
TRANSPORT_LIMIT_BYTES = 65_536  # libzmq drops peers sending more than this (no reply possible)
REPLAY_LIMIT = 1_000  # messages per reply (about 0.7 MB); ask again from complete_to for more
REQUESTS_PER_TURN = 8  # replay requests answered per turn of the publisher loop, after publishing ...
REQUEST_TIME_PER_TURN_S = 0.05  # ... within this time, so a reading waits at most about this long for a flood
PEER_REQUESTS_PER_S = 20.0  # a station asks at first contact, on a gap and on a restart: a few a minute
PEER_REQUEST_BURST = 40.0
MAX_PEERS_TRACKED = 4096
# The ROUTER's options, all set before bind: MAXMSGSIZE makes libzmq cut off a peer sending more than the
# transport limit before the request is read (set after bind, a 300 MB request was read in full).
ROUTER_OPTIONS: dict[int, int] = {zmq.MAXMSGSIZE: TRANSPORT_LIMIT_BYTES, zmq.ROUTER_MANDATORY: 0,
                                  zmq.SNDHWM: 1_000, zmq.RCVHWM: 1_000}
_USAGE = 'send {"op": "snapshot"} or {"op": "replay", "since_seq": N}'


class RequestError(ValueError):
    """A replay request that gets an error reply (the text is sent to the peer)."""


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
    """The replay service's answers: a function of the request and the journal.

    ``reply`` never raises: a request it cannot serve gets an error reply.
    """

    def __init__(self, journal: Journal, next_seq: Callable[[], int], limit: int = REPLAY_LIMIT) -> None:
        self.journal, self.next_seq, self.limit = journal, next_seq, limit
        self.errors = 0

    def reply(self, frames: list[bytes]) -> list[bytes]:
        try:
            return self._reply(parse_request(frames))
        except RequestError as e:
            self.errors += 1
            return error_reply(str(e))
        except Exception:  # a request must never take the publisher down
            self.errors += 1
            log.exception("replay request could not be answered")
            return error_reply("internal error; the request was not served")

    def _reply(self, req: Request) -> list[bytes]:
        if req.op == "snapshot":
            entries = self.journal.snapshot()
            complete_to = self.next_seq() - 1
        else:
            entries = self.journal.since(req.since_seq, (Kind.ALERT.value,), self.limit)
            complete_to = self.next_seq() - 1 if len(entries) < self.limit else entries[-1][0]
        out: list[bytes] = []
        for _seq, topic, payload in entries:
            out += [topic.encode(), payload.encode()]
        return out + [b"end", json.dumps({"ok": True, "complete_to": complete_to, "count": len(entries)}).encode()]


class RequestBudget:
    """Token buckets per peer: at most ``rate_per_s`` requests a second each, bursts up to ``burst``."""

    def __init__(self, rate_per_s: float = PEER_REQUESTS_PER_S, burst: float = PEER_REQUEST_BURST,
                 max_peers: int = MAX_PEERS_TRACKED) -> None:
        self.rate_per_s, self.burst, self.max_peers = rate_per_s, burst, max_peers
        self.buckets: dict[bytes, tuple[float, float]] = {}  # peer -> (tokens, at)
        self.refused = 0

    def allow(self, peer: bytes, now: float) -> bool:
        tokens, at = self.buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        ok = tokens >= 1.0
        self.buckets[peer] = (tokens - 1.0 if ok else tokens, now)
        if not ok:
            self.refused += 1
        if len(self.buckets) > self.max_peers:  # forget the peers that have been quiet longest
            for old in sorted(self.buckets, key=lambda p: self.buckets[p][1])[: len(self.buckets) // 2]:
                del self.buckets[old]
        return ok


class ReplayEndpoint:
    """The ROUTER side of the replay service; belongs to the thread that owns the journal."""

    def __init__(self, router: zmq.Socket, server: ReplayServer, budget: RequestBudget | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.router, self.server, self.clock = router, server, clock
        self.budget = budget or RequestBudget()
        self.replies = 0

    def answer_some(self, now: float) -> int:
        """Answer what is waiting, at most REQUESTS_PER_TURN within REQUEST_TIME_PER_TURN_S of ``now``."""
        answered = 0
        while answered < REQUESTS_PER_TURN and self.clock() - now <= REQUEST_TIME_PER_TURN_S and self.router.poll(0):
            self.answer_one(now)
            answered += 1
        return answered

    def answer_one(self, now: float) -> None:
        """Receive one request and answer it; nothing here may raise out of the loop."""
        try:
            frames = self.router.recv_multipart(zmq.NOBLOCK)
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
            reply = self.server.reply(rest)
        else:
            reply = error_reply(f"too many requests; at most {PEER_REQUESTS_PER_S:.0f} a second per peer")
        try:
            self.router.send_multipart(envelope + reply, zmq.NOBLOCK)
        except zmq.ZMQError as e:  # the peer is gone or its queue is full: its loss, not ours
            log.debug("replay answer not sent: %s", e)
        self.replies += 1

    def close(self) -> None:
        self.router.close(0)
