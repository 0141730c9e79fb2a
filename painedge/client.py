"""Subscribing to painedge devices, for station software: typed messages with gap recovery.

    with Station(["tcp://bed-12:5556", "tcp://bed-14:5556"]) as station:
        for msg in station.messages(timeout_s=5):
            ...   # Reading | Alert | Heartbeat | Status, validated

ZeroMQ PUB/SUB drops messages for a subscriber that is slow, restarting or
not yet connected. ``Station`` makes up for it for alerts: on a device's first
message it asks the device's replay service for a snapshot (open alerts, last
status); when it sees a gap in ``seq`` or a new ``boot_id``, it asks for every
alert after the last seq it had. Recovered alerts come out of ``messages`` like
live ones (each seq once). Readings lost in a gap are not replayed (the next
one is a second away); alerts are.

One SUB socket per endpoint, so the client knows where each message came
from; all sockets belong to the thread that iterates.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import zmq
from pydantic import ValidationError

from . import messages as M

Msg = M.Reading | M.Alert | M.Heartbeat | M.Status
MAX_REPLAY_ROUNDS = 20  # answers asked for one gap (each up to the device's REPLAY_LIMIT messages)
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 60.0  # asking a replay service that did not answer again: backoff


@dataclass(frozen=True)
class ClientKeys:
    """CURVE keys: this client's pair and the server's public key (z85)."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def load(cls, client_secret_file: Path, server_public_file: Path, server_key_name: str = "server_key") -> ClientKeys:
        """This client's pair from its ``.key_secret`` (mode 0600), the server's public key from its ``.key``; a
        ConfigError naming the file and the fix when either is not right (``server_key_name``: the setting or flag
        that named the server's file)."""
        from .security import load_keypair, load_public_key

        pair = load_keypair(client_secret_file)
        return cls(pair.public, pair.secret, load_public_key(server_public_file, server_key_name))

    @classmethod
    def both_or_neither(cls, client_secret_file: Path | None, server_public_file: Path | None,
                        names: tuple[str, str] = ("client_key", "server_key")) -> ClientKeys | None:
        """The CURVE keys when both files are given, None (no CURVE) when neither is; one given alone is a
        ConfigError. ``names``: the settings or flags that give them, for the errors."""
        from .config import ConfigError

        if client_secret_file is None and server_public_file is None:
            return None
        if client_secret_file is None or server_public_file is None:
            raise ConfigError(f"CURVE needs both {names[0]} (this station's .key_secret) and {names[1]} (the "
                              f"device's .key), or neither")
        return cls.load(client_secret_file, server_public_file, names[1])

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)


def split_endpoint(spec: str) -> tuple[str, str]:
    """``PUB[,REPLAY]`` -> (pub, replay); the replay endpoint defaults to the PUB port + 1."""
    pub, _, replay = spec.partition(",")
    if not replay and pub.startswith("tcp://"):
        host, _, port = pub.rpartition(":")
        replay = f"{host}:{int(port) + 1}"
    return pub, replay


class ReplayError(OSError):
    """The replay service did not answer, or answered with an error."""


def request_replay(context: zmq.Context, endpoint: str, request: dict, keys: ClientKeys | None = None,
                   timeout_s: float = 3.0) -> tuple[list[Msg], int]:
    """One request to a device's replay service: (messages, complete_to)."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.apply(sock)
    try:
        sock.connect(endpoint)
        sock.send(json.dumps(request).encode())
        if not sock.poll(int(timeout_s * 1000)):
            raise ReplayError(f"{endpoint}: no answer from the replay service in {timeout_s:.0f} s")
        frames = sock.recv_multipart()
    finally:
        sock.close(0)
    try:
        if frames[-2:-1] == [b"error"]:
            raise ReplayError(f"{endpoint}: {json.loads(frames[-1]).get('error')}")
        if len(frames) < 2 or frames[-2] != b"end" or len(frames) % 2:
            raise ReplayError(f"{endpoint}: malformed replay answer ({len(frames)} frames)")
        tail = json.loads(frames[-1])
        msgs = [M.decode(frames[i: i + 2]) for i in range(0, len(frames) - 2, 2)]
        return msgs, int(tail["complete_to"])
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # ValueError: JSON, int(), validation
        raise ReplayError(f"{endpoint}: malformed replay answer ({type(e).__name__}: {e})") from None


def follow_boot(boot_id: str, msg: Msg) -> tuple[str, bool]:
    """A device's boot_id after ``msg``, given the one known before ("": none yet), and whether ``msg`` shows that
    the device restarted, for a board fed by ``Station.messages()``. Alerts do not count there: a recovered alert
    comes from the journal with the boot_id of the run that raised it. (``DeviceTrack.follow`` sees the live stream
    only, where every message carries the running boot_id, so there an alert counts too.)"""
    if msg.kind == M.Kind.ALERT:
        return boot_id, False
    return msg.boot_id, bool(boot_id) and msg.boot_id != boot_id


@dataclass
class DeviceTrack:
    """What a station knows of one device's stream."""

    endpoint: str
    replay: str
    device_id: str = ""
    boot_id: str = ""
    last_seq: int = -1
    gaps: int = 0
    restarts: int = 0
    recovered: int = 0
    seen_alerts: set[int] = field(default_factory=set)
    # A recovery the replay service did not answer is owed, not dropped: asked again after a backoff,
    # so one silent device costs the others one timeout per backoff, not one per message.
    owed_snapshot: bool = False  # a snapshot asked for and not yet answered
    owed_since: int | None = None  # the alerts after this seq, asked for and not yet answered
    retry_at: float = 0.0
    backoff_s: float = 0.0

    def follow(self, msg: Msg) -> dict | None:
        """Note a message of this device's stream; the replay request it calls for (None: nothing missed).

        First contact asks for a snapshot (the device's current state); a new boot_id (a restart) and a
        seq gap ask for the alerts since the last seq this track had. seq never goes back, even across
        restarts: the device reserves numbers above anything it sent."""
        self.device_id = self.device_id or msg.device_id  # a resumed track knows the stream, not yet the name
        request: dict | None = None
        if not self.boot_id:
            self.device_id, self.boot_id = msg.device_id, msg.boot_id
            request = {"op": "snapshot"}
        elif msg.boot_id != self.boot_id:
            self.restarts += 1
            self.boot_id = msg.boot_id
            request = {"op": "replay", "since_seq": self.last_seq}
        elif msg.seq > self.last_seq + 1:
            self.gaps += 1
            request = {"op": "replay", "since_seq": self.last_seq}
        self.last_seq = max(self.last_seq, msg.seq)
        return request

    @property
    def owes(self) -> bool:
        """A recovery was asked for and not yet answered."""
        return self.owed_snapshot or self.owed_since is not None

    def first_time(self, msg: Msg) -> bool:
        """False for an alert message handed out before (live and replayed, or replayed twice)."""
        if msg.kind != M.Kind.ALERT:
            return True
        if msg.seq in self.seen_alerts:
            return False
        self.seen_alerts.add(msg.seq)
        return True


class Station:
    def __init__(self, endpoints: Iterable[str], kinds: Iterable[str] = M.KINDS, keys: ClientKeys | None = None,
                 context: zmq.Context | None = None, recover: bool = True,
                 resume: dict[str, tuple[str, int]] | None = None) -> None:
        """``resume``: {PUB endpoint: (boot_id, last seq)} from an earlier ``positions()``, so a station
        that was away gets every alert it missed instead of only a snapshot."""
        self.context = context or zmq.Context.instance()
        self.keys, self.recover = keys, recover
        self.kinds = M.kinds_of(kinds)
        self.tracks: dict[zmq.Socket, DeviceTrack] = {}
        self.poller = zmq.Poller()
        for spec in endpoints:
            pub, replay = split_endpoint(spec)
            sock = self.context.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            if keys is not None:
                keys.apply(sock)
            # Heartbeats always: they carry seq and boot_id, the gap and restart detector.
            for k in set(self.kinds) | {M.Kind.HEARTBEAT.value}:
                sock.setsockopt_string(zmq.SUBSCRIBE, f"{k}/")
            sock.connect(pub)
            self.poller.register(sock, zmq.POLLIN)
            track = DeviceTrack(pub, replay)
            if resume and pub in resume:
                track.boot_id, track.last_seq = resume[pub]
            self.tracks[sock] = track
        self.invalid = 0
        self.errors: list[str] = []

    def _recover(self, track: DeviceTrack, request: dict, before_seq: int) -> list[Msg]:
        """Messages the device's replay service holds for ``request``, up to ``before_seq``.

        What is asked is owed until it is answered (a snapshot, and the alerts since a seq, merged
        across gaps): a service that does not answer is not asked again before ``track.retry_at``,
        and what it owes is asked for with a later message."""
        if not self.recover or not track.replay:
            return []
        if request["op"] == "snapshot":
            track.owed_snapshot = True
        else:
            since = request["since_seq"]
            track.owed_since = since if track.owed_since is None else min(track.owed_since, since)
        return self._pay(track, before_seq)

    def _pay(self, track: DeviceTrack, before_seq: int) -> list[Msg]:
        """Ask for what ``track`` is owed, unless its service is in backoff; a long replay comes in several
        answers (each up to the service's limit), asked for in turn."""
        if time.monotonic() < track.retry_at:
            return []
        msgs: list[Msg] = []
        try:
            if track.owed_snapshot:
                got, _complete_to = request_replay(self.context, track.replay, {"op": "snapshot"}, self.keys)
                msgs += got
                track.owed_snapshot = False
            if track.owed_since is not None:
                request = {"op": "replay", "since_seq": track.owed_since}
                for _ in range(MAX_REPLAY_ROUNDS):
                    got, complete_to = request_replay(self.context, track.replay, request, self.keys)
                    msgs += got
                    if not got or complete_to >= before_seq - 1:
                        break
                    track.owed_since = complete_to  # progress kept if a later part fails
                    request = {"op": "replay", "since_seq": complete_to}
                track.owed_since = None
            track.backoff_s = 0.0
        except (ReplayError, ValidationError, ValueError) as e:
            self.errors.append(str(e))
            track.backoff_s = min(max(track.backoff_s * 2, RETRY_FIRST_S), RETRY_MAX_S)
            track.retry_at = time.monotonic() + track.backoff_s
        # A device answers for itself only: anything else is not attributed to this bed.
        foreign = [m for m in msgs if m.device_id != track.device_id]
        if foreign:
            self.invalid += len(foreign)
            self.errors.append(f"{track.replay}: replay held {len(foreign)} messages of another device; ignored")
        fresh = [m for m in msgs if m.device_id == track.device_id and m.seq < before_seq
                 and (m.kind != M.Kind.ALERT or m.seq not in track.seen_alerts)]
        track.recovered += sum(m.kind == M.Kind.ALERT for m in fresh)
        return fresh

    def _track(self, track: DeviceTrack, msg: Msg) -> list[Msg]:
        """Messages to hand out for ``msg``: recovered ones first, then ``msg`` itself."""
        out: list[Msg] = []
        request = track.follow(msg)
        if request is not None:
            out += self._recover(track, request, msg.seq)
        elif track.owes and time.monotonic() >= track.retry_at:
            out += self._pay(track, msg.seq)  # a recovery still owed
        out.append(msg)
        return [m for m in out if track.first_time(m) and m.kind in self.kinds]

    def messages(self, timeout_s: float | None = None, for_s: float | None = None) -> Iterator[Msg]:
        """Messages as they come (with recovered alerts).

        Stops after ``timeout_s`` without a message of the subscribed kinds (the
        heartbeats the station reads for itself do not count), or after ``for_s``
        in all, whichever comes first (None: never).
        """
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            waits = [w for w in (None if timeout_s is None else timeout_s - (now - last),
                                 None if for_s is None else for_s - (now - start)) if w is not None]
            wait = min(waits) if waits else None
            if wait is not None and wait <= 0:
                return
            events = dict(self.poller.poll(None if wait is None else int(wait * 1000) + 1))
            for sock in events:
                frames = sock.recv_multipart()
                try:
                    msg = M.decode(frames)
                except (ValidationError, ValueError):
                    self.invalid += 1
                    continue
                out = self._track(self.tracks[sock], msg)
                if out:
                    last = time.monotonic()
                yield from out

    def positions(self) -> dict[str, tuple[str, int]]:
        """Where this station is in each device's stream, for ``resume`` after a disconnect."""
        return {t.endpoint: (t.boot_id, t.last_seq) for t in self.tracks.values() if t.boot_id}

    def close(self) -> None:
        for sock in self.tracks:
            sock.close(0)

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
