"""The ClickHouse client and migrations against a real embedded ClickHouse (chDB)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import ProgrammingError

from sinks.client import SharedClient, chdb_path, connect
from sinks.migrate import load_migrations, migrate, split_statements
from tests.integration.clickhouse_fixtures import *  # noqa: F403
from tests.integration.clickhouse_fixtures import reset_schema
from tests.integration.clickhouse_rows import (
    MINUTE_COLUMNS,
    T0,
    minute,
)

pytestmark = pytest.mark.integration


# ---- client ------------------------------------------------------------------------------


def test_connect_is_shared_per_dsn_and_directory(ch: SharedClient, chdb_dsn: str) -> None:
    assert connect(chdb_dsn) is ch
    # Another spelling of the same directory is the same engine, hence the same client.
    assert connect(chdb_dsn + "/") is ch
    assert chdb_path(chdb_dsn) == str(Path(chdb_dsn[len("chdb://") :]).resolve())
    other_lane = connect(chdb_dsn, lane="api")
    try:
        assert other_lane is not ch
        assert other_lane.query("SELECT count() FROM usage_minute").result_rows == [(0,)]
    finally:
        other_lane.close()


def test_second_chdb_directory_in_one_process_is_refused(ch: SharedClient, tmp_path: Path) -> None:
    with pytest.raises(ProgrammingError, match="one data directory per process"):
        connect(f"chdb://{tmp_path / 'elsewhere'}")
    # The refusal left the open store untouched.
    assert ch.query("SELECT 1").result_rows == [(1,)]


def test_shared_client_is_thread_safe(ch: SharedClient) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                ch.insert(
                    "usage_minute",
                    [minute(f"thread-{n}", T0 + timedelta(minutes=i), "1")],
                    column_names=MINUTE_COLUMNS,
                )
                ch.query("SELECT sum(value) FROM usage_windows_streamed WHERE window = 'hour'")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ch.query("SELECT count() FROM usage_minute FINAL").result_rows == [(80,)]


def test_unsupported_dsn_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported ClickHouse DSN"):
        connect("postgres://localhost/db")


# ---- migrations ---------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(ch: SharedClient) -> None:
    reset_schema(ch)
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrate(ch) == versions
    assert migrate(ch) == []
    assert migrate(ch) == []
    recorded = ch.query("SELECT version FROM schema_migrations FINAL ORDER BY version")
    assert [r[0] for r in recorded.result_rows] == versions
    tables = {
        r[0]
        for r in ch.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert {"usage_minute", "usage_windows", "dlq", "schema_migrations"} <= tables


def test_a_new_migration_file_is_applied_alone_in_order(ch: SharedClient, tmp_path: Path) -> None:
    reset_schema(ch)
    (tmp_path / "001_first.sql").write_text(
        "-- two statements in one file\n"
        "CREATE TABLE IF NOT EXISTS m_a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "INSERT INTO m_a SELECT 1 WHERE (SELECT count() FROM m_a) = 0;\n"
    )
    (tmp_path / "README.txt").write_text("not a migration")
    assert migrate(ch, tmp_path) == [1]
    (tmp_path / "002_second.sql").write_text(
        "ALTER TABLE m_a ADD COLUMN IF NOT EXISTS y String DEFAULT 'a;b';\n"
        "CREATE OR REPLACE VIEW m_v AS SELECT x, y FROM m_a\n;\n"
    )
    assert migrate(ch, tmp_path) == [2]
    assert migrate(ch, tmp_path) == []
    assert ch.query("SELECT x, y FROM m_v").result_rows == [(1, "a;b")]


def test_split_statements_ignores_comment_only_pieces() -> None:
    sql = "-- header\nSELECT 1;\n\n-- trailing comment\n;\nSELECT ';'\n;"
    assert split_statements(sql) == ["-- header\nSELECT 1", "SELECT ';'"]
