"""Fixtures shared by integration tests: they talk to a real (embedded) Tansu broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterline.embedded.tansu import TansuBroker


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One broker for the whole session; tests keep apart by using their own topic names
    and consumer group ids. Its log is under the session's pytest tmp dir."""
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker
