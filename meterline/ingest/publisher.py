"""Publishing from an event loop, answered only once the broker acknowledged every record.

``Publisher`` is the port the HTTP routes need (the proxy may pass its own, e.g. one that
spools to disk); ``KafkaPublisher`` is the confluent-kafka implementation. librdkafka's
delivery reports arrive on a poll thread and are handed to the loop with
``call_soon_threadsafe``, so an HTTP handler awaits its records' acknowledgements without
blocking the loop and without one ``flush`` per request (which would serialise requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from meterline.settings import Settings
from streams.producer import RenewingProducer, check_reachable

# (key, value): the key is the customer id, so the message lands on the customer's home
# partition (murmur2, as the worker computes it) and is never forwarded.
KeyedValue = tuple[str, bytes]


class NotAcknowledged(RuntimeError):
    """Some records were not acknowledged in time (or were refused by the broker). Those that
    were may be in the topic: a retry with the same event ids is counted once by the worker's
    dedup, so the client's correct reaction is to retry the whole request."""

    def __init__(self, undelivered: int, total: int, reason: str) -> None:
        super().__init__(f"{undelivered} of {total} records not acknowledged: {reason}")
        self.undelivered = undelivered
        self.total = total
        self.reason = reason


class Publisher(Protocol):
    """What the ingest routes publish through."""

    async def publish(self, topic: str, messages: Sequence[KeyedValue], timeout: float) -> None:
        """Returns once the broker acknowledged every message; raises NotAcknowledged when any
        was refused or not acknowledged within ``timeout`` seconds."""
        ...


class _Pending:
    """The acknowledgements one publish call waits for.

    Delivery reports arrive on the poll thread, the only thread that changes ``remaining``
    (``publish`` sends everything before it waits): it counts them itself and wakes the loop
    once, when the last one arrives or at the first failure, rather than once per message."""

    __slots__ = ("error", "future", "loop", "notified", "remaining", "total")

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        # A publish that timed out no longer awaits this future: mark its outcome retrieved so
        # a late failure is not logged as "exception never retrieved".
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.remaining = total
        self.total = total
        self.error: str | None = None
        self.notified = False

    def report(self, err: KafkaError | None, _msg: Message) -> None:
        # Runs on the poll thread.
        self.remaining -= 1
        if err is not None and self.error is None:
            self.error = err.str()
        if not self.notified and (self.error is not None or self.remaining == 0):
            self.notified = True
            self.loop.call_soon_threadsafe(self._settle, self.error, self.remaining)

    def _settle(self, error: str | None, remaining: int) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(NotAcknowledged(remaining + 1, self.total, error))
        else:
            self.future.set_result(None)


class KafkaPublisher:
    """confluent-kafka's idempotent producer (streams/producer.py) behind ``Publisher``,
    replaced when a broker outage leaves it fenced (RenewingProducer)."""

    def __init__(self, kafka: RenewingProducer, bootstrap: str = "") -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="ingest-kafka-poll", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(
        cls, settings: Settings, ack_timeout: float | None = None, **overrides: Any
    ) -> KafkaPublisher:
        timeout = settings.ingest_ack_timeout_seconds if ack_timeout is None else ack_timeout
        # librdkafka gives a record up when the HTTP answer does (503), instead of retrying for
        # its default five minutes while the client already retries the request itself.
        config = {"message.timeout.ms": max(1, int(timeout * 1000)), "log_level": 2, **overrides}
        return cls(RenewingProducer(settings.broker, **config), settings.broker)

    def check_reachable(self, timeout: float = 5.0) -> None:
        """Raises streams.producer.BrokerUnreachable when no broker answers."""
        check_reachable(self.kafka.producer, self.bootstrap, timeout)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.kafka.poll(0.05)

    async def publish(self, topic: str, messages: Sequence[KeyedValue], timeout: float) -> None:
        if not messages:
            return
        pending = _Pending(asyncio.get_running_loop(), len(messages))

        def report(err: KafkaError | None, msg: Message) -> None:
            self.kafka.note(err)
            pending.report(err, msg)

        for i, (key, value) in enumerate(messages):
            try:
                self.kafka.send(topic, key, value, on_delivery=report)
            except KafkaException as exc:
                # The rest is not sent; what was may be in the topic (a retry dedups).
                raise NotAcknowledged(len(messages) - i, len(messages), str(exc)) from None
        try:
            await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            raise NotAcknowledged(
                pending.remaining, pending.total, f"no acknowledgement within {timeout:g} s"
            ) from None

    def close(self, timeout: float = 10.0) -> int:
        """Flushes what is queued, stops the poll thread; returns records left unflushed."""
        left = self.kafka.flush(timeout)
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(2.0)
        return left
