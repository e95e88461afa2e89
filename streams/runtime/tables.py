"""Faust tables keyed by customer, whose changelog partition is the customer's home
partition whatever key shape is used (``customer`` or ``customer#suffix``).

Faust would otherwise write a change to the partition of the event being processed, which is
wrong for batches that mix partitions (``take_events``) and impossible outside an event (the
flush timer)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import faust
from faust.serializers import codecs

from meterline.metering.usage_state import RecoveryMark, UsageState
from meterline.processor.raw_batch import RawBatch
from streams.partitioning import home_partition
from streams.runtime.rocks_store import CustomerRocksStore, is_rocksdb


class CustomerTable(faust.Table):
    def __init__(
        self,
        *args: Any,
        key_serializer: str = "raw",
        value_serializer: str = "json",
        **kwargs: Any,
    ) -> None:
        # Reads go by key, not by the partition of whatever event is current: a batch mixes
        # partitions, and a timer has no event (only the RocksDB store looks at this).
        kwargs.setdefault("use_partitioner", True)
        super().__init__(*args, **kwargs)
        # Faust derives serializers from model types only; ours are named codecs.
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer

    def _new_store_by_url(self, url: Any) -> Any:
        if not is_rocksdb(url):
            return super()._new_store_by_url(url)
        return CustomerRocksStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )

    def partition_for_key(self, key: Any) -> int:
        customer = str(key).rsplit("#", 1)[0] if "#" in str(key) else str(key)
        return home_partition(customer, self.partitions or self.app.conf.topic_partitions)

    def raw_items(self) -> Iterator[tuple[str, Any]]:
        """Every record of the partitions this worker holds as (key, value) where a RocksDB
        store gives the value's encoded bytes (decoding each through Faust's serializer
        registry was half of a restart with 100,000 customers) and the memory store, which
        keeps values decoded, gives the value."""
        store = self.data
        if isinstance(store, CustomerRocksStore):
            for key, value in store._iteritems():
                yield key.decode(), value
        else:
            yield from self.items()


T = TypeVar("T")


def _scan(
    table: Any, peek: Callable[[bytes], T], of_value: Callable[[Any], T]
) -> Iterator[tuple[str, T]]:
    items = table.raw_items() if isinstance(table, CustomerTable) else table.items()
    for key, value in items:
        if value is None:
            continue
        yield key, (peek(value) if isinstance(value, bytes | bytearray) else of_value(value))


def usage_marks(table: Any) -> Iterator[tuple[str, RecoveryMark]]:
    """(customer, recovery mark) of every usage state, decoding only the marks."""
    return _scan(table, _usage_mark, UsageState.recovery_mark)


def account_headers(table: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(customer, the account record without its account) of every account state."""
    return _scan(table, _account_header, lambda a: a.to_parts()[0])


def json_values(table: Any) -> Iterator[tuple[str, Any]]:
    return _scan(table, json.loads, lambda v: v)


class _UsageStateCodec(codecs.Codec):
    """``mark JSON`` newline ``state JSON`` (the RecoveryMark first, so a restart reads only
    it); a record written before this framing is one JSON document and still loads."""

    def _dumps(self, obj: Any) -> bytes:
        mark = json.dumps(obj.recovery_mark().to_dict(), separators=(",", ":")).encode()
        return mark + b"\n" + json.dumps(obj.to_dict(), separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        _, sep, state = s.partition(b"\n")
        return UsageState.from_dict(json.loads(state if sep else s))


def _usage_mark(s: bytes) -> RecoveryMark:
    mark, sep, _ = s.partition(b"\n")
    if not sep:
        return UsageState.from_dict(json.loads(s)).recovery_mark()
    return RecoveryMark.from_dict(json.loads(mark))


def _account_header(s: bytes) -> dict[str, Any]:
    header, sep, _ = s.partition(b"\n")
    return json.loads(header if sep else s)


class _AccountStateCodec(codecs.Codec):
    """``header JSON`` newline ``account JSON``: compact JSON never holds a raw newline, so the
    first one ends the header, and the account is parsed only when used (AccountState). A
    record written before this framing is one JSON document and still loads."""

    def _dumps(self, obj: Any) -> bytes:
        header, account = obj.to_parts()
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + account

    def _loads(self, s: bytes) -> Any:
        from meterline.processor.account_state import AccountState

        header, sep, account = s.partition(b"\n")
        if not sep:
            return AccountState.from_dict(json.loads(s))
        return AccountState.from_parts(json.loads(header), account)


class _RawBatchCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return json.dumps(obj.to_dict(), separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        return RawBatch.from_dict(json.loads(s))


class _CompactJsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        return json.loads(s)


codecs.register("usage_state", _UsageStateCodec())
codecs.register("compact_json", _CompactJsonCodec())
codecs.register("account_state", _AccountStateCodec())
codecs.register("raw_batch", _RawBatchCodec())


class RecoveringCustomerTable(CustomerTable):
    """Calls back once Faust has rebuilt the table from its changelog after a rebalance, so
    in-memory indexes derived from the table can be rebuilt too."""

    def __init__(self, *args: Any, on_recovered: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_recovered = on_recovered

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        if self._on_recovered is not None:
            self._on_recovered()
