"""Faust's RocksDB store (rocksdict), keyed the way customer tables are partitioned.

Faust's own store files a write under the partition of the event being processed, and asserts
that there is one. Customer tables write outside events (the publish timer) and from batches
that mix partitions (``take_events``), and their changelog partition is the customer's home
partition (tables.py). So this store files every key under its table's partition for that
key, reads by key (``use_partitioner`` on the table makes Faust's reads do that), and keeps
Faust's bookkeeping otherwise: one database per partition, the persisted changelog offset per
partition, so a restarted worker reads only the changelog written since it stopped.
"""

from __future__ import annotations

from typing import Any

from faust.stores.rocksdb import Store

from meterline.settings import Settings


class CustomerRocksStore(Store):
    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = self.table.partition_for_key(key.decode())
        db = self._db_for_partition(partition)
        self._key_index[key] = partition
        db.put(key, value)

    def _del(self, key: bytes) -> None:
        partition = self.table.partition_for_key(key.decode())
        self._key_index.pop(key, None)
        self._db_for_partition(partition).delete(key)


def is_rocksdb(url: Any) -> bool:
    return str(url).startswith("rocksdb:")


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Faust's RocksDBOptions for a table (its ``options``), bounded by the settings."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mib * 2**20,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mib * 2**20,
    }
