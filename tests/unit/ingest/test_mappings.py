"""Every mapping on the providers' documented example payloads (tests/unit/ingest/payloads.py),
through the same validation the routes apply (schemas.validate + the event-time gate)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from meterline.ingest import cloudevents, gateways, stripe
from meterline.ingest.records import TOKENS, USAGE, Kind, Mapper, map_records
from meterline.metering.windows import EventTimeLimits
from tests.unit.ingest import payloads as p

LIMITS = EventTimeLimits()
MS = 1000


def as_received(record: Any) -> Any:
    """As the routes parse a body: JSON numbers with a fraction become Decimals."""
    return json.loads(json.dumps(record), parse_float=Decimal)


def one(mapper: Mapper, kind: Kind, record: Any, now_ms: int) -> dict[str, Any]:
    mapped = map_records([as_received(record)], mapper, kind, LIMITS, now_ms)
    assert not mapped.errors, mapped.errors
    assert not mapped.skipped, mapped.skipped
    (event,) = mapped.events
    return event


def at(iso: str) -> int:
    from schemas.validate import iso_to_ms

    return iso_to_ms(iso, "t")


USAGE_CASES = [
    pytest.param(
        cloudevents.to_usage,
        p.OPENMETER_EVENT,
        at("2024-01-01T00:00:10Z"),
        {
            "event_id": "service-0:00001",
            "customer_id": "customer-1",
            "meter": "request",
            "value": Decimal(1),
            "timestamp": at("2024-01-01T00:00:00.001Z"),
            "dimensions": {"duration_seconds": "12", "method": "GET", "route": "/hello"},
        },
        id="openmeter-cloudevent",
    ),
    pytest.param(
        cloudevents.to_usage,
        {**p.OPENMETER_EVENT, "data": {"value": 2.50, "ok": True, "n": 3, "none": None}},
        at("2024-01-01T00:00:10Z"),
        {"value": Decimal("2.5"), "dimensions": {"ok": "true", "n": "3"}},
        id="cloudevent-value-and-scalars",
    ),
    pytest.param(
        stripe.to_usage,
        stripe.form_event(p.STRIPE_V1_FORM.items()),
        1680210639 * MS + 5000,
        {
            "event_id": "identifier_123",
            "customer_id": "cus_NciAYcXfLnqBoz",
            "meter": "ai_search_api",
            "value": Decimal(25),
            "timestamp": 1680210639 * MS,
            "dimensions": {},
        },
        id="stripe-v1-form",
    ),
    pytest.param(
        stripe.to_usage,
        p.STRIPE_V2_EVENT,
        at("2024-06-01T12:10:00Z"),
        {
            "event_id": "idmp_12345678",
            "customer_id": "cus_12345678",
            "meter": "ai_search_api",
            "value": Decimal(25),
            "timestamp": at("2024-06-01T12:00:00Z"),
        },
        id="stripe-v2-event",
    ),
]


@pytest.mark.parametrize(("mapper", "record", "now_ms", "expected"), USAGE_CASES)
def test_usage_mappings(mapper: Mapper, record: Any, now_ms: int, expected: dict) -> None:
    event = one(mapper, USAGE, record, now_ms)
    assert {k: event[k] for k in expected} == expected


def tokens(i: int, o: int, cached: int = 0, write: int = 0, reasoning: int = 0) -> dict:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cached_input_tokens": cached,
        "cache_write_tokens": write,
        "reasoning_tokens": reasoning,
    }


NOW_2026 = at("2026-01-01T00:00:30Z")
TOKEN_CASES = [
    pytest.param(
        partial(gateways.openrouter, customer="acme"),
        p.OPENROUTER_RESPONSE,
        NOW_2026,
        {
            "event_id": "gen-1767225600-AbCdEf",
            "customer_id": "acme",
            "model": "claude-3.7-sonnet",
            "provider": "anthropic",
            "timestamp": 1767225600 * MS,
            **tokens(194, 2, 0, 100, 0),
            "dimensions": {
                "gateway": "openrouter",
                "gateway_cost": "0.95",
                "gateway_model": "anthropic/claude-3.7-sonnet",
            },
        },
        id="openrouter-usage-accounting",
    ),
    pytest.param(
        partial(gateways.openrouter, customer="from-header"),
        {**p.OPENROUTER_RESPONSE, "user": "from-body"},
        NOW_2026,
        {"customer_id": "from-body"},
        id="openrouter-user-field-wins",
    ),
    pytest.param(
        gateways.helicone,
        p.HELICONE_ENHANCED,
        NOW_2026,
        {
            "event_id": "550e8400-e29b-41d4-a716-446655440000",
            "customer_id": "user-123",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "timestamp": NOW_2026,  # the webhook has no time of its own: received now
            **tokens(10, 15),
            "dimensions": {"gateway": "helicone", "gateway_cost": "0.0015"},
        },
        id="helicone-enhanced-metadata",
    ),
    pytest.param(
        gateways.helicone,
        p.HELICONE_MOCK,
        NOW_2026,
        {
            "model": "gpt-4o-2024-08-06",
            "provider": "openai",
            "timestamp": 1767225600 * MS,
            **tokens(13, 17, cached=8),
        },
        id="helicone-response-body-usage",
    ),
    pytest.param(
        gateways.helicone,
        {
            **p.HELICONE_ENHANCED,
            "provider": "ANTHROPIC",
            "model": "claude-sonnet-4",
            "response_body": '{"id": "msg_1", "model": "claude-sonnet-4", "usage": '
            '{"input_tokens": 10, "cache_read_input_tokens": 100, '
            '"cache_creation_input_tokens": 20, "output_tokens": 5}}',
        },
        NOW_2026,
        {"provider": "anthropic", **tokens(130, 5, cached=100, write=20)},
        id="helicone-anthropic-body-adds-cache-tokens",
    ),
    pytest.param(
        gateways.cloudflare,
        p.CLOUDFLARE_LOG,
        NOW_2026,
        {
            "event_id": "01JGWX9Y2Z3A4B5C6D7E8F9G0H",
            "customer_id": "12345",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "timestamp": at("2026-01-01T00:00:00Z"),
            **tokens(120, 30),
            "dimensions": {"gateway": "cloudflare", "gateway_cost": "0.000036"},
        },
        id="cloudflare-log-record",
    ),
    pytest.param(
        gateways.cloudflare,
        {**p.CLOUDFLARE_LOG, "metadata": {"customer_id": "acme", "user": "x"}},
        NOW_2026,
        {"customer_id": "acme"},
        id="cloudflare-customer-id-before-user",
    ),
]


@pytest.mark.parametrize(("mapper", "record", "now_ms", "expected"), TOKEN_CASES)
def test_token_mappings(mapper: Mapper, record: Any, now_ms: int, expected: dict) -> None:
    event = one(mapper, TOKENS, record, now_ms)
    assert {k: event[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("token_type", "counts"),
    [
        ("input", tokens(1200, 0)),
        ("output", tokens(0, 1200)),
        ("cached_input", tokens(1200, 0, cached=1200)),
        ("cached_write", tokens(1200, 0, write=1200)),
    ],
)
def test_vercel_token_types(token_type: str, counts: dict) -> None:
    event = one(gateways.vercel, TOKENS, p.vercel_event(token_type, "1200", "ev-1"), NOW_2026)
    assert {k: event[k] for k in counts} == counts
    assert (event["model"], event["provider"], event["customer_id"]) == (
        "claude-sonnet-4",
        "anthropic",
        "cus_abc123",
    )
    assert event["dimensions"]["token_type"] == token_type


def test_vercel_parts_add_up_to_the_request() -> None:
    # One request, four meter events: the summed TokenEvents are its whole usage, once.
    parts = [("input", "300"), ("cached_input", "1000"), ("cached_write", "200"), ("output", "50")]
    records = [p.vercel_event(t, v, f"req-1:{t}") for t, v in parts]
    mapped = map_records(records, gateways.vercel, TOKENS, LIMITS, NOW_2026)
    assert not mapped.errors
    total = {k: sum(e[k] for e in mapped.events) for k in tokens(0, 0)}
    assert total == tokens(1500, 50, cached=1000, write=200)
    assert len({e["event_id"] for e in mapped.events}) == 4


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({**p.CLOUDFLARE_LOG, "cached": True}, "served from the AI Gateway cache"),
        ({**p.CLOUDFLARE_LOG, "success": False}, "did not succeed"),
    ],
)
def test_cloudflare_skips(record: dict, reason: str) -> None:
    mapped = map_records([record], gateways.cloudflare, TOKENS, LIMITS, NOW_2026)
    assert not mapped.events and not mapped.errors
    assert reason in mapped.skipped[0].reason


def test_cloudflare_page_and_list_bodies() -> None:
    assert gateways.cloudflare_records({"result": [1, 2], "success": True}) == [1, 2]
    assert gateways.cloudflare_records([1]) == [1]
    assert gateways.cloudflare_records({"id": "x"}) == [{"id": "x"}]


def test_stripe_missing_identifier_is_generated_and_idempotency_key_used() -> None:
    event = {k: v for k, v in p.STRIPE_V2_EVENT.items() if k != "identifier"}
    mapped = map_records([event], stripe.to_usage, USAGE, LIMITS, at("2024-06-01T12:00:05Z"))
    assert mapped.events[0]["event_id"].startswith("mev_")
    keyed = partial(stripe.to_usage, identifier="idem-1")
    event = {k: v for k, v in p.STRIPE_V2_EVENT.items() if k != "identifier"}
    mapped = map_records([event], keyed, USAGE, LIMITS, at("2024-06-01T12:00:05Z"))
    assert mapped.events[0]["event_id"] == "idem-1"


def _with_usage(**usage: Any) -> dict:
    record = copy.deepcopy(p.OPENROUTER_RESPONSE)
    record["usage"].update(usage)
    return record


ERROR_CASES = [
    (cloudevents.to_usage, USAGE, {**p.OPENMETER_EVENT, "specversion": "0.3"}, 'must be "1.0"'),
    (cloudevents.to_usage, USAGE, {**p.OPENMETER_EVENT, "data": {"a": {"b": 1}}},
     "field 'data.a': a dimension must be a string, number or boolean"),
    (cloudevents.to_usage, USAGE, {**p.OPENMETER_EVENT, "time": "2024-01-01T00:00:00"},
     "without a UTC offset"),
    (cloudevents.to_usage, USAGE, {**p.OPENMETER_EVENT, "data": {"value": "1e999999"}},
     "field 'data.value'"),
    (stripe.to_usage, USAGE, {**p.STRIPE_V2_EVENT, "payload": {"stripe_customer_id": "c",
                                                               "value": "abc"}},
     "field 'payload[value]': not a decimal: 'abc'"),
    (partial(gateways.openrouter, customer="a"), TOKENS, {**p.OPENROUTER_RESPONSE, "usage": None},
     "missing field 'usage'"),
    (partial(gateways.openrouter, customer="a"), TOKENS, _with_usage(prompt_tokens=-1),
     "field 'usage.prompt_tokens': expected a non-negative integer"),
    (partial(gateways.openrouter, customer="a"), TOKENS,
     _with_usage(prompt_tokens_details={"cached_tokens": 500}),
     "exceed input_tokens (194): input_tokens must count ALL input tokens"),
    (gateways.helicone, TOKENS, {**p.HELICONE_ENHANCED, "user_id": None},
     "missing field 'user_id' (set the Helicone-User-Id header"),
    (gateways.cloudflare, TOKENS, {**p.CLOUDFLARE_LOG, "metadata": '{"team": "AI"}'},
     "no customer: add customer_id (or user) to the request's cf-aig-metadata header"),
    (gateways.vercel, TOKENS, p.vercel_event("reasoning", "1", "x"),
     "expected one of input, output, cached_input, cached_write, got 'reasoning'"),
    (gateways.vercel, TOKENS, p.vercel_event("input", "-3", "x"),
     "field 'payload.value': expected a non-negative integer"),
]  # fmt: skip


@pytest.mark.parametrize(("mapper", "kind", "record", "reason"), ERROR_CASES)
def test_invalid_records_are_named_with_a_clear_reason(
    mapper: Mapper, kind: Kind, record: Any, reason: str
) -> None:
    mapped = map_records([as_received(record)], mapper, kind, LIMITS, NOW_2026)
    assert not mapped.events
    (error,) = mapped.errors
    assert error.index == 0 and reason in error.reason, error.reason
