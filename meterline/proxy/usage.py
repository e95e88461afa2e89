"""Token usage of one upstream response, per API shape, streaming and not.

Counts come from genai-prices' bundled extractors (``Provider.extract_usage``: the provider's
usage field → its ``Usage``), not from parsing each format here; only *where* the usage object
sits in a stream is ours. The provider's extractor definitions (root, model path, field
mappings) are read once and applied with plain dict lookups: genai-prices' own ``extract``
validates every value through its unit registry, which cost ~0.4–0.9 ms a response, the
largest part of the proxy's own work (profiled). A definition with a step other than a key
falls back to genai-prices' ``Provider.extract_usage``; tests compare both on every shape.
The top-level ``extract_usage`` is not used: it also looks the model up in its price data and
fails on a model it does not know, which must not stop metering.

Meaning of the counts (the TokenEvent contract):

- ``input_tokens``: ALL input, cached reads and cache writes included (OpenAI's
  ``prompt_tokens``; for Anthropic ``input_tokens + cache_read_input_tokens +
  cache_creation_input_tokens``, which genai-prices' extractor sums).
- ``cached_input_tokens``: the part of input read from cache; ``cache_write_tokens``: the part
  written to cache.
- ``output_tokens``: all output, reasoning included; ``reasoning_tokens``: the part that was
  reasoning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from genai_prices import data_snapshot
from genai_prices.types import Provider

from meterline.proxy.sse import SseEvent

Api = Literal["chat", "responses", "messages"]

# API → (genai-prices provider id, extractor flavor).
_EXTRACTOR: dict[str, tuple[str, str]] = {
    "chat": ("openai", "chat"),
    "responses": ("openai", "responses"),
    "messages": ("anthropic", "default"),
}
PROVIDER: dict[str, str] = {api: p for api, (p, _) in _EXTRACTOR.items()}


class UsageMissing(ValueError):
    """The response carries no usage the proxy can read."""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """What one completed upstream response is billed for."""

    response_id: str
    model: str
    counts: TokenCounts


@cache
def _provider(provider_id: str) -> Provider:
    snapshot = data_snapshot.get_snapshot()
    return next(p for p in snapshot.providers if p.id == provider_id)


# What TokenCounts takes from genai-prices' usage keys.
_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cached_input_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
}


@dataclass(frozen=True, slots=True)
class _Compiled:
    root: tuple[str, ...]
    model: tuple[str, ...]
    mappings: tuple[tuple[tuple[str, ...], str, bool], ...]  # (path, TokenCounts field, required)


def _keys(path: Any) -> tuple[str, ...] | None:
    steps = [path] if isinstance(path, str) else list(path)
    return tuple(steps) if all(isinstance(x, str) for x in steps) else None


@cache
def _compiled(api: str) -> _Compiled | None:
    provider_id, flavor = _EXTRACTOR[api]
    extractor = next(e for e in _provider(provider_id).extractors or [] if e.api_flavor == flavor)
    root, model = _keys(extractor.root), _keys(extractor.model_path)
    mappings = []
    for m in extractor.mappings:
        path = _keys(m.path)
        if path is None:
            return None
        if m.dest in _FIELDS:
            mappings.append((path, _FIELDS[m.dest], m.required))
    if root is None or model is None:
        return None
    return _Compiled(root, model, tuple(mappings))


def _walk(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def counts_of(api: str, payload: dict[str, Any]) -> tuple[str | None, TokenCounts]:
    """``payload`` is an object with ``model`` and ``usage`` as the API returns it."""
    c = _compiled(api)
    if c is None:
        return counts_via_genai_prices(api, payload)
    usage = _walk(payload, c.root)
    if not isinstance(usage, dict):
        raise UsageMissing(f"{api}: no usage object at {'.'.join(c.root)}")
    counts = dict.fromkeys(_FIELDS.values(), 0)
    for path, dest, required in c.mappings:
        value = _walk(usage, path)
        if value is None:
            if required:
                raise UsageMissing(f"{api}: usage has no {'.'.join(path)}")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageMissing(f"{api}: usage {'.'.join(path)} is {value!r}, not a count")
        counts[dest] += value  # several mappings to one key add up (Anthropic's input)
    model = _walk(payload, c.model)
    return (model if isinstance(model, str) else None), TokenCounts(**counts)


def counts_via_genai_prices(api: str, payload: dict[str, Any]) -> tuple[str | None, TokenCounts]:
    """The same through genai-prices' own extractor (the reference the tests compare with)."""
    provider_id, flavor = _EXTRACTOR[api]
    try:
        model, u = _provider(provider_id).extract_usage(payload, api_flavor=flavor)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageMissing(f"{api}: no usage: {exc}") from None
    # reported_value: what the response reported (0 when absent), without genai-prices'
    # inference of missing keys from related ones, which costs more than the extraction.
    get = u.reported_value
    return model, TokenCounts(
        input_tokens=int(get("input_tokens")),
        output_tokens=int(get("output_tokens")),
        cached_input_tokens=int(get("cache_read_tokens")),
        cache_write_tokens=int(get("cache_write_tokens")),
        reasoning_tokens=int(get("output_reasoning_tokens")),
    )


def completion_from_body(api: str, body: dict[str, Any]) -> Completion:
    """A non-streamed response: chat.completion, response, or message object."""
    response_id = body.get("id")
    if not isinstance(response_id, str) or not response_id:
        raise UsageMissing(f"{api}: response has no id")
    model, counts = counts_of(api, body)
    return Completion(response_id, model or str(body.get("model", "")), counts)


class StreamMeter:
    """Reads the usage out of a stream's events as they pass.

    - chat: every chunk carries the id and model; usage comes in one chunk with
      ``choices: []`` when ``stream_options.include_usage`` is set (the proxy sets it).
    - responses: ``response.completed`` (or ``.incomplete`` / ``.failed``, which the
      upstream bills too) carries the whole response with its usage.
    - messages: ``message_start`` has the id, model and input usage; ``message_delta``
      usage is cumulative (Anthropic's docs) and overrides it; ``message_stop`` ends it.
    """

    def __init__(self, api: str) -> None:
        self.api = api
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.final = False  # the terminal usage is known: bill now

    def feed(self, ev: SseEvent) -> bool:
        """Takes one event; True when it is the usage-only chunk of a chat stream (the one
        the proxy strips when it asked for usage on the client's behalf)."""
        data = ev.data
        if not data or data == "[DONE]" or data[0] != "{":
            return False
        try:
            obj = json.loads(data)
        except ValueError:
            return False  # not ours to judge: the client gets the bytes as they came
        if not isinstance(obj, dict):
            return False
        if self.api == "chat":
            return self._chat(obj)
        if self.api == "responses":
            self._responses(obj)
        else:
            self._messages(obj)
        return False

    def _chat(self, obj: dict[str, Any]) -> bool:
        self.response_id = self.response_id or obj.get("id")
        self.model = self.model or obj.get("model")
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            self.final = True
            return not obj.get("choices")
        return False

    def _responses(self, obj: dict[str, Any]) -> None:
        response = obj.get("response")
        if not isinstance(response, dict):
            return
        self.response_id = response.get("id") or self.response_id
        self.model = response.get("model") or self.model
        kind = obj.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            if isinstance(response.get("usage"), dict):
                self.usage = response["usage"]
            self.final = True

    def _messages(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            message = obj["message"]
            self.response_id = message.get("id")
            self.model = message.get("model")
            self.usage = dict(message.get("usage") or {})
        elif kind == "message_delta" and isinstance(obj.get("usage"), dict):
            merged = dict(self.usage or {})
            merged.update({k: v for k, v in obj["usage"].items() if v is not None})
            self.usage = merged
        elif kind == "message_stop":
            self.final = True

    def completion(self) -> Completion:
        """The billable completion; at the end of a cut stream, what the upstream reported
        so far. Raises UsageMissing when it reported no usage at all."""
        if self.usage is None or not self.response_id:
            raise UsageMissing(f"{self.api}: the stream carried no usage")
        model, counts = counts_of(self.api, {"model": self.model, "usage": self.usage})
        return Completion(self.response_id, model or self.model or "", counts)


def token_event(
    completion: Completion, customer: str, api: str, stream: bool, timestamp_ms: int
) -> dict[str, Any]:
    """The TokenEvent published to ``meterline.tokens`` (event_id = provider response id)."""
    c = completion.counts
    return {
        "event_id": completion.response_id,
        "customer_id": customer,
        "model": completion.model,
        "provider": PROVIDER[api],
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cached_input_tokens": c.cached_input_tokens,
        "cache_write_tokens": c.cache_write_tokens,
        "reasoning_tokens": c.reasoning_tokens,
        "timestamp": timestamp_ms,
        "dimensions": {"api": api, "stream": "true" if stream else "false", "via": "proxy"},
    }
