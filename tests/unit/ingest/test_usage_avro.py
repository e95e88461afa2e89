"""The direct UsageEvent writer writes exactly the codec's bytes, for any valid event."""

from __future__ import annotations

from decimal import Context, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.ingest.usage_avro import UsageWriter
from schemas.codec import Codec
from schemas.names import USAGE_EVENT, USAGE_EVENT_BATCH
from schemas.registry_choice import registry_from_settings
from schemas.validate import usage_event

CODEC = Codec(registry_from_settings(""))
WRITER = UsageWriter(CODEC)

text = st.text(min_size=1, max_size=20)
# Any Decimal(38, 12): an unscaled integer of up to 38 digits and 0-12 fractional places.
values = st.builds(
    lambda unscaled, places: Decimal(unscaled).scaleb(-places, Context(prec=100)),
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.integers(min_value=0, max_value=12),
).filter(lambda d: abs(d) < Decimal(10) ** 26)
events = st.builds(
    lambda i, c, m, v, t, d: usage_event(
        {"event_id": i, "customer_id": c, "meter": m, "value": v, "timestamp": t, "dimensions": d}
    ),
    text,
    text,
    text,
    values,
    st.integers(min_value=0, max_value=2**63 - 1),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)


def test_the_writer_is_in_use() -> None:
    assert WRITER.direct


@settings(max_examples=150, deadline=None)
@given(events)
def test_single_event_bytes_equal_the_codec(event: dict) -> None:
    assert WRITER.single(event) == CODEC.encode(USAGE_EVENT, event)
    assert CODEC.usage_events(WRITER.single(event)) == [event]


@settings(max_examples=40, deadline=None)
@given(st.lists(events, min_size=1, max_size=20))
def test_envelope_bytes_equal_the_codec(batch: list[dict]) -> None:
    assert WRITER.batch(batch) == CODEC.encode(USAGE_EVENT_BATCH, {"events": batch})
