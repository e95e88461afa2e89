"""TokenEvent versions on the wire: records written under the retired schema ids 3 (TokenEvent)
and 4 (TokenEventBatch) counted cached tokens OUTSIDE input_tokens; the codec adds them in, so
they bill exactly what they billed before. And the parts-within-totals validation, which
sends offending events to the DLQ with a clear reason."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH, load_catalog
from meterline.metering.windows import EventTimeLimits
from meterline.processor.inputs import InputKind, Origin
from meterline.processor.triage import Gate, Triage
from schemas.codec import Codec, DecodeError, EncodeError
from schemas.names import TOKEN_EVENT, TOKEN_EVENT_BATCH
from schemas.registry import FileRegistry, UnknownSchema

T0 = 1_767_225_600_000
REGISTRY = FileRegistry()
CODEC = Codec(REGISTRY)
BOOK = load_catalog(DEFAULT_CATALOG_PATH).price_book()


def old_event(**over: Any) -> dict[str, Any]:
    ev = {
        "event_id": "t-1",
        "customer_id": "cust-1",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1000,  # schema id 3: the uncached input only
        "output_tokens": 300,
        "cached_input_tokens": 400,
        "timestamp": T0,
        "dimensions": {},
    }
    ev.update(over)
    return ev


def wire(
    schema_id: int, record: Any, registry: Any = REGISTRY, writer_id: int | None = None
) -> bytes:
    buf = BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(buf, registry.schema_for(writer_id or schema_id), record)
    return buf.getvalue()


def old_cost(ev: dict[str, Any]) -> Decimal:
    """What schema id 3 meant: input × input price + cached × cached price + output."""
    p = BOOK.price_at(ev["model"], ev["timestamp"])
    assert p is not None
    return (
        ev["input_tokens"] * p.input_per_million
        + ev["cached_input_tokens"] * p.cached_input_per_million
        + ev["output_tokens"] * p.output_per_million
    ).scaleb(-6)


def new_cost(ev: dict[str, Any]) -> Decimal:
    args = (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["timestamp"])
    return BOOK.cost(ev["model"], *args, cache_write_tokens=ev["cache_write_tokens"]).cost


counts = st.integers(0, 10**12)


@given(counts, counts, counts, st.sampled_from(["gpt-4o", "claude-sonnet", "llama-70b"]))
def test_a_schema_3_record_costs_what_it_cost_before(
    uncached: int, cached: int, out: int, model: str
) -> None:
    ev = old_event(
        input_tokens=uncached, cached_input_tokens=cached, output_tokens=out, model=model
    )
    (decoded,) = CODEC.token_events(wire(3, ev))
    assert decoded["input_tokens"] == uncached + cached
    assert decoded["cached_input_tokens"] == cached
    assert decoded["cache_write_tokens"] == decoded["reasoning_tokens"] == 0
    assert new_cost(decoded) == old_cost(ev)


def test_a_schema_4_batch_is_normalised_event_by_event() -> None:
    events = [old_event(event_id=f"t-{i}", cached_input_tokens=i * 100) for i in range(4)]
    good, bad = CODEC.token_events_lenient(wire(4, {"events": events}))
    assert bad == []
    assert [e["input_tokens"] for e in good] == [1000, 1100, 1200, 1300]
    assert [new_cost(e) for e in good] == [old_cost(e) for e in events]
    assert CODEC.token_events(wire(4, {"events": events})) == good


def test_a_forwarded_old_record_is_not_normalised_twice() -> None:
    # The processor re-encodes records it forwards to their home partition: under id 11.
    (decoded,) = CODEC.token_events(wire(3, old_event()))
    again = CODEC.encode(TOKEN_EVENT, decoded)
    assert int.from_bytes(again[1:5], "big") == REGISTRY.id_for(TOKEN_EVENT) == 11
    assert CODEC.token_events(again) == [decoded]
    assert CODEC.token_events(CODEC.encode_token_batch([decoded])) == [decoded]


class ForeignIds:
    """A Confluent-like registry: the old schema under an id of its own choosing."""

    def __init__(self) -> None:
        self._ids = {100_003: REGISTRY.schema_for(3), 100_011: REGISTRY.schema_for(11)}

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._ids:
            raise UnknownSchema(str(schema_id))
        return self._ids[schema_id]

    def id_for(self, name: str) -> int:
        return 100_011


def test_the_old_version_is_recognised_by_its_fields_not_its_id() -> None:
    codec = Codec(ForeignIds())
    (decoded,) = codec.token_events(wire(100_003, old_event(), writer_id=3))
    assert decoded["input_tokens"] == 1400
    current = codec.encode(TOKEN_EVENT, dict(decoded))
    assert codec.token_events(current)[0]["input_tokens"] == 1400


def test_json_follows_the_current_semantics() -> None:
    line = (
        b'{"event_id": "j", "customer_id": "c", "model": "gpt-4o", "provider": "openai",'
        b' "input_tokens": 1000, "output_tokens": 10, "cached_input_tokens": 400,'
        b' "reasoning_tokens": 4, "timestamp": 1767225600000}'
    )
    (ev,) = CODEC.token_events(line)
    assert ev["input_tokens"] == 1000  # includes the 400 cached: nothing added
    assert (ev["cache_write_tokens"], ev["reasoning_tokens"]) == (0, 4)


def current(**over: Any) -> dict[str, Any]:
    return old_event(**{"cache_write_tokens": 0, "reasoning_tokens": 0, **over})


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        (
            {"cached_input_tokens": 1001},
            r"cached_input_tokens \(1001\) \+ cache_write_tokens \(0\)",
        ),
        ({"cache_write_tokens": 1001, "cached_input_tokens": 0}, r"exceed input_tokens \(1000\)"),
        ({"cache_write_tokens": 700, "cached_input_tokens": 301}, "must count ALL input tokens"),
        ({"reasoning_tokens": 301}, r"reasoning_tokens \(301\) exceed output_tokens \(300\)"),
    ],
)
def test_parts_beyond_their_totals_are_rejected(over: dict[str, Any], reason: str) -> None:
    bad = current(**over)
    with pytest.raises(EncodeError, match=reason):
        CODEC.encode(TOKEN_EVENT, bad)
    text = CODEC.to_json_bytes(bad)
    with pytest.raises(DecodeError, match=reason):
        CODEC.token_events(text)
    # Written by a producer that does not check: the Avro path rejects it too.
    with pytest.raises(DecodeError, match=reason):
        CODEC.token_events(wire(11, bad))


def test_a_bad_event_of_an_envelope_goes_to_the_dlq_and_the_rest_is_kept() -> None:
    events = [current(event_id="ok-1"), current(event_id="bad", reasoning_tokens=999), current()]
    value = wire(12, {"events": events})
    records, rejected = CODEC.token_events_lenient(value)
    assert [r["event_id"] for r in records] == ["ok-1", "t-1"]
    # The worker's path from here: triage puts every problem of the message in one dead letter.
    triage = Triage()
    gate = Gate(EventTimeLimits(), BOOK, home=lambda customer: 0)
    origin = Origin("meterline.tokens", 0, 7, b"cust-1", value)
    bad = [(b.index, b.reason) for b in rejected]
    triage.add_message(gate, InputKind.TOKENS, origin, records, bad, T0, rehomed=False)
    assert len(triage.by_customer["cust-1"]) == 2
    (reject,) = triage.rejects
    assert reject.origin == origin
    assert reject.reason.startswith("event #1: event 1: reasoning_tokens (999) exceed")


def test_batch_schema_names() -> None:
    assert REGISTRY.id_for(TOKEN_EVENT_BATCH) == 12
    assert REGISTRY.schema_for(4)["name"] == TOKEN_EVENT_BATCH
