"""Deterministic sample usage for the demo, the tests and the benchmark, with an independent
reference of what the totals must be."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

DAY_MS = 86_400_000

# (meter, how a value is drawn): sums of exact decimals, never floats.
SAMPLE_METERS = {
    "api_calls": lambda r: Decimal(1),
    "image_generations": lambda r: Decimal(r.randint(1, 4)),
    "compute_seconds": lambda r: Decimal(r.randint(1, 40_000)) / Decimal(1000),
}


@dataclass
class SampleUsage:
    unique: list[dict] = field(default_factory=list)
    # What gets published: unique events, repeats of some of them, in a shuffled order.
    published: list[dict] = field(default_factory=list)
    garbage: list[bytes] = field(default_factory=list)


def generate_usage(
    n: int,
    customers: int,
    start_ms: int,
    span_ms: int = DAY_MS,
    duplicate_rate: float = 0.0,
    garbage_rate: float = 0.0,
    seed: int = 7,
    prefix: str = "cust",
    in_order: bool = False,
) -> SampleUsage:
    """``in_order``: event times follow publication order with ±30 s jitter, as live
    producers send them; otherwise times are uniform over the span and shuffled, the hard
    case for windowing (most events arrive late)."""
    r = random.Random(seed)
    names = [f"{prefix}-{i:03d}" for i in range(customers)]
    meters = list(SAMPLE_METERS)
    out = SampleUsage()
    for i in range(n):
        meter = meters[i % len(meters)]
        out.unique.append(
            {
                "event_id": f"evt-{seed}-{i:08d}",
                "customer_id": r.choice(names),
                "meter": meter,
                "value": SAMPLE_METERS[meter](r),
                "timestamp": (
                    start_ms + i * span_ms // n + r.randint(-30_000, 30_000)
                    if in_order
                    else start_ms + r.randrange(span_ms)
                ),
                "dimensions": {"region": r.choice(["eu", "us"])},
            }
        )
    out.published = list(out.unique)
    out.published.extend(r.choice(out.unique) for _ in range(int(n * duplicate_rate)))
    if not in_order:
        r.shuffle(out.published)
    for i in range(int(n * garbage_rate)):
        out.garbage.append(
            r.choice(
                [
                    b"\x00\x00\x00\x03\xe7garbage",  # wire format, unregistered schema id 999
                    b"not avro, not json",
                    b'{"event_id": "g%d", "customer_id": "x"}' % i,  # missing fields
                    b'{"event_id": "g%d", "customer_id": "x", "meter": "api_calls", '
                    b'"value": "abc", "timestamp": 1}' % i,
                ]
            )
        )
    return out


def totals(events: list[dict]) -> dict[tuple[str, str], tuple[Decimal, int]]:
    """Reference: sum and count per (customer, meter), computed plainly."""
    acc: dict[tuple[str, str], list] = defaultdict(lambda: [Decimal(0), 0])
    for e in events:
        a = acc[(e["customer_id"], e["meter"])]
        a[0] += e["value"]
        a[1] += 1
    return {k: (v[0], v[1]) for k, v in acc.items()}
