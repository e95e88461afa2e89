"""Publishing TokenEvents: spool first, then Kafka, then forget.

``record`` returns once the event is fsynced in the spool (the proxy runs it beside the
response to the client, see server.py); the confluent-kafka producer then sends it, and only
its delivery report deletes it from the spool. Events whose delivery failed (broker
unreachable past ``message.timeout.ms``), and events left from an earlier run, are sent again
by a background task. A send may repeat (a report lost in a crash); the worker's event_id
dedup counts it once.

Threads: SQLite runs on one dedicated writer thread (the spool is not thread-safe and an fsync
must not stall the event loop), which commits everything queued since its last commit in one
transaction (group commit: one fsync for a burst of responses, and the deletes of delivered
events ride along); librdkafka's delivery reports are served by a poll thread; Avro encoding
happens on the event loop (the codec is not thread-safe either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from meterline.proxy.spool import Spool
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import TOKEN_EVENT, RenewingProducer

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        broker: str,
        registry_url: str,
        spool_dir: Path,
        republish_seconds: float = 2.0,
        message_timeout_ms: int = 15_000,
        fsync: bool = True,
    ) -> None:
        self.codec = Codec(registry_from_settings(registry_url))
        # A failed delivery comes back after message_timeout_ms and is retried from the
        # spool; librdkafka's connection noise is left out (failures are logged here).
        self.kafka = RenewingProducer(
            broker, **{"message.timeout.ms": message_timeout_ms, "linger.ms": 2, "log_level": 2}
        )
        self.spool = Spool(spool_dir, fsync)
        self.republish_seconds = republish_seconds
        self.delivered = 0
        self.failed = 0
        # Jobs for the writer thread: ("add", event, future), ("remove", event_id, None),
        # ("call", fn, future) or None (stop).
        self._jobs: queue.SimpleQueue[tuple[str, Any, Future[Any] | None] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(
            target=self._write_loop, name="meterline-spool", daemon=True
        )
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="meterline-kafka", daemon=True)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._writer.start()
        self._poller.start()
        self._task = asyncio.create_task(self._republish_loop())

    async def record(self, event: dict[str, Any]) -> None:
        """Durable once this returns; published soon after."""
        event_id = event["event_id"]
        with self._lock:
            if event_id in self._inflight:
                return  # the same response id in flight already: one charge
            # In flight before it is spooled, so the republisher never sends it a second
            # time while this call is between the spool and the producer.
            self._inflight.add(event_id)
        try:
            fut: Future[None] = Future()
            self._jobs.put(("add", event, fut))
            await asyncio.wrap_future(fut)
        except BaseException:
            with self._lock:
                self._inflight.discard(event_id)
            raise
        self._produce(event)

    def _produce(self, event: dict[str, Any]) -> None:
        event_id = event["event_id"]
        try:
            value = self.codec.encode(TOKEN_EVENT, event)
        except Exception:
            # Stays spooled (never lost); retried, and logged, every republish round.
            log.exception("TokenEvent %s cannot be encoded; kept in the spool", event_id)
            with self._lock:
                self._inflight.discard(event_id)
            return
        try:
            self.kafka.send(
                topics.TOKENS,
                event["customer_id"],
                value,
                on_delivery=lambda err, msg, i=event_id: self._delivered(i, err, msg),
            )
        except KafkaException as exc:
            # Not queued (a producer being replaced): still spooled, sent again later.
            log.warning("TokenEvent %s not sent (%s); kept in the spool", event_id, exc)
            self._done(event_id)

    def _delivered(self, event_id: str, err: KafkaError | None, _msg: Message) -> None:
        # On the poll thread.
        if err is None:
            self.delivered += 1
            # Out of flight only once it is gone from the spool (the writer says so), so the
            # republisher does not send it again meanwhile.
            self._jobs.put(("remove", event_id, None))
        else:
            self.kafka.note(err)
            self.failed += 1
            log.warning("TokenEvent %s not delivered (%s); kept in the spool", event_id, err)
            self._done(event_id)

    def _done(self, event_id: str) -> None:
        with self._lock:
            self._inflight.discard(event_id)

    def _write_loop(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            with contextlib.suppress(queue.Empty):
                while len(jobs) < 5000:
                    jobs.append(self._jobs.get_nowait())
            adds = [j for j in jobs if j is not None and j[0] == "add"]
            removed = [j[1] for j in jobs if j is not None and j[0] == "remove"]
            if adds or removed:
                try:
                    self.spool.write([j[1] for j in adds], removed)
                except Exception as exc:
                    log.exception("spool write failed")
                    for j in adds:
                        j[2].set_exception(exc)  # type: ignore[union-attr]
                    removed = []  # still spooled: republished later, deduplicated downstream
                else:
                    for j in adds:
                        j[2].set_result(None)  # type: ignore[union-attr]
                for event_id in removed:
                    self._done(event_id)
            for j in jobs:
                if j is None:
                    self.spool.close()
                    return
                if j[0] == "call":
                    fn, fut = j[1], j[2]
                    try:
                        fut.set_result(fn())  # type: ignore[union-attr]
                    except Exception as exc:
                        fut.set_exception(exc)  # type: ignore[union-attr]

    async def _call(self, fn: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put(("call", fn, fut))
        return await asyncio.wrap_future(fut)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.kafka.poll(0.1)

    async def _republish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.republish_seconds)
            try:
                with self._lock:
                    busy = frozenset(self._inflight)
                rows = await self._call(lambda b=busy: self.spool.pending(1000, b))
                for event in rows:
                    with self._lock:
                        if event["event_id"] in self._inflight:
                            continue
                        self._inflight.add(event["event_id"])
                    self._produce(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad round
                log.exception("republishing the spool failed; retrying")

    async def spooled(self) -> int:
        return int(await self._call(self.spool.count))

    async def close(self, flush_seconds: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        # What is not delivered by now stays in the spool for the next start.
        await loop.run_in_executor(None, self.kafka.flush, flush_seconds)
        self._stop.set()
        if self._poller.is_alive():
            await loop.run_in_executor(None, self._poller.join, 2.0)
        if self._writer.is_alive():
            self._jobs.put(None)  # after the removes the flush queued: they are committed
            await loop.run_in_executor(None, self._writer.join, 10.0)
