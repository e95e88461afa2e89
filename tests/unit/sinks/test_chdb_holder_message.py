"""A second process opening a chDB directory another process holds is told which process
holds it (issue 11: the old message blamed "this process")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HOLD = "from sinks.client import connect; connect('chdb:{d}').query('SELECT 1'); print('ok', flush=True); import time; time.sleep(60)"  # noqa: E501
OPEN = "from sinks.client import connect; connect('chdb:{d}').query('SELECT 1')"


def test_the_message_names_the_process_that_holds_the_directory(tmp_path: Path) -> None:
    d = tmp_path / "chdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(d=d)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        second = subprocess.run(
            [sys.executable, "-c", OPEN.format(d=d)], capture_output=True, text=True, timeout=60
        )
        assert second.returncode != 0
        assert f"held by pid {holder.pid}" in second.stderr
        assert "this process already holds" not in second.stderr
    finally:
        holder.kill()
        holder.wait(10)
