"""A fault switch for chaos runs (`meterline chaos`): while the file named by
``METERLINE_SINK_FAULT_FILE`` exists, every ClickHouse insert of the sink fails the way an
unreachable server does, so the writer's pause / retry / back-pressure path is exercised on the
embedded store, which cannot be taken down on its own (chDB lives inside the worker).

Unset (the default) costs one attribute read per insert; set, one ``stat`` per insert."""

from __future__ import annotations

import os

from clickhouse_connect.driver.exceptions import OperationalError

FAULT_ENV = "METERLINE_SINK_FAULT_FILE"

# Read once: the switch is the file's presence, not the variable, so a run toggles it live.
_FAULT_FILE = os.environ.get(FAULT_ENV) or None


class InjectedOutage(OperationalError):
    """ClickHouse 'unavailable' by the fault switch (retryable, like a network failure)."""


def check_fault(path: str | None = _FAULT_FILE) -> None:
    if path is not None and os.path.exists(path):
        raise InjectedOutage(f"injected ClickHouse outage ({FAULT_ENV}={path} exists)")
