"""The sink's chaos fault switch (sinks/fault.py): while the file exists inserts fail as a
retryable outage, the writer blocks and retries, and once it is gone every row is stored once."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import pytest

import sinks.writer
from sinks.fault import InjectedOutage, check_fault
from sinks.retry import is_retryable
from sinks.writer import ClickHouseWriter


class _Client:
    def __init__(self) -> None:
        self.inserted: list[tuple[str, list[Any]]] = []

    def insert(self, table: str, rows: list[Any], **kwargs: Any) -> None:
        self.inserted.append((table, list(rows)))


def test_switch_is_a_retryable_outage(tmp_path: Path) -> None:
    switch = tmp_path / "outage"
    check_fault(str(switch))  # absent: nothing happens
    check_fault(None)
    switch.write_text("x")
    with pytest.raises(InjectedOutage) as raised:
        check_fault(str(switch))
    assert is_retryable(raised.value)


def test_writer_waits_out_the_outage_and_stores_each_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    switch = tmp_path / "outage"
    switch.write_text("x")
    monkeypatch.setattr(sinks.writer, "check_fault", functools.partial(check_fault, str(switch)))
    client = _Client()
    writer = ClickHouseWriter(client, validate=False, initial_backoff=0.01, max_backoff=0.05)  # type: ignore[arg-type]
    writer.add("t", [(1,), (2,)], ["n"])
    threading.Timer(0.3, switch.unlink).start()
    assert writer.flush() == 2
    assert client.inserted == [("t", [(1,), (2,)])]
    assert writer.stats.retries >= 1 and writer.pending == 0
