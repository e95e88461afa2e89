"""A second embedded stack on a busy data directory is told which process holds it (issue
11), whether that process took the lock file or just has the chDB directory open."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterline.embedded.stack import DataDirBusy, DataDirLock


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirBusy) as caught:
        DataDirLock(tmp_path).acquire()
    message = str(caught.value)
    assert f"in use by process {os.getpid()} (" in message
    assert "pytest" in message and "another --data-dir" in message
    first.release()
    again = DataDirLock(tmp_path)
    again.acquire()  # free once released
    again.release()


def test_a_process_with_the_chdb_directory_open_is_named(tmp_path: Path) -> None:
    chdb = tmp_path / "chdb"
    chdb.mkdir()
    (chdb / "status").write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; f = open(sys.argv[1]); print('open', flush=True); time.sleep(60)",
            str(chdb / "status"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(DataDirBusy, match=f"in use by process {holder.pid} \\(.*python"):
            DataDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(10)
    time.sleep(0.1)
    lock = DataDirLock(tmp_path)
    lock.acquire()
    lock.release()


def test_meterline_dev_on_a_busy_directory_says_who_holds_it(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "meterline", "dev", "--data-dir", str(tmp_path)],
            env={**os.environ, "COLUMNS": "300"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        lock.release()
    assert done.returncode == 1
    assert f"is in use by process {os.getpid()}" in done.stdout, done.stdout + done.stderr
