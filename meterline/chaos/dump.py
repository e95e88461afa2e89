"""`python -m meterline.chaos.dump CHDB_DIR OUT_DIR`: every table of a stopped worker's
embedded store as ClickHouse Native files (``<table>.native`` and ``<table>.rows``), for
meterline/chaos/faults.py to insert into another store. A process of its own because chDB
opens one data directory per process."""

from __future__ import annotations

import sys
from pathlib import Path

from meterline.chaos.faults import SKIP
from sinks.client import connect


def dump(directory: str, out: Path) -> None:
    client = connect(f"chdb://{directory}")
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree'"
    ).result_rows
    for (name,) in tables:
        if name in SKIP:
            continue
        data = client.raw_query(f"SELECT * FROM {name} FORMAT Native")
        (out / f"{name}.native").write_bytes(data)
        (count,) = client.query(f"SELECT count() FROM {name}").result_rows[0]
        (out / f"{name}.rows").write_text(str(count))


if __name__ == "__main__":
    dump(sys.argv[1], Path(sys.argv[2]))
