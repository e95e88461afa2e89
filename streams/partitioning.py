"""A customer's home partition: murmur2 of the UTF-8 customer id, as Java clients and
aiokafka compute it. Meterline routes by this, never by where a producer happened to put a
record, so correctness does not depend on the producer's partitioner."""

from functools import lru_cache

from aiokafka.partitioner import murmur2


# aiokafka's murmur2 is pure Python; customers repeat, so remember the answer.
@lru_cache(maxsize=1 << 16)
def home_partition(customer_id: str, partitions: int) -> int:
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
