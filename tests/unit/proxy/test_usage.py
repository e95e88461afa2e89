"""Usage extraction per API shape, streamed and not, from the providers' documented shapes."""

from __future__ import annotations

import json

import pytest

from meterline.proxy.sse import SseSplitter
from meterline.proxy.usage import (
    StreamMeter,
    TokenCounts,
    UsageMissing,
    completion_from_body,
    token_event,
)

# OpenAI API reference, "The chat completion object" (with a prompt-caching usage block from
# the prompt caching guide: cached_tokens is part of prompt_tokens).
CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The image shows", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}
CACHED_REASONING = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920},
    "completion_tokens_details": {"reasoning_tokens": 192},
}


def sse(*events: str) -> bytes:
    return "".join(events).encode()


def meter(api: str, stream: bytes, chunk: int = 7) -> tuple[StreamMeter, list[bool]]:
    """Fed in small chunks, so events straddle chunk boundaries."""
    m, s, flags = StreamMeter(api), SseSplitter(), []
    for i in range(0, len(stream), chunk):
        for ev in s.feed(stream[i : i + chunk]):
            flags.append(m.feed(ev))
    assert s.rest() == b""
    return m, flags


def test_chat_plain() -> None:
    c = completion_from_body("chat", CHAT)
    assert c.response_id == CHAT["id"]
    assert c.model == "gpt-4o-2024-08-06"
    assert c.counts == TokenCounts(1117, 46, 0, 0, 0)


def test_chat_cached_and_reasoning() -> None:
    c = completion_from_body("chat", {**CHAT, "usage": CACHED_REASONING})
    # input includes the cached part, output includes the reasoning part (OpenAI semantics).
    assert c.counts == TokenCounts(2006, 300, 1920, 0, 192)


def test_chat_stream_usage_chunk() -> None:
    base = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_44709d6fcb",
    }
    chunks = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
        },
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
            ],
            "usage": None,
        },
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        },
        {**base, "choices": [], "usage": CACHED_REASONING},
    ]
    stream = sse(*(f"data: {json.dumps(c)}\n\n" for c in chunks), "data: [DONE]\n\n")
    m, flags = meter("chat", stream)
    assert flags == [False, False, False, True, False]  # only the usage-only chunk
    assert m.final
    c = m.completion()
    assert (c.response_id, c.model) == ("chatcmpl-123", "gpt-4o-mini")
    assert c.counts == TokenCounts(2006, 300, 1920, 0, 192)


def test_chat_stream_without_usage_is_not_billable() -> None:
    chunk = {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {}}]}
    m, _ = meter("chat", sse(f"data: {json.dumps(chunk)}\n\n", "data: [DONE]\n\n"))
    assert not m.final
    with pytest.raises(UsageMissing):
        m.completion()


RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [],
    "usage": {
        "input_tokens": 2006,
        "input_tokens_details": {"cached_tokens": 1920},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 2906,
    },
}


def test_responses_plain_and_cached() -> None:
    plain = {
        **RESPONSE,
        "usage": {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        },
    }
    assert completion_from_body("responses", plain).counts == TokenCounts(36, 87)
    c = completion_from_body("responses", RESPONSE)
    assert c.response_id.startswith("resp_")
    assert c.counts == TokenCounts(2006, 900, 1920, 0, 640)


def test_responses_stream_completed_event() -> None:
    created = {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**RESPONSE, "status": "in_progress", "usage": None},
    }
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
    }
    done = {"type": "response.completed", "sequence_number": 2, "response": RESPONSE}
    stream = sse(
        *(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in (created, delta, done))
    )
    m, flags = meter("responses", stream, chunk=11)
    assert not any(flags) and m.final
    assert m.completion().counts == TokenCounts(2006, 900, 1920, 0, 640)


# Anthropic Messages reference; usage with prompt caching (input_tokens excludes both cache
# counts, so the billed input is their sum).
MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 1800,
        "output_tokens": 503,
    },
}


def test_messages_plain() -> None:
    body = {**MESSAGE, "usage": {"input_tokens": 2095, "output_tokens": 503}}
    assert completion_from_body("messages", body).counts == TokenCounts(2095, 503)


def test_messages_cache_write_and_read() -> None:
    c = completion_from_body("messages", MESSAGE)
    assert c.counts == TokenCounts(50 + 2051 + 1800, 503, 1800, 2051, 0)


def test_messages_stream_cumulative_delta() -> None:
    start = {
        "type": "message_start",
        "message": {
            **MESSAGE,
            "content": [],
            "stop_reason": None,
            "usage": {**MESSAGE["usage"], "output_tokens": 1},
        },
    }
    events = [
        ("message_start", start),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hello"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 503},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    stream = sse(*(f"event: {k}\r\ndata: {json.dumps(d)}\r\n\r\n" for k, d in events))
    m, _ = meter("messages", stream, chunk=5)
    assert m.final
    c = m.completion()
    assert c.response_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert c.counts == TokenCounts(3901, 503, 1800, 2051, 0)


def test_messages_stream_cut_bills_what_was_reported() -> None:
    start = {
        "type": "message_start",
        "message": {**MESSAGE, "usage": {"input_tokens": 25, "output_tokens": 1}},
    }
    m, _ = meter("messages", sse(f"event: message_start\ndata: {json.dumps(start)}\n\n"))
    assert not m.final
    assert m.completion().counts == TokenCounts(25, 1)


def test_token_event_shape() -> None:
    c = completion_from_body("messages", MESSAGE)
    ev = token_event(c, "lora-a", "messages", True, 1_700_000_000_000)
    assert ev["event_id"] == MESSAGE["id"] and ev["provider"] == "anthropic"
    assert ev["input_tokens"] == 3901 and ev["cache_write_tokens"] == 2051
    assert ev["dimensions"] == {"api": "messages", "stream": "true", "via": "proxy"}


def _shapes() -> list[tuple[str, dict]]:
    from meterline.proxy.fake_upstream import USAGE

    out = [
        ("chat", CHAT),
        ("chat", {**CHAT, "usage": CACHED_REASONING}),
        ("responses", RESPONSE),
        ("messages", MESSAGE),
    ]
    out += [(api, {"model": "m", "usage": u}) for api, s in USAGE.items() for u in s.values()]
    # Anthropic's per-TTL cache-write breakdown and a thinking count genai-prices maps.
    out.append(
        (
            "messages",
            {
                "model": "m",
                "usage": {
                    **MESSAGE["usage"],
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 2000,
                        "ephemeral_1h_input_tokens": 51,
                    },
                },
            },
        )
    )
    return out


@pytest.mark.parametrize(("api", "body"), _shapes())
def test_fast_extraction_equals_genai_prices(api: str, body: dict) -> None:
    from meterline.proxy.usage import counts_of, counts_via_genai_prices

    assert counts_of(api, body) == counts_via_genai_prices(api, body)


def test_missing_required_usage() -> None:
    from meterline.proxy.usage import counts_of

    with pytest.raises(UsageMissing):
        counts_of("chat", {"model": "m", "usage": {"prompt_tokens": 3}})
    with pytest.raises(UsageMissing):
        counts_of("messages", {"model": "m"})
