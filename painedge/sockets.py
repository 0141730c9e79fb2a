"""The device's ZeroMQ server sockets: CURVE keys, the ZAP domain, and binding with its options set first.

Both the PUB socket and the replay ROUTER are made here, each inside the thread
that owns it; a bind failure is one ``PublishError`` line naming the endpoint
and the setting to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq

LINGER_MS = 200  # on close: let queued messages go, but never hang shutdown
ZAP_DOMAIN = "painedge"  # the sockets' ZAP domain; the authenticator is configured for exactly this one


class PublishError(OSError):
    """A socket cannot be bound."""


@dataclass(frozen=True)
class Curve:
    """CURVE server keys for both sockets (z85 text)."""

    public: bytes
    secret: bytes


def bind(context: zmq.Context, kind: int, endpoint: str, curve: Curve | None,
         options: dict[int, int] | None = None) -> zmq.Socket:
    """A server socket of ``kind`` bound to ``endpoint``; options go before bind (some, such as
    MAXMSGSIZE, apply only to connections made after they are set)."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    for opt, value in (options or {}).items():
        sock.setsockopt(opt, value)
    if curve is not None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(0)
        raise PublishError(f"cannot bind {endpoint}: {e.strerror} (another painedge running? "
                           f"change publish.pub / publish.replay or --pub)") from None
    return sock


def bound_endpoint(sock: zmq.Socket) -> str:
    """Where a socket bound (a port 0 or ``*`` resolved)."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)
