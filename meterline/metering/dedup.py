"""Event-id dedup over a horizon, with memory bounded by that horizon.

Ids are recorded in *chunks*: one chunk per customer per processed batch, so the adapter
writes one changelog record per batch instead of one per event. Each id remembers the input
position (``ref``) it was first seen at: seeing the same id again at the same position is a
replay of that very record after a crash (it must still be applied if the customer's state
does not hold it yet); at any other position it is a true duplicate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Chunk:
    key: str
    customer_id: str
    ids: dict[str, str]  # event_id -> ref
    max_ts: int

    def to_dict(self) -> dict:
        return {"c": self.customer_id, "ids": self.ids, "max_ts": self.max_ts}

    @classmethod
    def from_dict(cls, key: str, data: dict) -> Chunk:
        return cls(key, data["c"], dict(data["ids"]), int(data["max_ts"]))


def chunk_key(customer_id: str, seq: int) -> str:
    return f"{customer_id}#{seq}"


class SeenIds(Protocol):
    """The port the processor dedups through. ``DedupIndex`` below keeps it in memory (the
    embedded stack); ``streams/runtime/dedup_store.py`` keeps it on local RocksDB (the
    rocksdb:// production store), so memory does not grow with the horizon's traffic."""

    horizon_ms: int

    def lookup(self, customer_id: str, event_id: str) -> str | None: ...
    def add(self, chunk: Chunk) -> None: ...
    def expire(self, customer_id: str, watermark_ms: int) -> list[str]: ...
    def clear(self) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...


@dataclass(slots=True)
class DedupIndex:
    horizon_ms: int
    _refs: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    _chunks: dict[str, deque[Chunk]] = field(default_factory=dict)
    _by_key: dict[str, Chunk] = field(default_factory=dict)

    def lookup(self, customer_id: str, event_id: str) -> str | None:
        hit = self._refs.get((customer_id, event_id))
        return hit[0] if hit else None

    def add(self, chunk: Chunk) -> None:
        queue = self._chunks.setdefault(chunk.customer_id, deque())
        # A replay may rewrite a chunk key with different content: drop the old copy first.
        old = self._by_key.get(chunk.key)
        if old is not None:
            self._forget(old)
            queue.remove(old)
        queue.append(chunk)
        self._by_key[chunk.key] = chunk
        for event_id, ref in chunk.ids.items():
            self._refs[(chunk.customer_id, event_id)] = (ref, chunk.key)

    def expire(self, customer_id: str, watermark_ms: int) -> list[str]:
        """Drop this customer's chunks whose newest event is past the horizon; returns their
        keys so the adapter can delete them from durable storage too."""
        queue = self._chunks.get(customer_id)
        gone: list[str] = []
        cutoff = watermark_ms - self.horizon_ms
        while queue and queue[0].max_ts < cutoff:
            chunk = queue.popleft()
            self._forget(chunk)
            self._by_key.pop(chunk.key, None)
            gone.append(chunk.key)
        return gone

    def _forget(self, chunk: Chunk) -> None:
        for event_id in chunk.ids:
            hit = self._refs.get((chunk.customer_id, event_id))
            if hit is not None and hit[1] == chunk.key:
                del self._refs[(chunk.customer_id, event_id)]

    def clear(self) -> None:
        self._refs.clear()
        self._chunks.clear()
        self._by_key.clear()

    @property
    def size(self) -> int:
        return len(self._refs)

    @property
    def chunk_count(self) -> int:
        return len(self._by_key)
