import math
import os
import subprocess
import sys

from meterline.embedded.process_stats import cpu_seconds, rss_mib


def test_this_process_has_used_cpu_and_memory() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))  # some CPU of its own
    assert cpu_seconds(os.getpid()) >= before >= 0
    assert rss_mib(os.getpid()) > 1


def test_a_process_that_is_gone_gives_nan_not_an_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert math.isnan(cpu_seconds(proc.pid))
    assert math.isnan(rss_mib(proc.pid))
    assert math.isnan(cpu_seconds(None))
