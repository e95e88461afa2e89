"""Processes for the LLM proxy tests: `meterline proxy` as a child process. (The TCP relay that
stands in for a broker that is down and comes back is meterline.embedded.relay.)"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from meterline.embedded.tansu import die_with_parent, free_port


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
