"""Fuzzing the decoders every input record goes through (schemas/codec.py, as the usage agent
calls it in streams/usage_pipeline.py): whatever the bytes, decoding returns records or raises
DecodeError (the DLQ path, with a reason), never another exception, and it returns quickly.

hypothesis, not atheris (not installed): arbitrary bytes, bytes that start like the wire
format (magic byte + a real schema id + junk), mutations of valid Avro and JSON values, and
JSON documents of any shape under the right field names."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec, DecodeError
from schemas.registry_choice import registry_from_settings
from streams.producer import TOKEN_EVENT, USAGE_BATCH, USAGE_EVENT

CODEC = Codec(registry_from_settings(""))
GOOD_USAGE = {
    "event_id": "e-1",
    "customer_id": "c-1",
    "meter": "api_calls",
    "value": Decimal("1.5"),
    "timestamp": 1_767_225_600_000,
    "dimensions": {"region": "eu"},
}
GOOD_TOKENS = {
    "event_id": "t-1",
    "customer_id": "c-1",
    "model": "gpt-4o",
    "provider": "openai",
    "input_tokens": 100,
    "output_tokens": 20,
    "cached_input_tokens": 0,
    "timestamp": 1_767_225_600_000,
    "dimensions": {},
}
VALID = [
    CODEC.encode(USAGE_EVENT, GOOD_USAGE),
    CODEC.encode(USAGE_BATCH, {"events": [GOOD_USAGE, {**GOOD_USAGE, "event_id": "e-2"}]}),
    CODEC.encode(TOKEN_EVENT, GOOD_TOKENS),
    json.dumps({**GOOD_USAGE, "value": "1.5"}).encode(),
    json.dumps(GOOD_TOKENS).encode(),
]
HEADERS = sorted({v[:5] for v in VALID if v[0] == 0})
DECODERS: list[Callable[[bytes], Any]] = [
    CODEC.decode,
    CODEC.usage_events,
    CODEC.token_events,
    CODEC.usage_events_lenient,
    CODEC.token_events_lenient,
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_decodes_or_rejects(data: bytes) -> None:
    for decode in DECODERS:
        started = time.monotonic()
        try:
            out = decode(data)
        except DecodeError as exc:
            assert str(exc), "a rejection must say why"
        else:
            _check_lenient(decode, out)
        # No hang: a value of a few KiB is decided in far less than a second.
        assert time.monotonic() - started < 1.0


def _check_lenient(decode: Callable[[bytes], Any], out: Any) -> None:
    if decode in (CODEC.usage_events_lenient, CODEC.token_events_lenient):
        good, bad = out
        assert all(b.reason for b in bad)  # every bad event of a batch has its reason
        assert all(isinstance(e, dict) for e in good)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_decodes_or_rejects(data)


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=512))
def test_wire_format_header_with_junk_body(header: bytes, body: bytes) -> None:
    assert_decodes_or_rejects(header + body)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_values(value: bytes, data: st.DataObject) -> None:
    raw = bytearray(value)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if not raw:
            break
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    assert_decodes_or_rejects(bytes(raw))


JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | st.sampled_from(["NaN", "Infinity", "-1", "1e400", "0.0000000000001", "", " 1 "])
)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = list(GOOD_USAGE) + list(GOOD_TOKENS) + ["events", "cache_write_tokens"]


@FUZZ
@given(
    st.sampled_from([GOOD_USAGE, GOOD_TOKENS]), st.dictionaries(st.sampled_from(FIELDS), JSON_ANY)
)
def test_json_events_with_any_field_values(base: dict[str, Any], changes: dict[str, Any]) -> None:
    doc = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in base.items()}
    doc.update(changes)
    for shape in (doc, [doc], {"events": [doc, doc]}):
        assert_decodes_or_rejects(json.dumps(shape).encode())


@FUZZ
@given(st.text(max_size=300))
def test_json_like_text(text: str) -> None:
    assert_decodes_or_rejects(("{" + text).encode())
    assert_decodes_or_rejects(text.encode("utf-8", "surrogatepass"))


def test_absurd_nesting_is_rejected_not_a_crash() -> None:
    assert_decodes_or_rejects(b"[" * 100_000)
    assert_decodes_or_rejects(b'{"events": ' + b"[" * 50_000)
