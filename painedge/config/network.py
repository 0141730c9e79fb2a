"""Addresses in settings: ZeroMQ endpoints, HOST:PORT to listen on and loopback hosts (used by settings and servers)."""

from __future__ import annotations

import ipaddress
import re

from .errors import echo


def host_and_port(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) as the host without brackets and the port (0-65535); ValueError when
    the text does not have that shape. Each setting says which hosts and ports it takes."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or int(port) > 65535:
        raise ValueError(f"{echo(text)} is not HOST:PORT")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host), int(port)


def listen_address(text: str, expected: str, *, defaults: bool = False) -> tuple[str, int]:
    """A server's HOST:PORT setting, split as host_and_port splits it. ValueError(``expected``: the setting's own usage
    line) when it is not HOST:PORT, or leaves the host empty or asks for port 0 where the server has no ``defaults``
    for them ("": its own host, 0: a free port). Each caller checks the host further as it needs."""
    try:
        host, port = host_and_port(text)
    except ValueError:
        raise ValueError(expected) from None
    if not defaults and (not host or not port):
        raise ValueError(expected)
    return host, port


def check_endpoint(v: str) -> str:
    """tcp://HOST:PORT (port 1-65535, or 0 / * for a free one), ipc://PATH or inproc://NAME."""
    if v.startswith("ipc://"):
        # A Unix socket path is at most 107 bytes (sun_path); libzmq would fail at bind.
        if not 0 < len(v[6:].encode()) <= 107:
            raise ValueError("an ipc:// path must be 1-107 bytes long (the Unix socket limit)")
        return v
    if v.startswith("inproc://"):
        if not v[9:]:
            raise ValueError("inproc:// needs a name")
        return v
    m = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]{1,253}):(\d{1,5}|\*)", v)
    if not m:
        raise ValueError("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    host, port = m.groups()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{echo(host)} is not an IPv6 address") from None
    # 0 or * asks the OS for a free port (ZeroMQ's wildcard): useful for tests, and the bound
    # endpoint is logged at start-up; stations need a fixed one.
    if port != "*" and int(port) > 65535:
        raise ValueError(f"port {port} is out of range (1-65535, or 0 / * for a free one)")
    return v


def host_header_is_loopback(value: str) -> bool:
    """Whether an HTTP Host header ("name", "name:port", "[v6]:port") names a loopback host. A server that is
    open on loopback answers only these: a page elsewhere whose DNS name rebinds to 127.0.0.1 sends its own."""
    name = value.split("]")[0] + "]" if value.startswith("[") else value.rsplit(":", 1)[0] if ":" in value else value
    return bool(value) and is_loopback_host(name)


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    return is_loopback_host(endpoint[6:].rsplit(":", 1)[0])


def is_loopback_host(host: str) -> bool:
    """True for localhost and any loopback address (127.0.0.0/8, ::1; IPv6 with or without brackets)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

