"""Decode micro-benchmark: ``python -m schemas.bench [n]``."""

from __future__ import annotations

import sys
import time
from decimal import Decimal

from schemas.codec import Codec
from schemas.registry import FileRegistry

_BASE_MS = 1_700_000_000_000


def sample_messages(codec: Codec, count: int = 1_000) -> list[bytes]:
    """Single-event UsageEvent messages shaped like real traffic (a few dimensions, varied
    values), so the benchmark does not measure one cached path."""
    return [
        codec.encode(
            "meterline.UsageEvent",
            {
                "event_id": f"evt-{i:012d}",
                "customer_id": f"cust-{i % 97:05d}",
                "meter": ("api_calls", "images", "storage_gb")[i % 3],
                "value": Decimal(i % 1000) / 8,
                "timestamp": _BASE_MS + i * 37,
                "dimensions": {"region": ("eu", "us")[i % 2], "plan": "pro"},
            },
        )
        for i in range(count)
    ]


def decode_rate(n: int = 100_000) -> float:
    """Events per second of ``Codec.usage_events`` on single-event Avro messages."""
    codec = Codec(FileRegistry())
    messages = sample_messages(codec)
    usage_events = codec.usage_events
    for m in messages:  # warm the schema caches outside the timed loop
        usage_events(m)
    k = len(messages)
    decoded = 0
    start = time.perf_counter()
    for i in range(n):
        decoded += len(usage_events(messages[i % k]))
    elapsed = time.perf_counter() - start
    return decoded / elapsed


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"usage_events: {decode_rate(count):,.0f} events/s (single-event Avro messages)")
