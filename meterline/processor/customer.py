"""The per-customer processor: one customer's state and its share of a batch in, a ``Step``
out. Replay skipping, dedup, windows and billing happen here, in one pass over the records.

Exactness rules, each relied on by the checkpoint:

* Replay. Each state (usage, account) records the last offset it applied per source
  partition. A record at or below it is already held and changes nothing. "Already applied" is
  judged against the states as they were when the step began, because one message (a batch
  envelope) holds several records at one offset.
* Dedup. An event id already seen at *another* input position is a duplicate; seen at the
  *same* position (``ref``), it is this very record replayed after a crash that lost the
  state but kept the dedup chunk, and it must still be counted.
* Horizon. An event older than what dedup remembers is rejected rather than risk counting it
  twice.
* Independence. Usage state and account may hold different offsets (one was durable, the other
  not): each applies what it lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from meterline.billing.account import Account
from meterline.billing.money import exact
from meterline.billing.retention import PAYMENT_RETENTION_MS
from meterline.metering.dedup import Chunk, SeenIds, chunk_key
from meterline.metering.meters import MeterCatalog, MeterDef, MeterValueError, dims_key
from meterline.metering.usage_state import UsageState
from meterline.processor.account_state import AccountState
from meterline.processor.billing_rules import BillingRules
from meterline.processor.inputs import BillingInput, InputKind, InputRecord, Reject
from meterline.processor.raw_batch import RawBatch
from meterline.processor.step import CountedPart, Step, StepStats

# Events per dedup chunk and raw batch: a few hundred kB at most, well under a Kafka message.
CHUNK_EVENTS = 1000

# Token counts also flow through the streamed minute windows, as sums per model, in
# TokenEvent semantics (cached and cache-write tokens are parts of input, reasoning of output).
TOKEN_METERS = {
    "input_tokens": MeterDef.default("llm_input_tokens"),
    "output_tokens": MeterDef.default("llm_output_tokens"),
    "cached_input_tokens": MeterDef.default("llm_cached_input_tokens"),
}
# Most requests have none of these: a window is opened only for a non-zero count, so plain
# requests keep the per-event cost and state they had.
SPARSE_TOKEN_METERS = {
    "cache_write_tokens": MeterDef.default("llm_cache_write_tokens"),
    "reasoning_tokens": MeterDef.default("llm_reasoning_tokens"),
}


@dataclass(slots=True)
class CustomerState:
    usage: UsageState
    account: AccountState | None = None

    @classmethod
    def new(cls, customer_id: str) -> CustomerState:
        return cls(UsageState(customer_id=customer_id))


def event_key(kind: InputKind, event_id: str) -> str:
    # Usage and token events are separate id spaces.
    return event_id if kind is InputKind.USAGE else f"tokens:{event_id}"


class CustomerProcessor:
    def __init__(
        self,
        meters: MeterCatalog,
        rules: BillingRules,
        dedup: SeenIds,
        payment_retention_ms: int | None = PAYMENT_RETENTION_MS,
    ) -> None:
        self.meters = meters
        self.rules = rules
        self.dedup = dedup
        self.payment_retention_ms = payment_retention_ms

    # Billing runs under the exact context (billing/money.py). Entered here, once for the
    # customer's share of a batch, rather than by each account call: entering it costs about a
    # microsecond, once per event otherwise. Metering's arithmetic names that context anyway.
    @exact
    def process(self, state: CustomerState, items: Sequence[InputRecord]) -> Step:
        usage = state.usage
        customer = usage.customer_id
        step = Step(customer)
        stats = step.stats
        usage_before = dict(usage.applied)
        account_before = dict(state.account.applied) if state.account is not None else {}
        account_touched = False
        if state.account is not None:
            # The setting in force, not the one the account was stored with.
            state.account.account.payment_retention_ms = self.payment_retention_ms
        new_ids: dict[str, str] = {}
        counted: list[tuple[str, InputRecord]] = []
        horizon_cutoff = usage.watermark - self.dedup.horizon_ms
        for item in items:
            source, offset = item.source, item.offset
            if not item.kind.is_event:
                body: BillingInput = item.body
                if state.account is None and item.kind is InputKind.ACCOUNTS:
                    account = Account(customer, payment_retention_ms=self.payment_retention_ms)
                    state.account = AccountState(customer, account)
                account = state.account
                if account is None:
                    step.rejects.append(
                        Reject(item.origin, f"payment for unknown customer {customer!r}")
                    )
                    continue
                if offset <= account_before.get(source, -1):
                    continue
                account.applied[source] = offset
                account_touched = True
                errors = self.rules.billing_input(account, item.kind, body)
                if errors:
                    step.rejects.append(Reject(item.origin, "; ".join(errors)))
                continue
            account = state.account
            usage_holds = offset <= usage_before.get(source, -1)
            account_holds = account is None or offset <= account_before.get(source, -1)
            if usage_holds and account_holds:
                stats.replayed += 1
                continue
            if not usage_holds:
                usage.mark_applied(source, offset)
                step.usage_changed = True
            if not account_holds:
                assert account is not None
                account.applied[source] = offset
                account_touched = True
            record = item.body
            event_id = event_key(item.kind, record["event_id"])
            ref = item.ref
            seen = self.dedup.lookup(customer, event_id)
            if (seen is not None and seen != ref) or new_ids.get(event_id, ref) != ref:
                stats.duplicates += 1
                continue
            ts = record["timestamp"]
            if ts < horizon_cutoff:
                step.rejects.append(
                    Reject(item.origin, f"event {event_id!r}: older than the dedup horizon")
                )
                continue
            if not usage_holds:
                if item.kind is InputKind.USAGE:
                    try:
                        self._count(usage, record, stats)
                    except MeterValueError as exc:
                        step.rejects.append(Reject(item.origin, f"event {event_id!r}: {exc}"))
                        continue
                else:
                    self._count_tokens(usage, record, stats)
                new_ids[event_id] = ref
                counted.append((event_id, item))
            if not account_holds:
                assert account is not None
                try:
                    errors = self.rules.usage(account, item.kind, record)
                except ArithmeticError as exc:
                    # Not representable exactly (the domain refuses to round): the event is
                    # metered, its charge goes to the DLQ for a person to look at.
                    errors = [f"event {event_id!r} could not be rated exactly: {exc!r}"]
                if errors:
                    step.rejects.append(Reject(item.origin, "; ".join(errors)))
        for start in range(0, len(counted), CHUNK_EVENTS):
            step.parts.append(self._part(usage, counted[start : start + CHUNK_EVENTS]))
        step.expired_chunks = self.dedup.expire(customer, usage.watermark)
        if account_touched:
            step.account = state.account
        return step

    def _part(self, usage: UsageState, counted: list[tuple[str, InputRecord]]) -> CountedPart:
        customer = usage.customer_id
        ids = {event_id: item.ref for event_id, item in counted}
        max_ts = max(item.body["timestamp"] for _, item in counted)
        chunk = Chunk(chunk_key(customer, usage.chunk_seq), customer, ids, max_ts)
        usage.chunk_seq += 1
        self.dedup.add(chunk)
        raw = RawBatch(
            [item.body for _, item in counted if item.kind is InputKind.USAGE],
            [item.body for _, item in counted if item.kind is InputKind.TOKENS],
        )
        return CountedPart(chunk, raw)

    def _count(self, state: UsageState, record: dict, stats: StepStats) -> None:
        meter = self.meters.get(record["meter"])
        value, unique_value = meter.extract(record)
        late = state.add(
            meter,
            dims_key(meter.group_dims(record["dimensions"])),
            value,
            unique_value,
            record["timestamp"],
            record["event_id"],
        )
        stats.counted += 1
        if late:
            stats.late += 1

    def _count_tokens(self, state: UsageState, record: dict, stats: StepStats) -> None:
        key = dims_key({"model": record["model"]})
        for field, meter in TOKEN_METERS.items():
            state.add(
                meter, key, Decimal(record[field]), None, record["timestamp"], record["event_id"]
            )
        for field, meter in SPARSE_TOKEN_METERS.items():
            count = record.get(field, 0)
            if count:
                state.add(meter, key, Decimal(count), None, record["timestamp"], record["event_id"])
        stats.counted += 1
