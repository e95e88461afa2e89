"""The statement check of POST /sql (sinks/readonly_sql.py), on SQL as ClickHouse's
formatQuerySingleLine prints it. The engine-side layers (readonly=1, the limits profile)
are tested against a real worker in tests/integration/test_api_security.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.readonly_sql import (
    DENIED_FUNCTIONS,
    ForbiddenSql,
    SqlError,
    SqlLimits,
    check_statement,
    error_kind,
)

ALLOWED = [
    "SELECT * FROM usage_windows WHERE window = 'hour' LIMIT 10",
    "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
    "SHOW TABLES",
    "DESCRIBE TABLE usage_events",
    "EXPLAIN SELECT 1",
    "EXISTS TABLE balances",
    "(SELECT 1) UNION ALL (SELECT 2)",
    # Names of denied functions are fine as columns, aliases and strings.
    "SELECT url, file FROM (SELECT 1 AS url, 2 AS file)",
    "SELECT 'file(/etc/passwd)', 'INTO OUTFILE'",
    "SELECT URLHierarchy('https://a/b'), domain('https://a/b')",
    "SELECT * FROM numbers(10)",
]

REFUSED = [
    ("DROP TABLE usage_events", "DROP is not allowed"),
    ("INSERT INTO dlq SELECT * FROM dlq", "INSERT is not allowed"),
    ("CREATE TABLE x (a UInt8) ENGINE = Memory", "CREATE is not allowed"),
    ("ALTER TABLE dlq DELETE WHERE 1", "ALTER is not allowed"),
    ("SET readonly = 0", "SET is not allowed"),
    ("KILL QUERY WHERE 1 ASYNC", "KILL is not allowed"),
    ("SYSTEM FLUSH LOGS", "SYSTEM is not allowed"),
    ("OPTIMIZE TABLE dlq FINAL", "OPTIMIZE is not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file() is not allowed"),
    ("SELECT file('/etc/hostname')", "file() is not allowed"),  # the scalar reads files too
    ("SELECT * FROM url('http://169.254.169.254/', 'CSV')", "url() is not allowed"),
    ("SELECT * FROM `url`('http://x/', 'CSV')", "url() is not allowed"),
    ("SELECT * FROM s3('http://b.s3/k', 'CSV')", "s3() is not allowed"),
    ("SELECT * FROM remoteSecure('h:9440', system.one)", "remoteSecure() is not allowed"),
    ("SELECT * FROM icebergS3('http://b/k')", "icebergS3() is not allowed"),
    ("SELECT * FROM s3Cluster('c', 'http://b/k')", "s3Cluster() is not allowed"),
    ("SELECT * FROM someNewCluster('c', 'x')", "someNewCluster() is not allowed"),
    ("SELECT * FROM python(df)", "python() is not allowed"),
    ("SELECT * FROM MySQL('h:3306', 'db', 't', 'u', 'p')", "MySQL() is not allowed"),
    ("DESCRIBE TABLE file('/etc/passwd')", "file() is not allowed"),
    ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE is not allowed"),
    ("SELECT 1; SELECT 2", "one statement per request"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_reading_statements_pass(sql: str) -> None:
    check_statement(sql)


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_writes_and_outside_reach_are_refused(sql: str, message: str) -> None:
    with pytest.raises(ForbiddenSql, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_statement(sql)


def test_empty_is_a_plain_sql_error() -> None:
    with pytest.raises(SqlError) as err:
        check_statement("   ")
    assert not isinstance(err.value, ForbiddenSql) and err.value.kind == "sql"


@given(
    name=st.sampled_from(sorted(DENIED_FUNCTIONS)),
    case=st.sampled_from([str.lower, str.upper, str.title]),
    quote=st.sampled_from(["", "`", '"']),
    space=st.sampled_from(["", " "]),
)
def test_denied_functions_however_spelled(name: str, case: object, quote: str, space: str) -> None:
    spelled = case(name)  # type: ignore[operator]
    with pytest.raises(ForbiddenSql):
        check_statement(f"SELECT * FROM {quote}{spelled}{quote}{space}('x')")


def test_error_kinds() -> None:
    limit = RuntimeError("Code: 158. DB::Exception: Limit for rows exceeded. (TOO_MANY_ROWS)")
    assert error_kind(limit) == ("limit", "TOO_MANY_ROWS")
    ro = RuntimeError("Cannot modify 'readonly' setting in readonly mode. (READONLY)")
    assert error_kind(ro) == ("read_only", "READONLY")
    assert error_kind(RuntimeError("Unknown table (UNKNOWN_TABLE)")) == ("sql", "UNKNOWN_TABLE")
    assert error_kind(RuntimeError("boom")) == ("sql", None)


def test_limits_throw_rather_than_cut_results() -> None:
    settings = SqlLimits(max_result_rows=5).settings()
    assert settings["max_result_rows"] == 5
    assert {settings[k] for k in settings if k.endswith("_overflow_mode")} == {"throw"}
