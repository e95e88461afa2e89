"""What processing one customer's share of a batch produced, for the checkpoint to make
durable in order (streams/checkpoint.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterline.metering.dedup import Chunk
from meterline.processor.account_state import AccountState
from meterline.processor.inputs import Reject, TokenRecord, UsageRecord
from meterline.processor.raw_batch import RawBatch


@dataclass(slots=True)
class StepStats:
    counted: int = 0
    duplicates: int = 0
    replayed: int = 0
    late: int = 0

    def add(self, other: StepStats) -> None:
        self.counted += other.counted
        self.duplicates += other.duplicates
        self.replayed += other.replayed
        self.late += other.late


@dataclass(frozen=True, slots=True)
class CountedPart:
    """Up to ``CHUNK_EVENTS`` newly counted events: their ids (the dedup chunk) and the raw
    events themselves, durable together under the chunk's key. Bounded so that neither record
    outgrows a Kafka message, however many events one customer has in a batch."""

    chunk: Chunk
    raw: RawBatch


@dataclass(slots=True)
class Step:
    customer_id: str
    # Events first counted here, with their ids: durable before the state that counts them,
    # or a later duplicate could get through (ids) or the events be lost (raw) after a crash.
    parts: list[CountedPart] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Chunks past the dedup horizon, to delete from durable storage.
    expired_chunks: list[str] = field(default_factory=list)
    usage_changed: bool = False
    # The account, when this step changed it (created, applied an input, or recorded effects).
    account: AccountState | None = None
    stats: StepStats = field(default_factory=StepStats)

    @property
    def usage_events(self) -> list[UsageRecord]:
        return [r for p in self.parts for r in p.raw.usage]

    @property
    def token_events(self) -> list[TokenRecord]:
        return [r for p in self.parts for r in p.raw.tokens]
