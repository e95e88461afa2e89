"""Which ClickHouse errors a retry can fix: anything but a wrong statement or wrong data
counts as ClickHouse being unavailable, so the sink waits and retries instead of failing."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

# ClickHouse error codes that mean the statement or the data is wrong, so a retry would
# fail the same way forever. Anything else (network, timeouts, too many parts, memory,
# read-only replica, disk space, ...) counts as ClickHouse being unavailable.
PERMANENT_ERROR_CODES = frozenset(
    {
        1,  # UNSUPPORTED_METHOD
        6,  # CANNOT_PARSE_TEXT
        16,  # NO_SUCH_COLUMN_IN_TABLE
        20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        36,  # BAD_ARGUMENTS
        41,  # CANNOT_PARSE_DATETIME
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        44,  # ILLEGAL_COLUMN
        47,  # UNKNOWN_IDENTIFIER
        48,  # NOT_IMPLEMENTED
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        81,  # UNKNOWN_DATABASE
        115,  # UNKNOWN_SETTING
        117,  # INCORRECT_DATA
        407,  # DECIMAL_OVERFLOW
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` says ClickHouse is unavailable rather than the batch being wrong."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, (ProgrammingError, DataError, NotSupportedError)):
        return False
    if isinstance(exc, DatabaseError):
        return getattr(exc, "code", None) not in PERMANENT_ERROR_CODES
    # Socket-level failures can escape the driver's wrapping.
    return isinstance(exc, (ConnectionError, TimeoutError))
