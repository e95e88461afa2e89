"""``MeterlineProducer``: typed events to Meterline's topics, with every record accounted for.

Avro in the Confluent wire format through the project codec (JSON on request), keyed by
customer (murmur2, the worker's home partition, so nothing is forwarded), librdkafka's
idempotent producer (a retried send is written once), optionally many events of one customer
per Kafka message (``UsageEventBatch``/``TokenEventBatch`` envelopes: the throughput path, as
the worker's per-message cost is what limits it). ``flush`` says exactly which records the
broker did not acknowledge."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from io import BytesIO
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Producer
from fastavro import schemaless_writer

from meterline.client.delivery import DeliveryReport, DeliveryTracker, UndeliveredRecords
from meterline.client.events import Event, TokenEvent, UsageEvent
from meterline.settings import Settings, get_settings
from schemas.codec import MAGIC, Codec
from schemas.names import TOKEN_EVENT, TOKEN_EVENT_BATCH, USAGE_EVENT, USAGE_EVENT_BATCH
from schemas.registry_choice import registry_from_settings
from schemas.validate import to_json_bytes, usage_event
from schemas.validate_tokens import token_event
from streams import topics
from streams.producer import BrokerUnreachable, check_reachable, make_producer, send

__all__ = ["BrokerUnreachable", "MeterlineProducer"]

# Kind of event -> (single schema, envelope schema, validator). The validator runs at send()
# so a bad event fails where it was made, not later inside somebody else's envelope.
_KINDS = {
    "usage": (USAGE_EVENT, USAGE_EVENT_BATCH, usage_event),
    "tokens": (TOKEN_EVENT, TOKEN_EVENT_BATCH, token_event),
}
_POLL_EVERY = 1000  # messages between polls that serve delivery reports (frees memory)


class MeterlineProducer:
    """Publishes usage and token events; use as a context manager or call ``flush``/``close``.

    ``batch_size`` > 1 gathers up to that many events of one customer into one envelope
    message; a partial envelope goes out at ``flush`` or once it is ``batch_linger`` seconds
    old (checked on ``send`` and ``poll``). ``delivery_timeout`` bounds how long librdkafka
    keeps retrying a record before reporting it failed. The constructor checks that a broker
    answers (``BrokerUnreachable`` within ``connect_timeout`` seconds otherwise), so a wrong
    address fails at once instead of after every record timed out."""

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        batch_size: int = 1,
        batch_linger: float = 1.0,
        delivery_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        as_json: bool = False,
        usage_topic: str = topics.USAGE,
        token_topic: str = topics.TOKENS,
        settings: Settings | None = None,
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
        check_broker: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        settings = settings or get_settings()
        self.bootstrap = bootstrap or settings.broker
        self.batch_size = batch_size
        self.batch_linger = batch_linger
        self.delivery_timeout = delivery_timeout
        self.as_json = as_json
        self.topic_of = {"usage": usage_topic, "tokens": token_topic}
        self.codec = codec or Codec(registry_from_settings(settings.schema_registry_url))
        overrides = {"message.timeout.ms": int(delivery_timeout * 1000), **(config or {})}
        self.producer: Producer = make_producer(self.bootstrap, **overrides)
        self.tracker = DeliveryTracker()
        # (kind, customer) -> (first event's monotonic time, validated records, their ids).
        self._buffers: dict[tuple[str, str], tuple[float, list[dict[str, Any]], list[str]]] = {}
        self._since_poll = 0
        self._closed = False
        self._envelope_writers: dict[str, tuple[bytes, Any]] = {}
        self.last_report: DeliveryReport | None = None
        # Lingering envelopes are looked for at most every tenth of the linger, not per event.
        self._linger_check = 0.0
        if check_broker:
            try:
                check_reachable(self.producer, self.bootstrap, timeout=connect_timeout)
            except BrokerUnreachable:
                # Else librdkafka keeps reconnecting (and logging) until garbage collection.
                self._closed = True
                self.producer.close()
                raise

    # ------------------------------------------------------------------ sending

    def send(self, event: Event) -> None:
        """Queues one event (validated now: ``ValueError`` names a bad field)."""
        kind = "usage" if isinstance(event, UsageEvent) else "tokens"
        if not isinstance(event, UsageEvent | TokenEvent):
            raise TypeError(f"expected a UsageEvent or TokenEvent, got {type(event).__name__}")
        self.send_record(kind, event.record())

    def send_many(self, events: Iterable[Event]) -> None:
        for event in events:
            self.send(event)

    def send_record(self, kind: str, record: Mapping[str, Any]) -> None:
        """Queues an event given as a dict in its Avro shape; ``kind`` is "usage" or
        "tokens". For callers that already hold dicts (``meterline produce``)."""
        single, _, validate = _KINDS[kind]
        if self.batch_size == 1 and not self.as_json:
            # The codec validates as it encodes (EncodeError names the field): one pass.
            value = self.codec.encode(single, record if type(record) is dict else dict(record))
            self._produce(self.topic_of[kind], record["customer_id"], value, [record["event_id"]])
            return
        # Validated here, so a bad event fails at its own send(), not inside an envelope.
        checked = validate(dict(record))
        customer = checked["customer_id"]
        event_id = checked["event_id"]
        if self.batch_size == 1:  # JSON single events
            self._produce(self.topic_of[kind], customer, to_json_bytes(checked), [event_id])
            return
        key = (kind, customer)
        buffered = self._buffers.get(key)
        if buffered is None:
            buffered = self._buffers[key] = (time.monotonic(), [], [])
        buffered[1].append(checked)
        buffered[2].append(event_id)
        if len(buffered[1]) >= self.batch_size:
            self._emit(key)
        elif time.monotonic() >= self._linger_check:
            self._emit_lingering()

    def send_value(self, topic: str, key: str | None, value: bytes, ref: str) -> None:
        """Queues a value as it is (any topic: account commands, payment outcomes, JSON);
        ``ref`` names it in the delivery report."""
        self._produce(topic, key, value, [ref])

    def poll(self, timeout: float = 0.0) -> None:
        """Serves delivery reports and sends envelopes older than ``batch_linger``."""
        self._emit_lingering()
        self.producer.poll(timeout)

    # ------------------------------------------------------------------ accounting

    @property
    def acknowledged(self) -> int:
        """Records acknowledged since the last flush (live, for progress displays)."""
        return self.tracker.report.acknowledged

    @property
    def pending_envelopes(self) -> int:
        return len(self._buffers)

    def flush(
        self, timeout: float | None = None, *, raise_on_failure: bool = True
    ) -> DeliveryReport:
        """Sends partial envelopes, waits up to ``timeout`` seconds (default: the delivery
        timeout plus 5 s, by when librdkafka has reported every record) and returns what the
        broker acknowledged since the previous flush. Raises ``UndeliveredRecords`` naming
        every record that was not acknowledged, unless ``raise_on_failure`` is False."""
        for key in list(self._buffers):
            self._emit(key)
        wait = self.delivery_timeout + 5.0 if timeout is None else timeout
        self.producer.flush(wait)
        report = self.last_report = self.tracker.close_window()
        if raise_on_failure and not report.ok:
            raise UndeliveredRecords(report)
        return report

    def close(self, timeout: float | None = None, *, raise_on_failure: bool = True) -> None:
        """Flushes (see ``flush``) and releases librdkafka's connections and threads."""
        if self._closed:
            return
        try:
            self.flush(timeout, raise_on_failure=raise_on_failure)
        finally:
            self._closed = True
            self.producer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception in the block, flush what was queued but let that exception win.
        # The report of the final flush is ``last_report``.
        self.close(raise_on_failure=exc_type is None)

    # ------------------------------------------------------------------ internals

    def _envelope(self, kind: str, records: list[dict[str, Any]]) -> bytes:
        if self.as_json:
            return to_json_bytes({"events": records})
        name = _KINDS[kind][1]
        writer = self._envelope_writers.get(name)
        if writer is None:
            # Straight to fastavro with the registry's schema: the events were validated at
            # send(), and codec.encode would check every one of them again.
            schema_id = self.codec.registry.id_for(name)
            header = bytes([MAGIC]) + schema_id.to_bytes(4, "big")
            writer = self._envelope_writers[name] = (
                header,
                self.codec.registry.schema_for(schema_id),
            )
        buf = BytesIO()
        buf.write(writer[0])
        schemaless_writer(buf, writer[1], {"events": records})
        return buf.getvalue()

    def _emit(self, key: tuple[str, str]) -> None:
        kind, customer = key
        _, records, ids = self._buffers.pop(key)
        self._produce(self.topic_of[kind], customer, self._envelope(kind, records), ids)

    def _emit_lingering(self) -> None:
        now = time.monotonic()
        self._linger_check = now + self.batch_linger / 10
        if not self._buffers:
            return
        cutoff = now - self.batch_linger
        for key in [k for k, (since, _, _) in self._buffers.items() if since <= cutoff]:
            self._emit(key)

    def _produce(self, topic: str, key: str | None, value: bytes, ids: list[str]) -> None:
        if self._closed:
            raise RuntimeError("this MeterlineProducer is closed")
        send(self.producer, topic, key, value, on_delivery=self.tracker.register(ids))
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self.producer.poll(0)
