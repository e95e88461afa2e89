"""A loopback TCP relay that can be cut and restored: a broker outage without losing the
embedded broker's in-memory storage.

Tansu keeps its log in memory, so stopping it would lose every record; a relay in front of it
makes the broker unreachable instead. For the outage to reach every connection, the broker
must advertise the relay's address (``TansuBroker(advertised_port=relay.port)``): Kafka
clients bootstrap once and then connect to whatever address the metadata names.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from meterline.embedded.tansu import HOST, free_port


class Relay:
    """Forwards ``HOST:port`` to ``target`` while up. ``cut()`` closes the listener and every
    open connection (clients see a broker that went away and refuses connections);
    ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int] | None = None, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.target = target
        self._server: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, self.port))
        srv.listen(64)
        srv.settimeout(0.2)
        self._server = srv
        self._spawn(self._accept, srv)

    restore = start

    def cut(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.close()
        with self._lock:
            conns, self._open = self._open, set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def stop(self) -> None:
        self.cut()
        for t in self._threads:
            t.join(timeout=2)

    def _spawn(self, fn: object, *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _accept(self, srv: socket.socket) -> None:
        while self._server is srv:
            try:
                client, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.target is None:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
