"""Mergeable partial aggregates of one window.

A ``WindowAgg`` keeps every statistic (sum, count, min, max, latest, optional distinct set) rather
than only the one its meter needs: the extra work is a few comparisons per event, and it lets a
meter whose aggregation changes, or which is declared after its events arrived, be recomputed
from minute data instead of raw events.

``merge`` is associative and commutative down to the Decimal representation (not only the
numeric value), so hour/day/month roll-ups, partial batches and replays after a crash all produce
byte-identical state whatever the order. Two choices make that true:

* sums use the exact context, whose result exponent is the minimum of the operands' exponents;
* ties are broken with a total order: equal min/max values by ``Decimal.compare_total`` (1.0 vs
  1.00), and "latest" by the greatest (timestamp, event_id, value).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from meterline.metering.decimals import EXACT, ZERO

_add = EXACT.add


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    MIN = "min"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


class WindowAgg:
    """Partial aggregate of one (customer, meter, dimensions, window)."""

    __slots__ = (
        "count",
        "latest_key",
        "latest_ts",
        "latest_value",
        "max",
        "min",
        "sum",
        "uniques",
    )

    def __init__(
        self,
        sum: Decimal = ZERO,
        count: int = 0,
        min: Decimal | None = None,
        max: Decimal | None = None,
        latest_ts: int = -1,
        latest_value: Decimal | None = None,
        latest_key: str = "",
        uniques: set[str] | None = None,
    ) -> None:
        self.sum = sum
        self.count = count
        self.min = min
        self.max = max
        self.latest_ts = latest_ts
        self.latest_value = latest_value
        self.latest_key = latest_key
        self.uniques = uniques

    @classmethod
    def empty(cls, keep_uniques: bool) -> WindowAgg:
        # Only unique_count meters pay for a set; everyone else keeps None.
        return cls(uniques=set() if keep_uniques else None)

    def add(self, value: Decimal, ts: int, event_id: str, unique_value: str | None = None) -> None:
        self.sum = _add(self.sum, value)
        self.count += 1

        cur = self.min
        if cur is None or value < cur or (value == cur and value.compare_total(cur) < 0):
            self.min = value
        cur = self.max
        if cur is None or value > cur or (value == cur and value.compare_total(cur) > 0):
            self.max = value

        # Compare (ts, event_id, value) so "latest" does not depend on arrival order.
        cur = self.latest_value
        if (
            cur is None
            or ts > self.latest_ts
            or (
                ts == self.latest_ts
                and (
                    event_id > self.latest_key
                    or (event_id == self.latest_key and value.compare_total(cur) > 0)
                )
            )
        ):
            self.latest_ts = ts
            self.latest_key = event_id
            self.latest_value = value

        if unique_value is not None and self.uniques is not None:
            self.uniques.add(unique_value)

    def merge(self, other: WindowAgg) -> None:
        if other.count:
            self.sum = _add(self.sum, other.sum)
            self.count += other.count
            value = other.min
            cur = self.min
            if value is not None and (
                cur is None or value < cur or (value == cur and value.compare_total(cur) < 0)
            ):
                self.min = value
            value = other.max
            cur = self.max
            if value is not None and (
                cur is None or value > cur or (value == cur and value.compare_total(cur) > 0)
            ):
                self.max = value
            value = other.latest_value
            cur = self.latest_value
            if value is not None and (
                cur is None
                or other.latest_ts > self.latest_ts
                or (
                    other.latest_ts == self.latest_ts
                    and (
                        other.latest_key > self.latest_key
                        or (other.latest_key == self.latest_key and value.compare_total(cur) > 0)
                    )
                )
            ):
                self.latest_ts = other.latest_ts
                self.latest_key = other.latest_key
                self.latest_value = value
        if other.uniques is not None:
            if self.uniques is None:
                self.uniques = set(other.uniques)
            else:
                self.uniques |= other.uniques

    def result(self, aggregation: Aggregation) -> Decimal:
        if aggregation == Aggregation.SUM:
            return self.sum
        if aggregation == Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation == Aggregation.MAX:
            return ZERO if self.max is None else self.max
        if aggregation == Aggregation.MIN:
            return ZERO if self.min is None else self.min
        if aggregation == Aggregation.LATEST:
            return ZERO if self.latest_value is None else self.latest_value
        if aggregation == Aggregation.UNIQUE_COUNT:
            if self.uniques is None:
                # Answering 0 would under-bill silently; the window was built for another meter.
                raise ValueError("unique_count asked of a window that kept no distinct values")
            return Decimal(len(self.uniques))
        raise ValueError(f"unknown aggregation {aggregation!r}")

    def copy(self) -> WindowAgg:
        return WindowAgg(
            self.sum,
            self.count,
            self.min,
            self.max,
            self.latest_ts,
            self.latest_value,
            self.latest_key,
            None if self.uniques is None else set(self.uniques),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sum": str(self.sum),
            "count": self.count,
            "min": None if self.min is None else str(self.min),
            "max": None if self.max is None else str(self.max),
            "latest_ts": self.latest_ts,
            "latest_value": None if self.latest_value is None else str(self.latest_value),
            "latest_key": self.latest_key,
            # Sorted so equal states serialise to equal bytes (changelog and dedup tokens).
            "uniques": None if self.uniques is None else sorted(self.uniques),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowAgg:
        mn = data.get("min")
        mx = data.get("max")
        lv = data.get("latest_value")
        uq = data.get("uniques")
        return cls(
            Decimal(data.get("sum", "0")),
            int(data.get("count", 0)),
            None if mn is None else Decimal(mn),
            None if mx is None else Decimal(mx),
            int(data.get("latest_ts", -1)),
            None if lv is None else Decimal(lv),
            str(data.get("latest_key", "")),
            None if uq is None else set(uq),
        )

    def __eq__(self, other: object) -> bool:
        # Representation-exact: Decimal('1.0') and Decimal('1.00') differ here on purpose.
        if not isinstance(other, WindowAgg):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"WindowAgg({self.to_dict()!r})"
