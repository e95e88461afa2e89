"""Processes for the LLM proxy tests: `meterline proxy` as a child process. (The TCP relay that
stands in for a broker that is down and comes back is meterline.embedded.relay.)"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.embedded.stack import WorkerProcess
from meterline.embedded.tansu import die_with_parent, free_port
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics


class ProxyProcess:
    """`python -m meterline proxy`, configured only through METERLINE_* env."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**env, "METERLINE_PROXY_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meterline", "proxy"],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}; see {self.log_path}")
            if self.health() is not None:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"proxy not up after {timeout}s; see {self.log_path}")

    def health(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.url}/health", timeout=2.0)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_health(self, pred: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        h: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            h = self.health()
            if h is not None and pred(h):
                return h
            time.sleep(0.2)
        raise TimeoutError(f"proxy health never matched: {h}; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def published_token_ids(bootstrap: str, customers: set[str]) -> Counter[str]:
    """How often each token event id of these customers is in meterline.tokens."""
    codec = Codec(registry_from_settings(""))
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"proxy-test-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # Assigned, not subscribed: no group join (slow on Tansu), read from the beginning.
    meta = c.list_topics(topics.TOKENS, timeout=10).topics[topics.TOKENS]
    c.assign([TopicPartition(topics.TOKENS, p, OFFSET_BEGINNING) for p in meta.partitions])
    seen: Counter[str] = Counter()
    quiet = time.monotonic() + 10
    try:
        while time.monotonic() < quiet:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            quiet = time.monotonic() + 3
            for ev in codec.token_events(msg.value()):
                if ev["customer_id"] in customers:
                    seen[ev["event_id"]] += 1
    finally:
        c.close()
    return seen


def balance_of(worker: WorkerProcess, customer: str) -> str | None:
    r = httpx.get(f"{worker.url}/balance/{customer}", timeout=10)
    return r.json()["balance"] if r.status_code == 200 else None


def wait_balance(worker: WorkerProcess, customer: str, pred: Any) -> str:
    deadline = time.monotonic() + 60
    b = None
    while time.monotonic() < deadline:
        b = balance_of(worker, customer)
        if b is not None and pred(b):
            return b
        time.sleep(0.3)
    raise TimeoutError(f"balance of {customer} is {b}")
