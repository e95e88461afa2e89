"""The producer client counts what the broker acknowledged, per record (issue 11). The
failure path uses real librdkafka against a closed loopback port: every record must come back
as undelivered, by event id, never as published."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterline.client import (
    BrokerUnreachable,
    MeterlineProducer,
    TokenEvent,
    UndeliveredRecords,
    UsageEvent,
)
from meterline.client.delivery import DeliveryTracker
from meterline.embedded.tansu import free_port
from meterline.settings import Settings

QUIET = {"log_level": 0}


def _usage(i: int, customer: str = "c1") -> UsageEvent:
    return UsageEvent(
        event_id=f"e{i}",
        customer_id=customer,
        meter="api_calls",
        value=Decimal("1.5"),
        timestamp=1767225600000,
    )


def _dead(**kwargs: object) -> MeterlineProducer:
    return MeterlineProducer(
        f"127.0.0.1:{free_port()}",
        settings=Settings(),
        delivery_timeout=0.5,
        check_broker=False,
        config=QUIET,
        **kwargs,  # type: ignore[arg-type]
    )


def test_every_single_event_to_a_dead_broker_is_named() -> None:
    producer = _dead()
    for i in range(5):
        producer.send(_usage(i))
    with pytest.raises(UndeliveredRecords) as caught:
        producer.flush(10)
    report = caught.value.report
    assert (report.sent, report.messages, report.acknowledged) == (5, 5, 0)
    assert sorted(caught.value.event_ids) == [f"e{i}" for i in range(5)]
    assert "5 of 5 records were NOT acknowledged" in str(caught.value)
    assert not report.ok


def test_an_envelope_is_lost_as_a_whole_and_each_of_its_events_is_named() -> None:
    producer = _dead(batch_size=3)
    for i in range(7):
        producer.send(_usage(i, customer=f"c{i % 2}"))  # c0: 4 events, c1: 3 events
    report = producer.flush(10, raise_on_failure=False)
    # c1 fills one envelope of 3; c0 one of 3 plus a partial one of 1 sent at flush.
    assert (report.sent, report.messages, report.acknowledged) == (7, 3, 0)
    assert sorted(report.undelivered_ids) == [f"e{i}" for i in range(7)]
    assert report.undelivered == 7


def test_a_flush_timeout_reports_records_still_in_flight() -> None:
    producer = MeterlineProducer(
        f"127.0.0.1:{free_port()}",
        settings=Settings(),
        delivery_timeout=30,
        check_broker=False,
        config=QUIET,
    )
    producer.send(_usage(1))
    report = producer.flush(0.2, raise_on_failure=False)
    assert report.unreported == ["e1"] and report.failed == []
    assert report.undelivered == 1


def test_unreachable_broker_fails_fast_at_construction() -> None:
    with pytest.raises(BrokerUnreachable, match="no Kafka broker answered"):
        MeterlineProducer(
            f"127.0.0.1:{free_port()}", settings=Settings(), connect_timeout=1, config=QUIET
        )


def test_bad_events_fail_at_send_naming_the_field() -> None:
    producer = _dead()
    with pytest.raises(ValueError, match="float"):
        producer.send(
            UsageEvent(customer_id="c", meter="m", value=0.1, timestamp=1)  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="input_tokens"):
        producer.send(
            TokenEvent(customer_id="c", model="m", provider="p", input_tokens=-1, output_tokens=0)
        )
    assert producer.flush(1).sent == 0


def test_tracker_counts_acks_and_failures_and_ignores_late_reports() -> None:
    class Err:
        def str(self) -> str:
            return "boom"

    tracker = DeliveryTracker()
    ok = tracker.register(["a", "b"])
    bad = tracker.register(["c"])
    late = tracker.register(["d"])
    ok(None, None)  # type: ignore[arg-type]
    bad(Err(), None)  # type: ignore[arg-type]
    report = tracker.close_window()
    assert (report.sent, report.acknowledged) == (4, 2)
    assert report.failed == [("c", "boom")] and report.unreported == ["d"]
    late(None, None)  # type: ignore[arg-type]  # arrives after the window closed
    assert tracker.report.acknowledged == 0 and report.acknowledged == 2


def test_token_event_optional_fields_default_to_zero() -> None:
    record = TokenEvent(
        customer_id="c", model="m", provider="p", input_tokens=1, output_tokens=2
    ).record()
    assert record["cache_write_tokens"] == 0 and record["reasoning_tokens"] == 0
    assert record["cached_input_tokens"] == 0 and record["event_id"]
