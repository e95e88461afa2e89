"""The worker's collector thresholds: what the setting applies, and what 0 means."""

import gc
from collections.abc import Iterator

import pytest

from meterline.gc_tuning import PYTHON_DEFAULT_GEN0, tune_gc
from meterline.settings import Settings


@pytest.fixture(autouse=True)
def restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_setting_sets_the_first_threshold() -> None:
    assert tune_gc(50_000) == gc.get_threshold()
    assert gc.get_threshold()[0] == 50_000


def test_zero_keeps_pythons_defaults() -> None:
    tune_gc(50_000)
    assert tune_gc(0) == (PYTHON_DEFAULT_GEN0, 10, 10) == gc.get_threshold()


def test_the_worker_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_gen0_threshold == 50_000
    monkeypatch.setenv("METERLINE_GC_GEN0_THRESHOLD", "0")
    assert Settings().gc_gen0_threshold == 0
