"""The chaos run's input: a generated Lora workload, deterministic from a seed.

Two kinds of customers, kept apart so the reference can be exact without knowing how the worker
interleaved topics:

- *metering* customers send usage over every meter (one undeclared) and LLM token events,
  through three partitioners (murmur2 keyed, librdkafka's CRC32 keyed, keyless), with repeated
  ids, late events past grace and single events beside Avro batch envelopes. They have no
  account, so only metering surfaces depend on them, and those are order-free sums;
- *billing* customers are on the Lora plan with auto top-up. Their usage is keyed (murmur2),
  so it reaches their home partition in publish order, and their account commands and payment
  outcomes are published only between rounds, after the round's usage was applied (the
  harness waits), so the pure-domain reference sees one customer's inputs in the worker's
  order (the approach of tests/integration/test_billing_lora.py).

A repeated id travels the route of its original, after it: the first one seen wins, also when
the repeat carries changed values (the dedup contract: an event id is counted once, as first
seen). Every malformed record is a message of its own and must produce exactly one DLQ row.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.codec import Codec
from streams import topics
from streams.producer import TOKEN_EVENT, USAGE_BATCH, USAGE_EVENT

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
PLAN_ID = "lora-pro"
PROCESSORS = ("stripe", "adyen", "braintree")
MODELS = ("gpt-4o", "claude-sonnet", "llama-70b")
# Declared meters of the catalog, and one nobody declared (README: stored and summed).
METERS = ("api_calls", "image_generations", "active_users", "storage_gb", "latency_ms_max")
UNDECLARED_METER = "chaos_undeclared"
TOPUP_POLICY = {
    "threshold": "20.00",
    "mode": "fixed",
    "amount": "100.00",
    "cooldown_ms": 0,
    "retry_delays_ms": [HOUR],
    "max_per_period": 5,
}


@dataclass(frozen=True, slots=True)
class Msg:
    """One Kafka message. ``route``: murmur (keyed, Java's partitioner), crc32 (keyed,
    librdkafka's) or nokey. ``events``: the valid events it carries, for the reference."""

    topic: str
    key: str | None
    value: bytes
    route: str = "murmur"
    events: tuple[dict[str, Any], ...] = ()
    malformed: str = ""  # the kind, when this message must end in the DLQ


@dataclass(slots=True)
class Round:
    messages: list[Msg] = field(default_factory=list)


@dataclass(slots=True)
class Workload:
    now_ms: int
    anchor_ms: int  # billing anchor: start of last month; the run closes that period
    metering: list[str]
    billing: list[str]
    commands: list[dict[str, Any]]  # account commands, published before round 0
    rounds: list[Round]
    price_change: dict[str, Any]  # catalog change published before round len//2
    malformed_commands: list[Msg]  # accounts/payments garbage, published with the commands

    @property
    def messages(self) -> int:
        return (
            len(self.commands)
            + len(self.malformed_commands)
            + sum(len(r.messages) for r in self.rounds)
            + 1
        )

    @property
    def malformed(self) -> int:
        inside = sum(1 for r in self.rounds for m in r.messages if m.malformed)
        return inside + len(self.malformed_commands)


def month_start(ms: int, months_back: int) -> int:
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    y, m = d.year, d.month - months_back
    while m <= 0:
        y, m = y - 1, m + 12
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp() * 1000)


class Generator:
    def __init__(self, codec: Codec, seed: int, now_ms: int) -> None:
        self.codec = codec
        self.r = random.Random(seed)
        self.now = now_ms
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    # ---- valid events ------------------------------------------------------------------

    def usage(self, customer: str, meter: str, ts: int) -> dict[str, Any]:
        r = self.r
        value = Decimal(r.randint(0, 100_000)) / 1000
        if meter == "api_calls":
            value = Decimal(1)
        return {
            "event_id": self._id("u"),
            "customer_id": customer,
            "meter": meter,
            "value": value,
            "timestamp": ts,
            "dimensions": {
                "region": r.choice(("eu", "us")),
                "model": r.choice(("sdxl", "flux")),
                "user_id": f"u{r.randint(0, 40)}",
            },
        }

    def tokens(self, customer: str, ts: int) -> dict[str, Any]:
        # cached_input_tokens 0: the cost is the same whether input_tokens counts cached
        # tokens inside it (the TokenEvent's newer semantics) or beside them.
        return {
            "event_id": self._id("t"),
            "customer_id": customer,
            "model": self.r.choice(MODELS),
            "provider": "p",
            "input_tokens": self.r.randint(0, 5000),
            "output_tokens": self.r.randint(0, 2000),
            "cached_input_tokens": 0,
            "timestamp": ts,
            "dimensions": {},
        }

    def event_msg(self, event: dict[str, Any], route: str) -> Msg:
        is_tokens = "model" in event
        topic = topics.TOKENS if is_tokens else topics.USAGE
        value = self.codec.encode(TOKEN_EVENT if is_tokens else USAGE_EVENT, event)
        key = None if route == "nokey" else event["customer_id"]
        return Msg(topic, key, value, route, (event,))

    # ---- malformed records, one of every kind ------------------------------------------

    def malformed(self, kind: str, customer: str) -> Msg:
        ts = self.now - HOUR
        good = self.usage(customer, "image_generations", ts)
        j = {**good, "value": str(good["value"])}

        def js(obj: Any) -> bytes:
            return json.dumps(obj).encode()

        avro_id = self.codec.encode(USAGE_EVENT, good)[:5]
        bodies: dict[str, tuple[str, bytes]] = {
            "empty": (topics.USAGE, b""),
            "avro_truncated": (topics.USAGE, avro_id + b"\x02\x41"),
            "avro_unknown_schema": (topics.USAGE, b"\x00\x00\x00\x27\x0f\x02ab"),
            "avro_trailing_bytes": (topics.USAGE, self.codec.encode(USAGE_EVENT, good) + b"\0"),
            "json_broken": (topics.USAGE, b'{"event_id": "x", "value": '),
            "not_json": (topics.USAGE, b"hello, meterline"),
            "missing_customer": (
                topics.USAGE,
                js({k: v for k, v in j.items() if k != "customer_id"}),
            ),
            "missing_event_id": (topics.USAGE, js({k: v for k, v in j.items() if k != "event_id"})),
            "value_nan": (topics.USAGE, js(j).replace(f'"{j["value"]}"'.encode(), b"NaN")),
            "value_not_decimal": (topics.USAGE, js({**j, "value": "12abc"})),
            "value_too_precise": (topics.USAGE, js({**j, "value": "1.0000000000001"})),
            "future_event": (topics.USAGE, js({**j, "timestamp": self.now + DAY})),
            "ancient_event": (topics.USAGE, js({**j, "timestamp": self.now - 400 * DAY})),
            "tokens_negative": (
                topics.TOKENS,
                js({**self.tokens(customer, ts), "input_tokens": -5}),
            ),
            "tokens_unpriced_model": (
                topics.TOKENS,
                js({**self.tokens(customer, ts), "model": "no-such-model"}),
            ),
            "tokens_cached_above_input": (
                topics.TOKENS,
                js({**self.tokens(customer, ts), "input_tokens": 1, "cached_input_tokens": 5}),
            ),
        }
        if kind == "envelope_one_bad":
            # The good event of the envelope is counted; the bad one is the DLQ row.
            bad = {**j, "event_id": self._id("u"), "value": "not-a-number"}
            return Msg(topics.USAGE, customer, js({"events": [j, bad]}), "murmur", (good,), kind)
        topic, value = bodies[kind]
        return Msg(topic, customer, value, "murmur", (), kind)

    KINDS = (
        "empty", "avro_truncated", "avro_unknown_schema", "avro_trailing_bytes", "json_broken",
        "not_json", "missing_customer", "missing_event_id", "value_nan", "value_not_decimal",
        "value_too_precise", "future_event", "ancient_event", "tokens_negative",
        "tokens_unpriced_model", "tokens_cached_above_input", "envelope_one_bad",
    )  # fmt: skip


def generate(codec: Codec, records: int, seed: int, now_ms: int) -> Workload:
    g = Generator(codec, seed, now_ms)
    r = g.r
    rounds_n = max(4, min(12, records // 5000))
    metering = [f"chaos-m{i:02d}" for i in range(max(8, min(40, records // 2000)))]
    billing = [f"chaos-b{i}" for i in range(6)]
    anchor = month_start(now_ms, 1)
    period_end = month_start(now_ms, 0)
    commands: list[dict[str, Any]] = []
    for c in billing:
        commands.append(
            {
                "type": "upsert", "customer_id": c, "at": anchor + HOUR, "plan_id": PLAN_ID,
                "billing_anchor": anchor, "tz": "UTC", "topup": TOPUP_POLICY,
            }
        )  # fmt: skip
        commands.append(
            {
                "type": "grant", "customer_id": c, "at": anchor + HOUR, "grant_id": "welcome",
                "amount": "25.00", "priority": 0, "expires_at": None, "scope": ["images"],
                "category": "promotional",
            }
        )  # fmt: skip
    commands.append({"type": "void", "customer_id": billing[0], "at": anchor + 2 * HOUR,
                     "grant_id": "welcome"})  # fmt: skip
    commands.append(dict(commands[3]))  # a command delivered twice
    bad_commands = [
        Msg(topics.ACCOUNTS, billing[1], json.dumps({"type": "bogus", "customer_id": billing[1],
            "at": anchor}).encode(), malformed="command_unknown_type"),
        Msg(topics.ACCOUNTS, None, b'{"type": "upsert"}', "nokey", malformed="command_no_customer"),
        Msg(topics.ACCOUNTS, billing[2], json.dumps({"type": "upsert", "customer_id": billing[2],
            "at": anchor, "plan_id": "no-such-plan", "billing_anchor": anchor}).encode(),
            malformed="command_unknown_plan"),
        Msg(topics.PAYMENTS, "nobody", json.dumps({"payment_id": "p-x", "customer_id": "nobody",
            "processor": "stripe", "status": "succeeded", "amount": "1.00", "currency": "USD",
            "pays_kind": "topup", "pays_id": "topup:nobody:1", "occurred_at": anchor}).encode(),
            malformed="payment_unknown_customer"),
        Msg(topics.PAYMENTS, None, b"[1, 2, 3]", "nokey", malformed="payment_not_an_object"),
        # Crashed the worker at every replay before meterline/billing/commands.py caught it.
        Msg(topics.ACCOUNTS, billing[3], json.dumps({"type": "bill_in_advance",
            "customer_id": billing[3], "at": anchor + 3 * HOUR, "items": [None]}).encode(),
            malformed="command_items_not_objects"),
    ]  # fmt: skip

    # Event time: metering customers over the last three days; billing customers over last
    # month (their period), then one event each this month, which closes it (an invoice).
    span_m = (now_ms - 2 * HOUR) - (now_ms - 3 * DAY)
    billing_start, billing_span = anchor + DAY, (period_end - anchor) - 2 * DAY
    per_round = max(1, records // rounds_n)
    out: list[Round] = []
    kinds = list(Generator.KINDS)
    for k in range(rounds_n):
        unique: list[Msg] = []
        n_billing = per_round // 10
        n_malformed = max(len(kinds) if k == 0 else 0, per_round * 2 // 100)
        n_dups = per_round * 5 // 100
        n_metering = per_round - n_billing - n_malformed - n_dups
        t0 = now_ms - 3 * DAY + k * span_m // rounds_n
        for i in range(n_metering):
            ts = t0 + i * (span_m // rounds_n) // max(1, n_metering) + r.randint(0, 999)
            if r.random() < 0.03:
                ts -= r.randint(30, 240) * MINUTE  # behind the stream: late past grace
            c = r.choice(metering)
            route = r.choices(("murmur", "crc32", "nokey"), (70, 15, 15))[0]
            if r.random() < 0.25:
                unique.append(g.event_msg(g.tokens(c, ts), route))
            elif r.random() < 0.02 and route == "murmur":
                evs = [g.usage(c, r.choice(METERS), ts + j) for j in range(10)]
                value = codec.encode(USAGE_BATCH, {"events": evs})
                unique.append(Msg(topics.USAGE, c, value, "murmur", tuple(evs)))
            else:
                meter = UNDECLARED_METER if r.random() < 0.05 else r.choice(METERS)
                unique.append(g.event_msg(g.usage(c, meter, ts), route))
        b0 = billing_start + k * billing_span // rounds_n
        last = k == rounds_n - 1
        per_customer = max(1, n_billing // len(billing))
        # ~60 credits of images a round per customer: the balance crosses the threshold.
        images = max(1, round(3750 / per_customer))  # 2 of 5 events are images, 0.04 each
        for ci, c in enumerate(billing):
            for i in range(per_customer):
                ts = b0 + ci * 1000 + i * (billing_span // rounds_n) // per_customer
                meter = ("api_calls", "image_generations", "image_generations", "active_users",
                         "storage_gb")[i % 5]  # fmt: skip
                e = g.usage(c, meter, ts)
                if meter == "image_generations":
                    e["value"] = Decimal(images)
                unique.append(g.event_msg(e, "murmur"))
            if last:
                unique.append(g.event_msg(g.usage(c, "api_calls", now_ms - HOUR + ci), "murmur"))
        after: dict[int, list[Msg]] = defaultdict(list)  # repeats, by their original's place
        for _ in range(n_dups):
            j = r.randrange(len(unique))
            orig = unique[j]
            if len(orig.events) != 1:
                continue
            e = dict(orig.events[0])
            # The repeat carries other values: it must not count. Not for a keyless original:
            # its repeat may land on another partition and reach the home partition first.
            if r.random() < 0.5 and orig.route != "nokey":
                if "model" in e:
                    e["input_tokens"] += 7
                else:
                    e["value"] += 1
            dup = g.event_msg(e, orig.route)
            # A little after the original, as a client's retry comes.
            after[min(len(unique) - 1, j + r.randint(0, 200))].append(
                Msg(dup.topic, dup.key, dup.value, dup.route)
            )
        msgs = [m for i, u in enumerate(unique) for m in (u, *after.get(i, ()))]
        for m in range(n_malformed):
            kind = kinds[m % len(kinds)] if m < len(kinds) else r.choice(kinds)
            msgs.insert(r.randrange(len(msgs) + 1), g.malformed(kind, r.choice(metering)))
        out.append(Round(msgs))
    change = {
        "type": "model_price", "change_id": "chaos-price-1", "model": "gpt-4o",
        "provider": "openai", "input_per_million": "3.125", "output_per_million": "12.5",
        "cached_input_per_million": "1.5", "effective_from": now_ms - 3 * DAY // 2,
    }  # fmt: skip
    return Workload(now_ms, anchor, metering, billing, commands, out, change, bad_commands)
