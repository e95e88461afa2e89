"""Correct Tansu's end offsets for Faust table recovery. Used only against Tansu.

Why this exists: Tansu answers ListOffsets(latest) with the base offset of the partition's
last record batch + 1 instead of the high watermark. When the last batch holds N > 1 records
the reported end is N - 1 short (measured: one batch of 5 records at offsets 0..4 reports
end 1; batches of 3 and 4 report 4 instead of 7). Faust recovers a table by reading its
changelog up to ``consumer.highwaters()`` (aiokafka ``end_offsets``, i.e. ListOffsets), so
recovery stops inside the last batch and the table silently loses the newest updates (a
counter rebuilt as 1999 instead of 2000).

Tansu's Fetch response carries the true high watermark. The reported end - 1 is the base
offset of the last batch, so a fetch there always reaches the last batch and returns the
true value. Only ``highwaters()`` is wrong in Faust's use: the per-partition ``highwater()``
it uses for lag already comes from fetch responses.

Real Kafka reports end offsets correctly, and this costs a client and a fetch per rebalance,
so it is installed per app and only when ``Settings.broker_is_tansu`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import faust
from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.types import TP

from meterline.settings import Settings
from streams.runtime.consumer_hooks import on_consumer_created

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=tuple[str, int])

_MARK = "_meterline_tansu_end_offset_fix"

# Under Faust's broker_request_timeout (90 s), which bounds the whole highwater step. 10 s was
# not enough for Tansu to answer a fetch near the end of sixteen changelog partitions holding
# 100,000 customers' states (measured: every partition left unconfirmed).
FETCH_TIMEOUT_SECONDS = 60.0


class EndOffsetsUnconfirmed(RuntimeError):
    """Tansu did not answer in time: recovering to its reported (short) end would silently drop
    the newest state, so recovery fails instead and the worker is restarted."""


def true_end_offsets(
    bootstrap: str, reported: Mapping[K, int | None], timeout: float = FETCH_TIMEOUT_SECONDS
) -> dict[K, int | None]:
    """Return ``reported`` with each end offset replaced by the high watermark that a fetch
    at (reported end - 1) sees. Keys are (topic, partition) tuples such as Faust's TP and
    are returned unchanged. Raises ``EndOffsetsUnconfirmed`` when a partition's fetch gets no
    answer in time: its true end is unknown, and the reported one may be short."""
    result: dict[K, int | None] = dict(reported)
    # An empty partition reports 0 correctly: any record makes the reported end at least 1.
    wanted = {(key[0], key[1]): key for key, end in reported.items() if end is not None and end > 0}
    if not wanted:
        return result
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by the client, never joined: assign() below bypasses the group.
            "group.id": "meterline-tansu-end-offset-fix",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
            "logger": logging.getLogger("streams.runtime.tansu_fix.rdkafka"),
        }
    )
    try:
        consumer.assign(
            [
                TopicPartition(topic, partition, int(reported[key]) - 1)  # type: ignore[arg-type]
                for (topic, partition), key in wanted.items()
            ]
        )
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            tp = (msg.topic(), msg.partition())
            if tp not in pending:
                continue
            error = msg.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                logger.warning("tansu end-offset fetch on %s failed: %s", tp, error)
                continue
            # The cached watermark is the high watermark of the fetch response that carried
            # this message (or EOF); a message's own offset + 1 is a floor for it.
            _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            seen = msg.offset() if error is not None else msg.offset() + 1
            key = wanted[tp]
            result[key] = max(int(reported[key]), high, seen)  # type: ignore[arg-type]
            pending.discard(tp)
        if pending:
            raise EndOffsetsUnconfirmed(
                f"no fetch answer within {timeout:.0f} s for {sorted(pending)}; the reported "
                "end offsets may be short (Tansu) and recovering to them would lose updates"
            )
    finally:
        consumer.close()
    corrected = {k: (reported[k], v) for k, v in result.items() if v != reported[k]}
    if corrected:
        logger.info("tansu end offsets corrected (reported, true): %s", corrected)
    return result


def _bootstrap(app: faust.App) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker_consumer)


def _pause_fetching(aio_consumer: Any) -> list[Any]:
    """Pauses every assigned partition aiokafka is fetching; returns those, to resume."""
    paused = aio_consumer.paused()
    tps = [tp for tp in aio_consumer.assignment() if tp not in paused]
    aio_consumer.pause(*tps)
    return tps


def _resume_fetching(aio_consumer: Any, tps: list[Any]) -> None:
    assigned = aio_consumer.assignment()  # a rebalance may have taken some meanwhile
    aio_consumer.resume(*(tp for tp in tps if tp in assigned))


@contextlib.asynccontextmanager
async def _fetching_paused(consumer: Any) -> AsyncIterator[None]:
    """Faust pauses partitions in its own bookkeeping only: aiokafka's fetcher goes on
    fetching every assigned partition, changelogs included, and Tansu's answers to those
    starved the fetches of :func:`true_end_offsets` (measured, 60,000 customers: 1.5 s alone,
    9.4 s during a restart, 3.0 s with aiokafka paused; ready 16.3 s then 10.6 s). Recovery
    has not started, so nothing fetched meanwhile could be delivered; what this pauses is
    resumed before recovery reads."""
    thread = getattr(consumer, "_thread", None)
    if thread is None:  # no aiokafka consumer behind it, nothing fetching
        yield
        return
    aio_consumer = thread._ensure_consumer()
    paused = await thread.call_thread(_pause_fetching, aio_consumer)
    try:
        yield
    finally:
        await thread.call_thread(_resume_fetching, aio_consumer, paused)


def _patch_consumer(consumer: Any, bootstrap: str) -> None:
    reported_highwaters: Callable[..., Awaitable[Mapping[TP, int]]] = consumer.highwaters

    async def highwaters(*partitions: TP) -> Mapping[TP, int]:
        reported = await reported_highwaters(*partitions)
        async with _fetching_paused(consumer):
            # Blocking client: keep it off the event loop, whose heartbeats must go on.
            return await asyncio.to_thread(true_end_offsets, bootstrap, reported)  # type: ignore[return-value]

    # An instance attribute shadows the method for this one consumer only.
    consumer.highwaters = highwaters


def apply_tansu_end_offset_fix(app: faust.App) -> None:
    """Make this app's table recovery read Tansu changelogs to their true end.

    Call it right after creating the app and only when the broker is Tansu; nothing else
    (other apps, the faust classes) is changed. Calling it twice is harmless."""
    bootstrap = _bootstrap(app)
    on_consumer_created(app, _MARK, lambda consumer: _patch_consumer(consumer, bootstrap))


def maybe_apply_tansu_end_offset_fix(app: faust.App, settings: Settings) -> bool:
    """Apply the fix when ``settings.broker_is_tansu``; return whether it was applied."""
    if not settings.broker_is_tansu:
        return False
    apply_tansu_end_offset_fix(app)
    return True
