"""Fault injectors of the chaos run and what they need: SIGKILL (also during recovery), a
second worker sharing the partitions, a ClickHouse outage through the sink's fault switch
(sinks/fault.py), and folding the second worker's store into the first.

Two workers cannot share one embedded store (chDB: one process per directory; DESIGN.md), so
the second worker of a pair writes its own chDB directory, as a second writer of a shared
ClickHouse server would write its own parts. When the pair is over, that directory's tables
are inserted into the first worker's store: the union is what one shared server would hold,
and every table is a ReplacingMergeTree read with FINAL, so a row both stores hold (a replay
after the kill) is one row, and a row neither holds is lost: both show in the comparison.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from meterline.embedded.stack import EmbeddedStack, WorkerProcess

# Fed by materialized views from the raw tables: inserting the raw rows refills them.
MV_TARGETS = frozenset({"usage_events_by_time", "token_events_by_time"})
SKIP = MV_TARGETS | {"schema_migrations"}


@dataclass(slots=True)
class FaultLog:
    """What was done, and how long the pipeline took to catch up after each fault."""

    kills: int = 0
    restarts: int = 0
    catch_up: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Outage:
    """ClickHouse unavailable for inserts while the switch file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self) -> None:
        self.path.write_text("chaos outage\n")

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


class Workers:
    """The worker processes of the run; ``primary`` owns the store the comparison reads."""

    def __init__(self, stack: EmbeddedStack, env: dict[str, str], log: FaultLog) -> None:
        self.stack = stack
        self.env = env
        self.log = log
        self.primary = stack.start_worker(**env)
        self.second: WorkerProcess | None = None
        self.second_dsn = f"chdb://{(stack.data_dir / 'chdb-second').resolve()}"

    def kill_primary(self, during_recovery: bool = False) -> None:
        """SIGKILL the primary; restart it (after the group evicted it). ``during_recovery``
        also kills the first replacement while it is still recovering its tables."""
        self.primary.kill()
        self.log.kills += 1
        if during_recovery:
            time.sleep(2)  # let the group notice the first death
            doomed = self.stack.start_worker(wait=False, **self.env)
            deadline = time.monotonic() + 30
            # Killed once it has started and before it is ready: mid table recovery.
            while time.monotonic() < deadline and not (doomed.health() or {}).get("status"):
                time.sleep(0.2)
            time.sleep(0.5)
            doomed.kill()
            self.log.kills += 1
            self.log.restarts += 1
        self.primary = self.stack.start_replacement(**self.env)
        self.log.restarts += 1

    def start_second(self) -> None:
        env = dict(self.env, METERLINE_CLICKHOUSE_DSN=self.second_dsn)
        self.second = self.stack.start_worker(**env)
        self.log.restarts += 1

    def kill_second_and_replace(self) -> None:
        assert self.second is not None
        self.second.kill()
        self.log.kills += 1
        env = dict(self.env, METERLINE_CLICKHOUSE_DSN=self.second_dsn)
        self.second = self.stack.start_replacement(**env)
        self.log.restarts += 1

    def stop_second(self) -> None:
        """Clean stop; then its store's rows go into the primary's (see the module doc)."""
        if self.second is None:
            return
        self.second.stop()
        self.second = None
        merge_store(
            self.stack.data_dir / "chdb-second", self.stack.data_dir / "merge", self.primary
        )


def merge_store(directory: Path, out: Path, into: WorkerProcess) -> int:
    """Dumps every table of the chDB store at ``directory`` (a child process: chDB opens one
    directory per process) and inserts the rows into the store of ``into``. Returns rows."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "meterline.chaos.dump",
            str(directory.resolve()),
            str(out.resolve()),
        ],
        check=True,
        timeout=300,
    )
    rows = 0
    for f in sorted(out.glob("*.native")):
        table = f.stem
        into.sql(f"INSERT INTO {table} SELECT * FROM file('{f.resolve()}', 'Native')", fmt="json")
        rows += int((out / f"{table}.rows").read_text())
    return rows


class DiskFull:
    """The primary's chDB directory on a small tmpfs that is filled up for a while: inserts
    then fail the way a full disk fails them (ClickHouse's NOT_ENOUGH_SPACE / ENOSPC, both
    retryable in sinks/retry.py), with nothing switched inside the sink. Needs root (mount);
    ``available`` says whether the mount worked."""

    def __init__(self, directory: Path, size_mib: int) -> None:
        self.directory = directory
        self.size_mib = size_mib
        self.filler = directory / "chaos-filler"
        self.available = False

    def mount(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m", "tmpfs", str(self.directory)],
            capture_output=True,
        )
        self.available = done.returncode == 0
        return self.available

    def fill(self) -> int:
        """Writes until the file system is full; returns the bytes written."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with self.filler.open("wb") as out:
            try:
                while True:
                    out.write(chunk)
                    out.flush()
                    written += len(chunk)
            except OSError:
                pass
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.available:
            subprocess.run(["umount", "-l", str(self.directory)], capture_output=True)
            self.available = False
