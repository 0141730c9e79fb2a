"""Where alarm changes go besides the board: each sink has its own bounded queue and thread.

A sink that is slow or down (an interface engine being restarted) must never
stall the board or another sink: ``Sinks.send`` only puts on each sink's
queues and never blocks. Alarm changes and observations queue apart: alarm
changes go first and are retried until delivered (the backoff grows to
``max_backoff_s``), in a queue large enough for days of a ward's alarms;
observations are retried ``retries`` times, and when their queue is full the
new one is dropped and counted. So an outage costs observations, not alarms.

A sink is a class with ``deliver(event)``; ``event`` is an ``Outgoing``: an
alarm change or an observation (a bed's reading, at the history interval).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ..logsetup import fields
from .alarms import Alarm
from .settings import FeedSettings

log = logging.getLogger("painedge.station.sinks")


@dataclass(frozen=True)
class Outgoing:
    """What a sink is handed: an alarm change (raised, escalated, acknowledged, ended, ...) or an observation."""

    kind: Literal["alarm", "observation"]
    device_id: str
    bed_name: str
    ts: float
    event: str = ""  # for alarms: the change
    alarm: Alarm | None = None
    by: str = ""
    level: int | None = None
    level_name: str = ""
    pspi: float | None = None
    explanation: str = ""
    face_item: dict[str, Any] | None = None


class Sink:
    """Subclass and implement ``deliver``; raise to have the event retried."""

    name = "sink"
    queue_size = 1000  # observations
    alarm_queue_size = 100_000  # alarm changes, kept until delivered
    retries = 3  # for observations; alarm changes are retried until delivered
    retry_backoff_s = 0.5
    max_backoff_s = 30.0

    def __init__(self) -> None:
        self.queue: queue.Queue[Outgoing] = queue.Queue(self.queue_size)
        self.alarm_queue: queue.Queue[Outgoing] = queue.Queue(self.alarm_queue_size)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self.sent = self.failed = self.dropped = 0

    def deliver(self, event: Outgoing) -> None:
        raise NotImplementedError

    def wants(self, event: Outgoing) -> bool:
        return True

    def close(self) -> None:
        """Release the sink's connection (called on its own thread)."""

    def start(self) -> None:
        self.thread.start()

    def put(self, event: Outgoing) -> None:
        try:
            (self.alarm_queue if event.kind == "alarm" else self.queue).put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("%s: queue full, %d events dropped", self.name, self.dropped,
                            extra=fields("sink_drop", sink=self.name))

    def stop(self, timeout_s: float = 2.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout_s)

    def _next(self) -> Outgoing | None:
        try:
            return self.alarm_queue.get_nowait()  # alarm changes first
        except queue.Empty:
            pass
        try:
            return self.queue.get(timeout=0.2)
        except queue.Empty:
            return None

    def _run(self) -> None:
        while not self.stop_event.is_set():
            event = self._next()
            if event is None:
                continue
            attempt = 0
            while True:
                try:
                    self.deliver(event)
                    self.sent += 1
                    break
                except Exception as e:  # noqa: BLE001 - any failure of the far side is retried, then logged
                    attempt += 1
                    what = f"{event.event or event.kind} for {event.device_id}"
                    if self.stop_event.is_set() or (event.kind != "alarm" and attempt >= self.retries):
                        self.failed += 1
                        log.warning("%s: could not deliver %s: %s", self.name, what, e,
                                    extra=fields("sink_error", sink=self.name))
                        break
                    if event.kind == "alarm" and attempt == self.retries:  # said once; it goes on trying
                        log.warning("%s: could not deliver %s yet (%s); retrying until it is", self.name, what, e,
                                    extra=fields("sink_error", sink=self.name))
                    self.stop_event.wait(min(self.retry_backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
        self.close()


class LogSink(Sink):
    """Alarm escalations as log lines: the outgoing message a site without HL7/FHIR still gets."""

    name = "log"

    def wants(self, event: Outgoing) -> bool:
        return event.kind == "alarm" and event.event == "escalated"

    def deliver(self, event: Outgoing) -> None:
        a = event.alarm
        assert a is not None
        log.warning("ESCALATION %s (%s): %s alarm unacknowledged for %.0f s, %s priority: %s", event.bed_name,
                    event.device_id, a.level_name, event.ts - a.raised_ts, a.priority, a.explanation or "-",
                    extra=fields("escalation", alarm_id=a.alarm_id, device=a.device_id))


S = TypeVar("S", bound=FeedSettings)


class FeedSink(Sink, Generic[S]):
    """A sink to a hospital system, sending what its settings ask for (observations, alarm changes or both)."""

    def __init__(self, settings: S) -> None:
        super().__init__()
        self.settings = settings

    def wants(self, event: Outgoing) -> bool:
        return self.settings.send_observations if event.kind == "observation" else self.settings.send_alarms


class Sinks:
    """Fans events out to every sink's queue."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def start(self) -> None:
        for s in self.sinks:
            s.start()

    def send(self, event: Outgoing) -> None:
        for s in self.sinks:
            if s.wants(event):
                s.put(event)

    def stop(self) -> None:
        for s in self.sinks:
            s.stop()

    def stats(self) -> dict[str, dict[str, int]]:
        return {s.name: {"sent": s.sent, "failed": s.failed, "dropped": s.dropped, "queued": s.queue.qsize()}
                for s in self.sinks}


def wait_idle(sinks: Sinks, timeout_s: float = 5.0) -> bool:
    """True once every queue is empty (for tests and shutdown)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(s.queue.unfinished_tasks == 0 or s.queue.empty() for s in sinks.sinks):
            return True
        time.sleep(0.05)
    return False
