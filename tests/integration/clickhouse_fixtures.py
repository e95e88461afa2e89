"""Fixtures for tests against a real embedded ClickHouse (chDB, in this process).

Import with ``from tests.integration.clickhouse_fixtures import *`` in a test module.

chDB constraints, measured with chdb 4.4.0 / clickhouse-connect 1.12.0:

- One data directory per process. Opening a second directory while any client holds the
  first raises ``ProgrammingError: EmbeddedServer already initialized with path ...``.
- Once every client of the directory is closed, the same process *can* open another
  directory (the engine restarts there; chDB creates missing directories itself).
- Any number of clients (handles) may share the open directory, and they run queries
  concurrently.

So the store is module-scoped: one directory per test module, closed at the module's end so
the next module (or other code in this pytest process) may open its own. Within a module,
every test gets a freshly migrated schema (``ch``): the tables are dropped and the DDL applied
again, which takes ~40 ms and also forgets ClickHouse's insert-deduplication log, so one test's
dedup tokens never swallow another test's rows. Tests needing two directories at once must use
a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.client import SharedClient, connect
from sinks.migrate import migrate

__all__ = ["ch", "ch_store", "chdb_dsn", "reset_schema"]


@pytest.fixture(scope="module")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("chdb")
    return f"chdb://{path}"


@pytest.fixture(scope="module")
def ch_store(chdb_dsn: str) -> Iterator[SharedClient]:
    """The module's shared client; closing it releases the directory for the next module."""
    client = connect(chdb_dsn)
    try:
        yield client
    finally:
        client.close()


def reset_schema(client: SharedClient) -> None:
    """Drops every table and view of the current database (views first)."""
    rows = client.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
    ).result_rows
    views = [name for name, engine in rows if engine == "View"]
    tables = [name for name, engine in rows if engine != "View"]
    for name in views + tables:
        client.command(f"DROP TABLE IF EXISTS `{name}` SYNC")


@pytest.fixture
def ch(ch_store: SharedClient) -> Iterator[SharedClient]:
    """A client on a freshly migrated, empty schema, with background merges stopped.

    Tests count physical rows to see what insert dedup kept out; a merge of a
    ReplacingMergeTree can come at any moment and fold rows (seen once in CI: 1 row where 5
    were inserted), so merges wait until the test is over. Readers use FINAL either way."""
    reset_schema(ch_store)
    migrate(ch_store)
    ch_store.command("SYSTEM STOP MERGES")
    try:
        yield ch_store
    finally:
        ch_store.command("SYSTEM START MERGES")
