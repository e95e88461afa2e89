"""Token events (TokenEvent, current and retired versions): what each count includes and the
checks that its parts never exceed their totals. The shared field checks are validate.py's."""

from __future__ import annotations

from typing import Any

from schemas.validate import (
    MAX_LONG,
    DecodeError,
    _kind,
    _required,
    _text,
    to_count,
    to_dimensions,
    to_timestamp,
)


def token_event(obj: Any) -> dict[str, Any]:
    """A TokenEvent from JSON (or a Python dict given to the encoder), normalised. JSON always
    has the current semantics (see TokenEvent.avsc): input and output are totals, the cached,
    cache-write and reasoning counts are parts of them."""
    if type(obj) is not dict:
        raise DecodeError(f"expected an event object, got {_kind(obj)}")
    ev = {
        "event_id": _text(obj, "event_id"),
        "customer_id": _text(obj, "customer_id"),
        "model": _text(obj, "model"),
        "provider": _text(obj, "provider"),
        "input_tokens": to_count(_required(obj, "input_tokens"), "input_tokens"),
        "output_tokens": to_count(_required(obj, "output_tokens"), "output_tokens"),
        "cached_input_tokens": _optional_count(obj, "cached_input_tokens"),
        "timestamp": to_timestamp(_required(obj, "timestamp"), "timestamp"),
        "dimensions": to_dimensions(obj.get("dimensions")),
        "cache_write_tokens": _optional_count(obj, "cache_write_tokens"),
        "reasoning_tokens": _optional_count(obj, "reasoning_tokens"),
    }
    _check_token_parts(ev)
    return ev


def _optional_count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    return 0 if value is None else to_count(value, key)


def _check_token_parts(ev: dict[str, Any]) -> None:
    # A part larger than its total would price negative uncached input (or is a producer
    # reporting cached tokens outside input_tokens, the old semantics): refuse, never guess.
    inp = ev["input_tokens"]
    if ev["cached_input_tokens"] + ev["cache_write_tokens"] > inp:
        raise DecodeError(
            f"cached_input_tokens ({ev['cached_input_tokens']}) + cache_write_tokens "
            f"({ev['cache_write_tokens']}) exceed input_tokens ({inp}): input_tokens must "
            "count ALL input tokens, cached and cache-written ones included"
        )
    if ev["reasoning_tokens"] > ev["output_tokens"]:
        raise DecodeError(
            f"reasoning_tokens ({ev['reasoning_tokens']}) exceed output_tokens "
            f"({ev['output_tokens']}): output_tokens must count ALL output tokens, reasoning "
            "included"
        )


def check_token_avro(ev: dict[str, Any]) -> dict[str, Any]:
    if (
        ev["event_id"]
        and ev["customer_id"]
        and ev["model"]
        and ev["provider"]
        and ev["output_tokens"] >= ev["reasoning_tokens"] >= 0
        and ev["cached_input_tokens"] >= 0
        and ev["cache_write_tokens"] >= 0
        and ev["input_tokens"] >= ev["cached_input_tokens"] + ev["cache_write_tokens"]
        and ev["timestamp"] >= 0
    ):
        return ev
    for key in ("event_id", "customer_id", "model", "provider"):
        _text(ev, key)
    for key in _TOKEN_COUNTS:
        to_count(ev[key], key)
    to_timestamp(ev["timestamp"], "timestamp")
    _check_token_parts(ev)
    raise AssertionError("unreachable")  # pragma: no cover


_TOKEN_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def check_token_avro_v1(ev: dict[str, Any]) -> dict[str, Any]:
    """A TokenEvent written with a schema before cache_write_tokens (id 3, or the batch id 4):
    its input_tokens excluded the cached tokens. Adding them in gives the current semantics,
    and the current formula then gives exactly the old cost (input x input price + cached x
    cached price): stored records bill as they did."""
    cached = ev["cached_input_tokens"]
    if type(cached) is int and type(ev["input_tokens"]) is int and cached > 0:
        total = ev["input_tokens"] + cached
        if total > MAX_LONG:
            raise DecodeError(
                f"input_tokens + cached_input_tokens ({total}) do not fit a long (schema id 3 "
                "counted cached tokens outside input_tokens)"
            )
        ev["input_tokens"] = total
    return check_token_avro(ev)
