"""The proxy's durable spool: every TokenEvent is written here (SQLite, WAL, synchronous=FULL:
the commit is fsynced) as soon as the upstream's answer is read, and deleted only after Kafka's
delivery report for it. A broker outage, a proxy crash or a restart therefore loses nothing:
whatever is still in the spool is published again.

Publishing again may publish twice (a delivery report lost with the process); the worker
deduplicates by event_id (the provider's response id), so it is counted once.

Events are kept as JSON dicts, not encoded Avro, so a spooled event is encoded with the schema
in force when it is finally sent. Not thread-safe: one thread owns it (see publisher.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    event_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    event       TEXT NOT NULL,
    spooled_at  REAL NOT NULL
)
"""


class Spool:
    def __init__(self, directory: Path, fsync: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "tokens.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit fsyncs the WAL, so a completed response survives power loss.
        # NORMAL (fsync=False): it survives a crash of the proxy, not of the machine.
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute(_SCHEMA)

    def add(self, event: dict[str, Any]) -> None:
        self.write([event], [])

    def remove(self, event_id: str) -> None:
        self.write([], [event_id])

    def write(self, events: list[dict[str, Any]], removed: list[str]) -> None:
        """One transaction, so one fsync, for a whole batch: the proxy's throughput then
        does not depend on the disk's fsync latency (group commit)."""
        now = time.time()
        with self._db:  # BEGIN … COMMIT
            self._db.execute("BEGIN")
            # The same response id twice (a provider replay) is one row: it is one charge.
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (event_id, customer_id, event, spooled_at) "
                "VALUES (?, ?, ?, ?)",
                [(e["event_id"], e["customer_id"], json.dumps(e), now) for e in events],
            )
            self._db.executemany("DELETE FROM spool WHERE event_id = ?", [(i,) for i in removed])

    def pending(self, limit: int = 1000, exclude: frozenset[str] = frozenset()) -> list[dict]:
        """Oldest first, without the ones in flight."""
        rows = self._db.execute(
            "SELECT event_id, event FROM spool ORDER BY spooled_at LIMIT ?",
            (limit + len(exclude),),
        ).fetchall()
        return [json.loads(e) for i, e in rows if i not in exclude][:limit]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        self._db.close()
