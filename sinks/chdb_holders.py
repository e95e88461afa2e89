"""Which other processes hold a chDB data directory: chDB opens one directory per process,
and the error it gives a second opener names neither the directory's holder nor its command."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or "?"


def holders(directory: Path) -> list[int]:
    """Other processes with a file open under ``directory`` (Linux /proc; only processes
    this user may inspect). Catches a worker started by hand on the same chDB directory,
    which took no lock file."""
    prefix = str(directory.resolve()) + os.sep
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).startswith(prefix):
                        found.append(int(entry.name))
                        break
    return found


def describe(directory: Path) -> str:
    """ "pid 123 (python -m meterline worker)" for each holder, or "" when none is seen."""
    return ", ".join(f"pid {pid} ({command_of(pid)})" for pid in holders(directory))
