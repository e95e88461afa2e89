"""A real browser for the dashboard test: Debian's ``chromium``, installed with apt-get when it
is missing. Playwright's own browser download needs the internet beyond package registries, so
the tests drive the distribution's build through ``executable_path`` instead.

Skips only when there is no apt-get at all (not a Debian-like machine) or no way to run it as
root; an install that runs and fails is an error, so CI cannot silently lose the test."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["LAUNCH_ARGS", "chromium_path"]

PACKAGES = ("chromium", "fonts-dejavu-core")  # a font, so screenshots show text
# Root in a container has no user namespace for Chromium's sandbox; the page is our own.
LAUNCH_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


def _apt(prefix: list[str], *args: str, timeout: float) -> None:
    cmd = [*prefix, "apt-get", "-o", "DPkg::Lock::Timeout=120", "-q", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")


def chromium_path() -> str:
    """The chromium executable, installing Debian's package first if it is not on PATH."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium on PATH and no apt-get to install Debian's chromium package")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.skip("chromium is missing and installing it needs root (no sudo here)")
        prefix = ["sudo", "-n"]
    # The package lists may be absent on a fresh image (a slim container ships none).
    _apt(prefix, "update", timeout=300)
    _apt(prefix, "install", "-y", "--no-install-recommends", *PACKAGES, timeout=900)
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get installed chromium but it is not on PATH")
    return found
