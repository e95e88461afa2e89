"""AI gateways' usage records → TokenEvent (meterline.tokens). Pure mapping; the README's
"Gateway feeds" section shows each provider's documented payload and where it comes from.

TokenEvent counts (schemas/avro/TokenEvent.avsc): ``input_tokens`` is ALL input, cache reads
and cache writes included; ``cached_input_tokens`` and ``cache_write_tokens`` are parts of
it; ``output_tokens`` is all output, ``reasoning_tokens`` a part of it. The event id is the
gateway's request/generation id, so a re-delivered record is counted once.

Usage is read from the documented fields by hand rather than with genai-prices'
``extract_usage``: that refuses any model missing from its snapshot (LookupError), and a
gateway record must be billable whatever model the price book knows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from meterline.ingest import stripe
from meterline.ingest.records import Skip, dimension_text, optional_text, split_model, text
from schemas.validate import DecodeError, show, to_count, to_timestamp

CUSTOMER_HEADER = "X-Meterline-Customer"
VERCEL_EVENT_NAME = "token-billing-tokens"


def _dict(obj: Any, key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise DecodeError(f"field '{where}{key}': expected an object, got {show(value)}")
    return value


def _count(obj: dict[str, Any], key: str, where: str, required: bool = False) -> int:
    value = obj.get(key)
    if value is None:
        if required:
            raise DecodeError(f"missing field '{where}{key}'")
        return 0
    return to_count(value, where + key)


def _cost(dims: dict[str, str], value: Any) -> None:
    # The gateway's own price of the request, kept beside the event (exact text) so it can
    # be compared with Meterline's price book; it is not what the customer is charged.
    if type(value) in (int, Decimal):
        dims["gateway_cost"] = format(Decimal(value), "f")


def usage_counts(usage: dict[str, Any], where: str = "usage.") -> tuple[int, int, int, int, int]:
    """(input, output, cached, cache_write, reasoning) from an OpenAI-compatible ``usage``
    (prompt_tokens already counts cached and cache-write tokens) or an Anthropic one
    (input_tokens excludes them: they are added in)."""
    if "prompt_tokens" in usage:
        prompt = _dict(usage, "prompt_tokens_details", where)
        completion = _dict(usage, "completion_tokens_details", where)
        pd, cd = f"{where}prompt_tokens_details.", f"{where}completion_tokens_details."
        return (
            _count(usage, "prompt_tokens", where, True),
            _count(usage, "completion_tokens", where, True),
            _count(prompt, "cached_tokens", pd),
            _count(prompt, "cache_write_tokens", pd),
            _count(completion, "reasoning_tokens", cd),
        )
    if "input_tokens" in usage:  # Anthropic Messages
        read = _count(usage, "cache_read_input_tokens", where)
        write = _count(usage, "cache_creation_input_tokens", where)
        fresh = _count(usage, "input_tokens", where, True)
        return fresh + read + write, _count(usage, "output_tokens", where, True), read, write, 0
    raise DecodeError(f"field '{where[:-1]}': no prompt_tokens or input_tokens in it")


def _event(
    event_id: str,
    customer: str,
    slug: str,
    provider: str | None,
    counts: tuple[int, int, int, int, int],
    timestamp: int,
    dims: dict[str, str],
) -> dict[str, Any]:
    slug_provider, model = split_model(slug)
    if slug_provider is not None:
        dims["gateway_model"] = slug
    inp, out, cached, write, reasoning = counts
    return {
        "event_id": event_id,
        "customer_id": customer,
        "model": model,
        "provider": (provider or slug_provider or "unknown").lower(),
        "input_tokens": inp,
        "output_tokens": out,
        "cached_input_tokens": cached,
        "cache_write_tokens": write,
        "reasoning_tokens": reasoning,
        "timestamp": timestamp,
        "dimensions": dims,
    }


def _created(obj: dict[str, Any], now_ms: int) -> int:
    # OpenAI-compatible responses carry `created` in Unix seconds.
    created = obj.get("created")
    return created * 1000 if type(created) is int and created > 0 else now_ms


# --------------------------------------------------------------------------- OpenRouter


def openrouter(record: Any, _index: int, now_ms: int, customer: str | None = None) -> dict:
    """A chat completion (or the final streamed chunk) with OpenRouter's ``usage``. The
    customer is the record's ``user`` (the request's user field, if the caller copies it in)
    or the X-Meterline-Customer header."""
    if type(record) is not dict:
        raise DecodeError(f"expected an OpenRouter response object, got {show(record)}")
    who = optional_text(record, "user") or customer
    if who is None:
        raise DecodeError(f"no customer: send the {CUSTOMER_HEADER} header or a 'user' field")
    usage = record.get("usage")
    if type(usage) is not dict:
        raise DecodeError("missing field 'usage' (OpenRouter returns it in every response)")
    dims = {"gateway": "openrouter"}
    _cost(dims, usage.get("cost"))
    upstream = optional_text(record, "provider")
    if upstream is not None:
        dims["gateway_upstream"] = upstream
    return _event(
        text(record, "id", "the generation id"),
        who,
        text(record, "model"),
        None,
        usage_counts(usage),
        _created(record, now_ms),
        dims,
    )


# --------------------------------------------------------------------------- Helicone


def _json_text(value: Any) -> Any:
    # Helicone sends bodies as JSON text, replaced by a notice when over 10 KB, and a
    # streamed response is SSE text: anything that is not a JSON object is simply unused.
    if type(value) is not str or not value.startswith("{"):
        return None
    try:
        parsed = json.loads(value, parse_float=Decimal)
    except ValueError:
        return None
    return parsed if type(parsed) is dict else None


def helicone(record: Any, _index: int, now_ms: int) -> dict:
    """Helicone's webhook body. The customer is ``user_id`` (the Helicone-User-Id header of
    the logged request). Counts come from the response body's ``usage`` when it is there
    (it has the cache split), else from ``metadata`` (promptTokens/completionTokens)."""
    if type(record) is not dict:
        raise DecodeError(f"expected a Helicone webhook object, got {show(record)}")
    request_id = text(record, "request_id")
    customer = text(record, "user_id", "set the Helicone-User-Id header on the logged requests")
    response = _json_text(record.get("response_body")) or {}
    request = _json_text(record.get("request_body")) or {}
    metadata = _dict(record, "metadata", "")
    usage = response.get("usage")
    if type(usage) is dict and ("prompt_tokens" in usage or "input_tokens" in usage):
        counts = usage_counts(usage, "response_body.usage.")
        shape = "anthropic" if "input_tokens" in usage else "openai"
    else:
        inp = _count(metadata, "promptTokens", "metadata.", True)
        counts = (inp, _count(metadata, "completionTokens", "metadata.", True), 0, 0, 0)
        shape = None
    model = optional_text(record, "model") or response.get("model") or request.get("model")
    if type(model) is not str or not model:
        raise DecodeError("missing field 'model' (and none in the request or response body)")
    dims = {"gateway": "helicone"}
    _cost(dims, metadata.get("cost"))
    provider = optional_text(record, "provider") or shape
    return _event(request_id, customer, model, provider, counts, _created(response, now_ms), dims)


# --------------------------------------------------------------------------- Cloudflare


def cloudflare_records(body: Any) -> list[Any]:
    """Log records: one, a list, or a page of the Logs API (``{"result": [...]}``)."""
    if type(body) is dict and type(body.get("result")) is list:
        return body["result"]
    return body if type(body) is list else [body]


def cloudflare(record: Any, _index: int, now_ms: int) -> dict:
    """An AI Gateway log record (the Logs API's shape). The customer is the ``customer_id``
    (else ``user``) entry of the request's custom metadata (cf-aig-metadata header)."""
    if type(record) is not dict:
        raise DecodeError(f"expected an AI Gateway log record, got {show(record)}")
    log_id = text(record, "id")
    if record.get("success") is False:
        raise Skip("the request did not succeed: no tokens to bill")
    if record.get("cached") is True:
        raise Skip("served from the AI Gateway cache: the provider was not called")
    metadata = record.get("metadata")
    if type(metadata) is str:
        try:
            metadata = json.loads(metadata, parse_float=Decimal) if metadata else {}
        except ValueError:
            raise DecodeError(f"field 'metadata': not JSON: {show(metadata)}") from None
    if metadata is None:
        metadata = {}
    if type(metadata) is not dict:
        raise DecodeError(f"field 'metadata': expected an object, got {show(metadata)}")
    raw = metadata.get("customer_id", metadata.get("user"))
    customer = dimension_text(raw, "metadata.customer_id")
    if not customer:
        raise DecodeError(
            "no customer: add customer_id (or user) to the request's cf-aig-metadata header"
        )
    counts = (_count(record, "tokens_in", ""), _count(record, "tokens_out", ""), 0, 0, 0)
    dims = {"gateway": "cloudflare"}
    _cost(dims, record.get("cost"))
    return _event(
        log_id,
        customer,
        text(record, "model"),
        text(record, "provider"),
        counts,
        to_timestamp(record.get("created_at", now_ms), "created_at"),
        dims,
    )


# --------------------------------------------------------------------------- Vercel

# One meter event per token type of a request. Each is its own TokenEvent with only its own
# count (a cache read or write also counts as input, since input_tokens includes them): the
# counts of a request add up to its whole usage, every part is idempotent by its own
# identifier, and cost is linear in each count, so the parts cost exactly what the whole
# does. Nothing is counted twice and nothing waits for a sibling that may never come.
_VERCEL_PARTS = {
    "input": lambda n: (n, 0, 0, 0, 0),
    "output": lambda n: (0, n, 0, 0, 0),
    "cached_input": lambda n: (n, 0, n, 0, 0),
    "cached_write": lambda n: (n, 0, 0, n, 0),
}


def vercel_records(body: Any) -> list[Any]:
    if type(body) is dict and "events" in body:
        events = body["events"]
        if type(events) is not list:
            raise DecodeError(f"field 'events': expected a list, got {show(events)}")
        return events
    return body if type(body) is list else [body]


def vercel(record: Any, _index: int, now_ms: int) -> dict:
    """A meter event as Vercel AI Gateway's Stripe integration emits it (event_name
    token-billing-tokens, payload stripe_customer_id, value, model, token_type)."""
    if type(record) is not dict:
        raise DecodeError(f"expected a meter event object, got {show(record)}")
    payload = record.get("payload")
    if type(payload) is not dict:
        raise DecodeError("missing field 'payload'")
    token_type = payload.get("token_type")
    part = _VERCEL_PARTS.get(token_type) if type(token_type) is str else None
    if part is None:
        raise DecodeError(
            f"field 'payload.token_type': expected one of {', '.join(_VERCEL_PARTS)}, "
            f"got {show(token_type)}"
        )
    value = payload.get("value")
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    count = to_count(value, "payload.value")
    identifier = optional_text(record, "identifier") or stripe.new_identifier()
    dims = {"gateway": "vercel", "token_type": token_type}
    return _event(
        identifier,
        text(payload, "stripe_customer_id", name="payload.stripe_customer_id"),
        text(payload, "model", name="payload.model"),
        None,
        part(count),
        stripe.timestamp_ms(record.get("timestamp"), "timestamp", now_ms),
        dims,
    )


def header_customer(headers: Mapping[str, str]) -> str | None:
    value = headers.get(CUSTOMER_HEADER)
    return value.strip() or None if value else None
