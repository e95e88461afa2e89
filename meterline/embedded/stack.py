"""The embedded stack: Tansu + worker processes, started and stopped by our own code.

Used by `meterline dev`, `meterline demo`, the benchmark and the integration tests, so all of
them stop every process they start, also when they fail."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from meterline.embedded.relay import Relay
from meterline.embedded.tansu import TansuBroker, die_with_parent, free_port
from meterline.settings import STALL_EXIT_CODE
from sinks.chdb_holders import command_of as _command_of
from sinks.chdb_holders import holders as _holders
from sinks.readonly_sql import READ_STATEMENTS
from streams import topics
from streams.admin import ensure_topics

GROUP_EVICTION_WAIT = 8.0  # the 6 s session timeout plus a margin
LOCK_FILE = "meterline.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory (chDB allows one process per directory)."""


class DataDirLock:
    """An exclusive flock on ``<data_dir>/meterline.lock`` naming its holder (pid and
    command), so a second stack on the same directory is told which process has it, instead
    of its worker dying on chDB's refusal to open a directory another process holds."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self.chdb_dir = data_dir / "chdb"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 4096, 0).decode(errors="replace").split("\n", 1)
            os.close(fd)
            pid = int(text[0]) if text[0].strip().isdigit() else None
            # The holder's live command line, else the one it wrote when it took the lock.
            live = _command_of(pid) if pid is not None else "?"
            command = live if live != "?" else (text[1].strip() if len(text) > 1 else "?")
            raise DataDirBusy(self._message(pid, command)) from None
        holders = _holders(self.chdb_dir) if self.chdb_dir.exists() else []
        if holders:
            os.close(fd)
            raise DataDirBusy(self._message(holders[0], _command_of(holders[0])))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{_command_of(os.getpid())}\n".encode(), 0)
        self._fd = fd

    def _message(self, pid: int | None, command: str) -> str:
        who = f"process {pid} ({command})" if pid is not None else "another process"
        return (
            f"data directory {self.path.parent.resolve()} is in use by {who}; "
            "stop it, or give this one another --data-dir"
        )

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor drops the flock; the file stays (removing it would let
            # a third process lock a new file while a second still waits on the old one).
            os.close(self._fd)
            self._fd = None


class WorkerProcess:
    """`meterline worker` as a child process, configured only through METERLINE_* env."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = int(env["METERLINE_WEB_PORT"])
        self.restarts = 0
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        self._spawn()
        # Supervised like a deployment would be: a worker that exits because consumption
        # stalled (STALL_EXIT_CODE, see streams/runtime/watchdog.py) is started again, once
        # the group has let go of it, and resumes from its committed offsets.
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            proc = self.proc
            if proc is not None and proc.poll() == STALL_EXIT_CODE:
                if self._stopping.wait(GROUP_EVICTION_WAIT):
                    return
                self.restarts += 1
                self._spawn()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meterline", "worker"],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A test runner or `meterline dev` killed outright takes its worker with it.
                preexec_fn=die_with_parent,
            )

    def health(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.url}/health", timeout=2.0)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        """Ready = web up and partitions assigned (the consumer group join is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode}; see {self.log_path}"
                )
            h = self.health()
            if h and h.get("ready"):
                return h
            time.sleep(0.25)
        raise TimeoutError(f"worker not ready after {timeout}s; see {self.log_path}")

    def sql(self, query: str, fmt: str = "json") -> Any:
        # The worker may be between a supervised restart and its web server coming up.
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(
                    f"{self.url}/sql",
                    params=self._sql_params(query, fmt),
                    content=query,
                    headers=self._auth_headers(),
                    timeout=120.0,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self._stopping.is_set():
                    raise
                time.sleep(0.5)
        if r.status_code != 200:
            raise RuntimeError(f"SQL failed ({r.status_code}): {r.text}")
        return r.json() if fmt == "json" else r.text

    def _sql_params(self, query: str, fmt: str) -> dict[str, str]:
        # /sql is read-only; a test's own maintenance statement (RENAME, OPTIMIZE, ...) goes
        # with mode=write, which the stack's keyless loopback workers allow
        # (METERLINE_SQL_ALLOW_WRITES, see env()).
        words = query.lstrip(" \t\n(").split(None, 1)
        first = words[0].upper() if words else ""
        return {"format": fmt, **({} if first in READ_STATEMENTS else {"mode": "write"})}

    def _auth_headers(self) -> dict[str, str]:
        # A worker started with keys is called with the key its env names for clients.
        key = self.env.get("METERLINE_API_KEY", "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def kill(self) -> None:
        """SIGKILL, no goodbye: the crash the exactness guarantee is about."""
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        self._stopping.set()
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class EmbeddedStack:
    def __init__(
        self,
        data_dir: Path,
        partitions: int = 4,
        extra_env: dict[str, str] | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.partitions = partitions
        self.extra_env = extra_env or {}
        # With a relay, every client reaches the broker through it (the broker advertises
        # the relay's address), so cutting the relay is an outage of the broker for all.
        self.relay = relay
        advertised = relay.port if relay is not None else None
        self.broker = TansuBroker(log_dir=data_dir / "logs", advertised_port=advertised)
        self.lock = DataDirLock(data_dir)
        self.workers: list[WorkerProcess] = []
        self._chdb = f"chdb://{(data_dir / 'chdb').resolve()}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "METERLINE_BROKER": self.bootstrap,
            "METERLINE_BROKER_IS_TANSU": "true",
            "METERLINE_CLICKHOUSE_DSN": self._chdb,
            "METERLINE_DATA_DIR": str(self.data_dir.resolve()),
            "METERLINE_PARTITIONS": str(self.partitions),
            "METERLINE_WEB_PORT": str(free_port()),
            # Tests and dev reach their own store only through the worker (chDB is one
            # process per directory): let their maintenance statements through
            # POST /sql?mode=write. Only a keyless loopback API honours it.
            "METERLINE_SQL_ALLOW_WRITES": "true",
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def start(self) -> EmbeddedStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()  # DataDirBusy names the process that holds the directory
        self.broker.start()
        if self.relay is not None:
            self.relay.target = (self.broker.host, self.broker.port)
            self.relay.start()
        self.broker.wait_ready()
        ensure_topics(self.bootstrap, self.partitions, names=topics.ALL)
        return self

    @property
    def bootstrap(self) -> str:
        return self.relay.address if self.relay is not None else self.broker.bootstrap

    def start_worker(self, wait: bool = True, **overrides: str) -> WorkerProcess:
        n = len(self.workers)
        worker = WorkerProcess(self.env(**overrides), self.data_dir / "logs" / f"worker-{n}.log")
        self.workers.append(worker.start())
        if wait:
            worker.wait_ready()
        return worker

    def start_replacement(self, **overrides: str) -> WorkerProcess:
        """Starts a worker in place of one that was SIGKILLed, once the broker has evicted
        the dead member (6 s session timeout), so a test sees one rebalance, not two. Joining
        earlier used to end in a silent stall or lost records; that was Faust's delivery bug
        (streams/runtime/delivery_fix.py), and with the fix an immediate replacement passed the
        three SIGKILL tests too (2 rounds of 3 at once)."""
        time.sleep(GROUP_EVICTION_WAIT)
        return self.start_worker(**overrides)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.broker.stop()
        if self.relay is not None:
            self.relay.stop()
        self.lock.release()

    def __enter__(self) -> EmbeddedStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
