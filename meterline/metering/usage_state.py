"""One customer's live usage state: open minute windows, what input it already holds, and
late-event corrections waiting to be written.

Exactness rests on three facts recorded *in this one value* (written as one changelog record):
``applied`` (the last input offset applied per source topic-partition, so a replay skips what
the state already holds), ``closed_before`` (windows before it were finalised and evicted and
must never be reopened, or a fresh snapshot would overwrite the final one), and ``version``
(snapshot rows written to storage carry it, so the newest snapshot wins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from meterline.metering.aggregation import Aggregation, WindowAgg
from meterline.metering.meters import MeterDef
from meterline.metering.windows import MINUTE_MS, minute_start

WindowKey = tuple[str, str, int]  # (meter, dims_key, window_start_ms)


@dataclass(slots=True)
class Correction:
    """A late event past grace: counted in its own window as a separate, idempotent row."""

    meter: str
    dims_key: str
    window_start: int
    event_id: str
    aggregation: Aggregation
    agg: WindowAgg
    # The version of the first state that holds it, fixed when counted: its aggregates record
    # carries it, so a re-publication after a crash repeats the record exactly. Taken from
    # the state's version at publish time, a replacement that applied newer input first
    # published the same correction id again with another revision (`meterline chaos`).
    revision: int = 0


@dataclass(slots=True)
class WindowSnapshot:
    customer_id: str
    meter: str
    dims_key: str
    window_start: int
    part: str  # "" = the window itself; "late:<event_id>" = a correction
    aggregation: Aggregation
    agg: WindowAgg
    version: int

    @property
    def dimensions(self) -> dict[str, str]:
        return json.loads(self.dims_key)


def close_target(watermark: int, closed_before: int, grace_ms: int) -> int:
    """Windows starting before this are past grace: [s, s+1m) closes once the watermark
    reaches s + 1m + grace."""
    if watermark < 0:
        return closed_before
    return max(minute_start(watermark - grace_ms - MINUTE_MS) + MINUTE_MS, closed_before)


@dataclass(frozen=True, slots=True)
class RecoveryMark:
    """What a restart must know of a state without decoding it: whether it may have
    unpublished snapshots (dirty windows, corrections) and whether a window is past grace but
    not closed yet. Written in front of the state (see streams/runtime/tables.py), so a
    worker recovering 100,000 customers decodes only the few with something to publish."""

    unpublished: bool
    earliest_window: int | None
    watermark: int
    closed_before: int

    def pending(self, grace_ms: int) -> bool:
        if self.unpublished:
            return True
        target = close_target(self.watermark, self.closed_before, grace_ms)
        return self.earliest_window is not None and self.earliest_window < target

    def to_dict(self) -> dict[str, int | bool | None]:
        return {
            "p": self.unpublished,
            "e": self.earliest_window,
            "wm": self.watermark,
            "cb": self.closed_before,
        }

    @classmethod
    def from_dict(cls, data: dict) -> RecoveryMark:
        e = data["e"]
        return cls(bool(data["p"]), None if e is None else int(e), int(data["wm"]), int(data["cb"]))


@dataclass(slots=True)
class UsageState:
    customer_id: str
    version: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    windows: dict[WindowKey, WindowAgg] = field(default_factory=dict)
    aggregations: dict[str, Aggregation] = field(default_factory=dict)
    watermark: int = -1
    closed_before: int = 0
    chunk_seq: int = 0
    corrections: list[Correction] = field(default_factory=list)
    # Windows changed since their last snapshot was written. Persisted: a store that decodes
    # on every read (RocksDB) would otherwise hand the publisher a state with none, and a
    # restart knows which snapshots may have been lost without re-writing every window.
    dirty: set[WindowKey] = field(default_factory=set)

    def mark_applied(self, source: str, offset: int) -> None:
        if offset > self.applied.get(source, -1):
            self.applied[source] = offset

    def add(
        self,
        meter: MeterDef,
        dims_key: str,
        value: Decimal,
        unique_value: str | None,
        ts: int,
        event_id: str,
    ) -> bool:
        """Counts one event; returns True when it landed as a late correction."""
        if ts > self.watermark:
            self.watermark = ts
        start = minute_start(ts)
        self.aggregations[meter.code] = meter.aggregation
        keep_uniques = meter.aggregation is Aggregation.UNIQUE_COUNT
        if start < self.closed_before:
            agg = WindowAgg.empty(keep_uniques)
            agg.add(value, ts, event_id, unique_value)
            # put_usage writes this state as version + 1: the first version holding it.
            self.corrections.append(
                Correction(
                    meter.code, dims_key, start, event_id, meter.aggregation, agg, self.version + 1
                )
            )
            return True
        key = (meter.code, dims_key, start)
        agg = self.windows.get(key)
        if agg is None:
            agg = self.windows[key] = WindowAgg.empty(keep_uniques)
        agg.add(value, ts, event_id, unique_value)
        self.dirty.add(key)
        return False

    def close_target(self, grace_ms: int) -> int:
        return close_target(self.watermark, self.closed_before, grace_ms)

    def recovery_mark(self) -> RecoveryMark:
        earliest = min((k[2] for k in self.windows), default=None)
        unpublished = bool(self.dirty or self.corrections)
        return RecoveryMark(unpublished, earliest, self.watermark, self.closed_before)

    def snapshots(self, all_windows: bool = False) -> list[WindowSnapshot]:
        keys = self.windows.keys() if all_windows else self.dirty
        out = [
            WindowSnapshot(
                self.customer_id,
                m,
                d,
                s,
                "",
                self.aggregations.get(m, Aggregation.SUM),
                self.windows[(m, d, s)],
                self.version,
            )
            for (m, d, s) in keys
            if (m, d, s) in self.windows
        ]
        out.extend(
            WindowSnapshot(
                self.customer_id,
                c.meter,
                c.dims_key,
                c.window_start,
                f"late:{c.event_id}",
                c.aggregation,
                c.agg,
                self.version,
            )
            for c in self.corrections
        )
        return out

    def evict_closed(self, target: int) -> list[tuple[WindowKey, WindowAgg]]:
        """Finalises windows before ``target``; only call once their snapshots are stored."""
        closed = [(k, a) for k, a in self.windows.items() if k[2] < target]
        for key, _ in closed:
            del self.windows[key]
            self.dirty.discard(key)
        self.closed_before = max(self.closed_before, target)
        return closed

    def to_dict(self) -> dict:
        return {
            "c": self.customer_id,
            "v": self.version,
            "applied": self.applied,
            "w": [[m, d, s, a.to_dict()] for (m, d, s), a in self.windows.items()],
            "aggs": {k: str(v) for k, v in self.aggregations.items()},
            "wm": self.watermark,
            "cb": self.closed_before,
            "cs": self.chunk_seq,
            "corr": [
                [
                    c.meter,
                    c.dims_key,
                    c.window_start,
                    c.event_id,
                    str(c.aggregation),
                    c.agg.to_dict(),
                    c.revision,
                ]
                for c in self.corrections
            ],
            "d": [[m, d, s] for (m, d, s) in self.dirty],
        }

    @classmethod
    def from_dict(cls, data: dict) -> UsageState:
        windows = {(m, d, int(s)): WindowAgg.from_dict(a) for m, d, s, a in data["w"]}
        # A state written before dirty was kept: any of its windows may lack its snapshot.
        dirty = {(m, d, int(s)) for m, d, s in data["d"]} if "d" in data else set(windows)
        return cls(
            customer_id=data["c"],
            version=int(data["v"]),
            applied={k: int(v) for k, v in data["applied"].items()},
            windows=windows,
            aggregations={k: Aggregation(v) for k, v in data["aggs"].items()},
            watermark=int(data["wm"]),
            closed_before=int(data["cb"]),
            chunk_seq=int(data["cs"]),
            corrections=[
                # A state written before corrections kept their revision: its own version,
                # the revision such a correction was published with until now.
                Correction(
                    c[0],
                    c[1],
                    int(c[2]),
                    c[3],
                    Aggregation(c[4]),
                    WindowAgg.from_dict(c[5]),
                    int(c[6]) if len(c) > 6 else int(data["v"]),
                )
                for c in data["corr"]
            ],
            dirty=dirty,
        )
