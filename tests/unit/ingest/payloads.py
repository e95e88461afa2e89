"""Example payloads from the providers' own documentation (docs/INGESTION.md shows the same
ones, with their sources). Where a documented example leaves out a
field the mapping needs (an id, a time), the addition is marked "added"."""

from __future__ import annotations

import json
from typing import Any

# https://openmeter.io/docs/concepts/usage-events
OPENMETER_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "type": "request",
    "id": "00001",
    "time": "2024-01-01T00:00:00.001Z",
    "source": "service-0",
    "subject": "customer-1",
    "data": {"duration_seconds": "12", "method": "GET", "route": "/hello"},
}

# https://docs.stripe.com/api/billing/meter-event/object (the v1 answer's payload)
STRIPE_V1_FORM = {
    "event_name": "ai_search_api",
    "payload[value]": "25",
    "payload[stripe_customer_id]": "cus_NciAYcXfLnqBoz",
    "identifier": "identifier_123",
    "timestamp": "1680210639",
}

# https://docs.stripe.com/api/v2/billing-meter/object
STRIPE_V2_EVENT: dict[str, Any] = {
    "identifier": "idmp_12345678",
    "event_name": "ai_search_api",
    "timestamp": "2024-06-01T12:00:00.000Z",
    "payload": {"stripe_customer_id": "cus_12345678", "value": "25"},
}

# https://openrouter.ai/docs/use-cases/usage-accounting ("Response Format"): the usage
# object as documented; id, model and created added.
OPENROUTER_RESPONSE: dict[str, Any] = {
    "id": "gen-1767225600-AbCdEf",  # added
    "model": "anthropic/claude-3.7-sonnet",  # added
    "created": 1767225600,  # added
    "object": "chat.completion.chunk",
    "usage": {
        "completion_tokens": 2,
        "completion_tokens_details": {"reasoning_tokens": 0},
        "cost": 0.95,
        "cost_details": {"upstream_inference_cost": 19},
        "prompt_tokens": 194,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100, "audio_tokens": 0},
        "total_tokens": 196,
    },
}

# https://docs.helicone.ai/features/webhooks ("Enhanced payload (when include_data is
# enabled)"): the response body is truncated there, so the counts come from metadata.
HELICONE_ENHANCED: dict[str, Any] = {
    "request_id": "550e8400-e29b-41d4-a716-446655440000",
    "user_id": "user-123",
    "request_body": "truncated-request-data",
    "response_body": "truncated-response-data",
    "request_response_url": "https://s3-url-containing-full-data",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "metadata": {
        "cost": 0.0015,
        "promptTokens": 10,
        "completionTokens": 15,
        "totalTokens": 25,
        "latencyMs": 1200,
    },
}

# Helicone's own test webhook (Helicone/helicone, webhook sender's generateMockWebhookData):
# the response body is the OpenAI completion, whose usage has the cache split. user_id and a
# cached count added.
_HELICONE_RESPONSE = {
    "id": "chatcmpl-9f3b2c1d0e",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hey! Not much, just here to help you out.",
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 13,
        "completion_tokens": 17,
        "total_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},  # 8 added (was 0)
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}
HELICONE_MOCK: dict[str, Any] = {
    "request_id": "7d5c1a36-5b1e-4f0a-9a57-2f3c4e5d6f70",
    "request_body": json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "test message"}]}
    ),
    "response_body": json.dumps(_HELICONE_RESPONSE),
    "user_id": "user-123",  # added
    "model": "gpt-4o-2024-08-06",
    "provider": "OPENAI",
    "metadata": {
        "cost": 0.00020250000000000002,
        "promptTokens": 13,
        "completionTokens": 17,
        "totalTokens": 30,
        "latencyMs": 930,
    },
}

# Cloudflare AI Gateway log record: the fields of the Logs API's list response
# (cloudflare/cloudflare-typescript src/resources/ai-gateway/logs.ts, LogListResponse;
# https://developers.cloudflare.com/api/resources/ai_gateway/subresources/logs/methods/list/),
# with metadata from the custom-metadata docs' example header
# (https://developers.cloudflare.com/ai-gateway/observability/custom-metadata/). The values
# are ours.
CLOUDFLARE_LOG: dict[str, Any] = {
    "id": "01JGWX9Y2Z3A4B5C6D7E8F9G0H",
    "cached": False,
    "created_at": "2026-01-01T00:00:00.000Z",
    "duration": 1234,
    "model": "gpt-4o-mini",
    "path": "openai/chat/completions",
    "provider": "openai",
    "success": True,
    "tokens_in": 120,
    "tokens_out": 30,
    "cost": 0.000036,
    "metadata": '{"team": "AI", "user": 12345, "test":true}',
    "request_content_type": "application/json",
    "response_content_type": "application/json",
    "status_code": 200,
}


# Vercel AI Gateway's Stripe meter events
# (https://vercel.com/docs/ai-gateway/ecosystem/stripe-billing): event name
# token-billing-tokens, payload keys stripe_customer_id, value, model, token_type. The page
# describes the fields, not a full event: identifier and timestamp are ours.
def vercel_event(token_type: str, value: str, identifier: str) -> dict[str, Any]:
    return {
        "event_name": "token-billing-tokens",
        "identifier": identifier,
        "timestamp": "2026-01-01T00:00:00Z",
        "payload": {
            "stripe_customer_id": "cus_abc123",
            "value": value,
            "model": "anthropic/claude-sonnet-4",
            "token_type": token_type,
        },
    }
