"""The batching ClickHouse writer.

The caller buffers rows with :meth:`ClickHouseWriter.add` and decides when to
:meth:`~ClickHouseWriter.flush` (tied to its offset commit, as in Quixstreams' sink model):
a flush that returns means every buffered row is stored, so the offsets behind them may be
committed. Each flush seals the buffered rows into one batch per table, and a batch keeps
its rows and its ``insert_deduplication_token`` (a hash of its content) until ClickHouse
accepts it. A retried or replayed identical batch is therefore dropped by ClickHouse instead
of being stored twice (within the table's ``non_replicated_deduplication_window`` of recent
blocks); rows are never dropped by the writer. A replay that batches rows differently gets
other tokens and stores them again: snapshot tables (ReplacingMergeTree) absorb that at read
time, through FINAL.

If ClickHouse is unavailable, ``flush`` retries with capped exponential backoff and blocks the
caller meanwhile (back-pressure), giving up only after ``deadline`` seconds when one is set.
Errors that no retry can fix (bad SQL, unknown table, rows ClickHouse cannot parse) are raised
at once, the batch still pending.

Rows are checked when added, against the table's column types (sinks/row_checks.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sinks.client import AnyClient
from sinks.fault import check_fault
from sinks.retry import PERMANENT_ERROR_CODES, is_retryable
from sinks.row_checks import TYPELESS, RowError, Spec, column_spec

__all__ = [
    "PERMANENT_ERROR_CODES",
    "ClickHouseWriter",
    "RowError",
    "SinkClosedError",
    "SinkUnavailableError",
    "content_token",
    "is_retryable",
]

log = logging.getLogger(__name__)


class SinkUnavailableError(TimeoutError):
    """ClickHouse stayed unavailable past the flush deadline; the rows are still pending."""


class SinkClosedError(RuntimeError):
    """The writer was closed while a flush was waiting to retry; the rows are still pending."""


# ---- content hash -------------------------------------------------------------------------


def _row_repr(row: Sequence[Any]) -> str:
    # A Map hashes by content, not insertion order, so a row rebuilt from recovered state
    # hashes like the original. repr is exact for Decimal, datetime, str and bytes.
    return repr([sorted(v.items()) if type(v) is dict else v for v in row])


def content_token(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The insert_deduplication_token of a batch: a hash of its table, columns and rows."""
    digest = hashlib.sha256(f"{table}\n{','.join(columns)}\n".encode())
    digest.update("\n".join(map(_row_repr, rows)).encode())
    return f"{table}-{digest.hexdigest()}"


# ---- buffers and batches ------------------------------------------------------------------


@dataclass(slots=True)
class _Buffer:
    rows: list[Sequence[Any]] = field(default_factory=list)
    # String columns that received bytes: their str values are encoded at seal time,
    # because the driver cannot mix the two in one column.
    binary_columns: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Batch:
    table: str
    columns: tuple[str, ...]
    rows: list[Sequence[Any]]
    token: str
    attempts: int = 0


@dataclass(slots=True)
class WriterStats:
    rows_added: int = 0
    rows_inserted: int = 0
    inserts: int = 0
    retries: int = 0
    last_error: str = ""


class ClickHouseWriter:
    """Buffers rows per table and inserts them idempotently on :meth:`flush`.

    Thread-safe: ``add`` may run on the event loop while ``flush`` runs in a worker thread
    (``aflush``); flushes run one at a time, batches in the order they were sealed.
    """

    def __init__(
        self,
        client: AnyClient,
        *,
        deadline: float | None = None,
        initial_backoff: float = 0.05,
        max_backoff: float = 5.0,
        validate: bool = True,
        insert_settings: Mapping[str, Any] | None = None,
        dedup_tokens: bool = True,
    ) -> None:
        """``deadline``: seconds a flush keeps retrying before SinkUnavailableError; None
        retries until ClickHouse is back (or :meth:`close`). ``validate=False`` skips the
        per-value checks (and the one DESCRIBE per table they need). ``dedup_tokens=False``
        skips hashing each batch for ``insert_deduplication_token``: for tables whose sort key
        is the rows' identity (a replayed row collapses anyway), the hash is wasted work."""
        self.client = client
        self.deadline = deadline
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.validate = validate
        self.dedup_tokens = dedup_tokens
        self.insert_settings = dict(insert_settings or {})
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self._buffers: dict[tuple[str, tuple[str, ...]], _Buffer] = {}
        self._batches: list[_Batch] = []
        # Rows sealed out of the buffers and being hashed into batches (still pending).
        self._sealing = 0
        # table -> column -> ClickHouse type name, from one DESCRIBE per table.
        self._types: dict[str, dict[str, str]] = {}
        self._specs: dict[str, dict[str, Spec]] = {}

    # ---- buffering ----------------------------------------------------------------------

    def add(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Buffers ``rows`` (tuples or lists, in ``columns`` order) for ``table``.

        Raises RowError, buffering none of them, if any row cannot be stored exactly. The
        first add for a table runs one DESCRIBE TABLE (blocking) to learn its types.
        """
        if not rows:
            return
        cols = tuple(columns)
        width = len(cols)
        for row in rows:
            if len(row) != width:
                raise RowError(f"{table}: row has {len(row)} values for {width} columns: {row!r}")
        binary: set[int] = set()
        if self.validate:
            specs = self._column_specs(table, cols)
            # Column by column: one spec lookup per column instead of per value.
            for i, spec in enumerate(specs):
                if spec.types is None:
                    continue
                types, extra = spec.types, spec.extra
                for row in rows:
                    value = row[i]
                    if not isinstance(value, types):
                        if value is None and spec.nullable:
                            continue
                        raise RowError(
                            f"{table}.{cols[i]}: {value!r} ({type(value).__name__})"
                            f" for {spec.type_name}"
                        )
                    if extra is not None:
                        try:
                            extra(value)
                        except RowError as exc:
                            raise RowError(f"{table}.{cols[i]}: {exc}") from None
                    if spec.string and type(value) is not str:
                        binary.add(i)
        with self._lock:
            buffer = self._buffers.get((table, cols))
            if buffer is None:
                buffer = self._buffers[(table, cols)] = _Buffer()
            # Copied: a caller reusing its row lists must not change what gets stored.
            buffer.rows.extend(map(tuple, rows))
            buffer.binary_columns |= binary
            self.stats.rows_added += len(rows)

    @property
    def pending(self) -> int:
        """Rows added and not yet stored (buffered, or in a batch awaiting retry)."""
        with self._lock:
            return (
                sum(len(b.rows) for b in self._buffers.values())
                + sum(len(b.rows) for b in self._batches)
                + self._sealing
            )

    def _column_specs(self, table: str, cols: tuple[str, ...]) -> list[Spec]:
        specs = self._specs.get(table)
        if specs is None:
            types = self._describe(table)
            if types is None:
                return [TYPELESS] * len(cols)
            specs = self._specs[table] = {name: column_spec(t) for name, t in types.items()}
        missing = [c for c in cols if c not in specs]
        if missing:
            raise RowError(f"{table} has no column(s) {', '.join(missing)}")
        return [specs[c] for c in cols]

    def _describe(self, table: str) -> dict[str, str] | None:
        types = self._types.get(table)
        if types is not None:
            return types
        try:
            result = self.client.query(f"DESCRIBE TABLE {table}")
        except Exception as exc:
            # Unreachable right now: check without the types and ask again next time, rather
            # than refuse rows the caller has to hand over.
            if not is_retryable(exc):
                raise
            log.warning("cannot describe %s (%s); checking rows without its types", table, exc)
            return None
        types = {
            row["name"]: row["type"]
            for row in result.named_results()
            if row["default_type"] not in ("ALIAS", "MATERIALIZED", "EPHEMERAL")
        }
        self._types[table] = types
        return types

    def _seal_locked(self) -> list[tuple[str, tuple[str, ...], list[Sequence[Any]], set[int]]]:
        sealed = [(t, c, b.rows, b.binary_columns) for (t, c), b in self._buffers.items()]
        self._buffers.clear()
        return sealed

    def _make_batches(
        self, sealed: list[tuple[str, tuple[str, ...], list[Sequence[Any]], set[int]]]
    ) -> list[_Batch]:
        batches = []
        for table, cols, rows, binary in sealed:
            # Hashed before the bytes conversion so the token depends on the caller's rows.
            token = content_token(table, cols, rows) if self.dedup_tokens else ""
            if binary:
                rows = [
                    [v.encode() if i in binary and type(v) is str else v for i, v in enumerate(r)]
                    for r in rows
                ]
            batches.append(_Batch(table, cols, rows, token))
        return batches

    # ---- flushing -----------------------------------------------------------------------

    def flush(self, deadline: float | None = None) -> int:
        """Stores every row added so far; returns how many rows this call inserted.

        Blocks while ClickHouse is unavailable. Raises SinkUnavailableError after
        ``deadline`` (default: the writer's) seconds, SinkClosedError if the writer is
        closed meanwhile, or the driver's error for a batch that cannot succeed; in every
        case the rows not stored stay pending for the next flush.
        """
        limit = self.deadline if deadline is None else deadline
        started = time.monotonic()
        inserted = 0
        with self._flush_lock:
            with self._lock:
                sealed = self._seal_locked()
                self._sealing = sum(len(rows) for _, _, rows, _ in sealed)
            # Hashed outside the buffer lock: add() on the event loop must not wait for it.
            batches: list[_Batch] | None = None
            try:
                batches = self._make_batches(sealed)
            finally:
                with self._lock:
                    if batches is None:  # cannot happen short of a bug; still keep the rows
                        batches = [_Batch(t, c, r, "") for t, c, r, _ in sealed]
                    self._batches.extend(batches)
                    self._sealing = 0
            while True:
                with self._lock:
                    if not self._batches:
                        return inserted
                    batch = self._batches[0]
                self._insert_with_retry(batch, started, limit)
                with self._lock:
                    self._batches.pop(0)
                    self.stats.rows_inserted += len(batch.rows)
                    self.stats.inserts += 1
                inserted += len(batch.rows)

    async def aflush(self, deadline: float | None = None) -> int:
        """:meth:`flush` in a worker thread, so the event loop keeps running meanwhile."""
        return await asyncio.to_thread(self.flush, deadline)

    def close(self) -> None:
        """Makes a flush waiting on an unavailable ClickHouse give up (shutdown)."""
        self._closed.set()

    def _insert_with_retry(self, batch: _Batch, started: float, limit: float | None) -> None:
        delay = self.initial_backoff
        while True:
            batch.attempts += 1
            try:
                self._insert(batch)
                return
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not is_retryable(exc):
                    # The cached types may be stale (a migration changed the table).
                    self._types.pop(batch.table, None)
                    self._specs.pop(batch.table, None)
                    raise
                elapsed = time.monotonic() - started
                if limit is not None and elapsed + delay > limit:
                    raise SinkUnavailableError(
                        f"ClickHouse unavailable for {elapsed:.1f}s inserting {len(batch.rows)}"
                        f" rows into {batch.table}; they stay pending: {exc}"
                    ) from exc
                self.stats.retries += 1
                log.warning(
                    "insert into %s failed (attempt %d), retrying in %.2fs: %s",
                    batch.table,
                    batch.attempts,
                    delay,
                    exc,
                )
                if self._closed.wait(delay):
                    raise SinkClosedError(
                        f"writer closed; {len(batch.rows)} rows for {batch.table} not stored"
                    ) from exc
                delay = min(delay * 2, self.max_backoff)

    def _insert(self, batch: _Batch) -> None:
        check_fault()  # chaos runs only (sinks/fault.py); a no-op unless the switch is set
        types = self._types.get(batch.table)
        type_names = (
            [types[c] for c in batch.columns]
            if types is not None and all(c in types for c in batch.columns)
            else None
        )
        settings = dict(self.insert_settings)
        if batch.token:
            settings["insert_deduplication_token"] = batch.token
        # Passing the types skips the DESCRIBE clickhouse-connect would run per insert.
        self.client.insert(
            batch.table,
            batch.rows,
            column_names=list(batch.columns),
            column_type_names=type_names,
            settings=settings,
        )
