"""systemd notifications (READY, STATUS, WATCHDOG, STOPPING) when NOTIFY_SOCKET is set.

Uses systemd-python's ``daemon.notify`` when installed, else writes the
datagram itself (the protocol is one AF_UNIX datagram of KEY=VALUE lines).
Does nothing outside systemd. Given its own ``environ`` (a test's socket),
it writes that NOTIFY_SOCKET itself: systemd-python reads only the process's
environment.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        self._last_watchdog = 0.0
        self._send_fn = None
        if self.address and environ is not None:
            self._send_fn = self._send_datagram
        elif self.address:
            try:
                from systemd import daemon

                self._send_fn = lambda text: daemon.notify(text)
            except ImportError:
                self._send_fn = self._send_datagram

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _send_datagram(self, text: str) -> bool:
        addr = self.address or ""
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            try:
                s.connect(addr)
                s.sendall(text.encode())
            except OSError:
                return False
        return True

    def send(self, **fields: str) -> None:
        if self._send_fn is not None:
            self._send_fn("\n".join(f"{k.upper()}={v}" for k, v in fields.items()))

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def status(self, text: str) -> None:
        self.send(status=text)

    def stopping(self) -> None:
        self.send(stopping="1")

    def watchdog(self, now: float | None = None) -> None:
        """Ping the watchdog at half its period at most (call it from the processing loop)."""
        if self._send_fn is None:
            return
        now = time.monotonic() if now is None else now
        period = self.watchdog_s / 2 if self.watchdog_s else 1.0
        if now - self._last_watchdog >= period:
            self._last_watchdog = now
            self.send(watchdog="1")
