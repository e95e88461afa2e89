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

import functools
from dataclasses import dataclass
from typing import Any

from faust.stores.rocksdb import RocksDBOptions, Store
from rocksdict import BlockBasedIndexType, BlockBasedOptions, Cache, Options, WriteBufferManager

from meterline.settings import Settings


@dataclass(frozen=True, slots=True)
class RocksMemory:
    """One block cache and one memtable budget for every RocksDB database of the worker.

    Faust opens a database per table and partition (4 tables × N partitions) and gives each
    its own cache and memtables, so the worker's RSS grew with the partition count and kept
    climbing while each one filled. Shared, RocksDB's memory is capped once: the cache
    evicts, and the write buffer manager flushes a memtable when the total passes its budget.
    Index and filter blocks are held in the cache, so they count against it too."""

    cache: Cache
    memtables: WriteBufferManager

    @property
    def bytes(self) -> int:
        return int(self.cache.get_usage()) + int(self.memtables.get_usage())

    def table_options(self, bloom_bits: int = 10) -> BlockBasedOptions:
        table = BlockBasedOptions()
        table.set_bloom_filter(bloom_bits, block_based=False)
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(BlockBasedIndexType.binary_search())
        return table

    def apply(self, options: Options, write_buffer_bytes: int) -> None:
        options.set_write_buffer_size(write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(self.memtables)
        options.set_block_based_table_factory(self.table_options())


@functools.cache
def _memory(cache_mib: int, memtables_mib: int) -> RocksMemory:
    return RocksMemory(Cache(cache_mib * 2**20), WriteBufferManager(memtables_mib * 2**20, False))


def rocks_memory(settings: Settings) -> RocksMemory:
    """The worker's one RocksMemory (one per process: a process runs one worker)."""
    return _memory(settings.rocksdb_block_cache_mib, settings.rocksdb_memtables_mib)


class _SharedMemoryOptions(RocksDBOptions):
    """Faust's options for a table's databases, with the worker's shared RocksMemory."""

    def __init__(self, memory: RocksMemory, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory = memory

    def as_options(self) -> Options:
        options = super().as_options()
        self.memory.apply(options, self.write_buffer_size)
        return options


class CustomerRocksStore(Store):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = dict(self.options or {})
        memory = options.pop("memory", None)
        if memory is not None:
            self.rocksdb_options = _SharedMemoryOptions(
                memory, **options, use_rocksdict=self.use_rocksdict
            )

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


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """A table's ``options``: Faust's RocksDBOptions, and the worker's shared memory."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mib * 2**20,
        "memory": rocks_memory(settings),
    }
