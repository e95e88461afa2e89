"""What processing one customer's share of a batch produced, for the checkpoint to make
durable in order (streams/checkpoint.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterline.metering.dedup import Chunk
from meterline.processor.account_state import AccountState
from meterline.processor.inputs import Reject, TokenRecord, UsageRecord


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


@dataclass(slots=True)
class Step:
    customer_id: str
    # Raw rows of newly counted events: stored before any state that counts them.
    usage_events: list[UsageRecord] = field(default_factory=list)
    token_events: list[TokenRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Event ids first counted here: durable before the state that counts them, or a later
    # duplicate could get through after a crash.
    chunk: Chunk | None = None
    # Chunks past the dedup horizon, to delete from durable storage.
    expired_chunks: list[str] = field(default_factory=list)
    usage_changed: bool = False
    # The account, when this step changed it (created, applied an input, or recorded effects).
    account: AccountState | None = None
    stats: StepStats = field(default_factory=StepStats)
