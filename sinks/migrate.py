"""Versioned DDL, applied at start.

``sinks/ddl/NNN_name.sql`` files run in version order, each once: applied versions are
recorded in ``schema_migrations``. A file may hold several statements, each ending with ``;``
at the end of a line. Statements must be idempotent (IF NOT EXISTS, OR REPLACE): a crash
between two statements, or two workers starting together against one server, runs a file
again, and that has to be harmless.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sinks.client import AnyClient

__all__ = ["Migration", "applied_versions", "load_migrations", "migrate", "split_statements"]

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")
# ';' closing a line ends a statement; a ';' inside a line (a string literal) does not.
_STATEMENT_END_RE = re.compile(r";[ \t]*(?:\r?\n|$)")

MIGRATIONS_TABLE = "schema_migrations"
_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Statements of a DDL file; pieces holding only comments and blanks are dropped."""
    out = []
    for piece in _STATEMENT_END_RE.split(sql):
        code = [ln for ln in piece.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if code:
            out.append(piece.strip())
    return out


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The DDL files in version order (``sinks/ddl`` unless ``directory`` is given)."""
    # Beside this module, not importlib.resources: an editable install made before sinks/
    # had an __init__ maps it as a namespace package, which resources cannot read.
    root = directory if directory is not None else Path(__file__).with_name("ddl")
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two DDL files share version {version}: {found[version].name}, {entry.name}"
            )
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(client: AnyClient) -> set[int]:
    client.command(_CREATE_MIGRATIONS_TABLE)
    result = client.query(f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE}")
    return {int(row[0]) for row in result.result_rows}


def migrate(client: AnyClient, directory: Path | None = None) -> list[int]:
    """Applies the versions not yet recorded, in order; returns them (empty when current)."""
    done = applied_versions(client)
    applied = []
    for migration in load_migrations(directory):
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement)
        # Recorded only once every statement ran: a crash before this re-runs the file.
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.version, migration.name, datetime.now(UTC)]],
            column_names=["version", "name", "applied_at"],
        )
        log.info("applied ClickHouse migration %s", migration.name)
        applied.append(migration.version)
    return applied
