"""The registry and codec every codec test uses (from the checked-in manifest)."""

from __future__ import annotations

import pytest

from schemas.codec import Codec
from schemas.registry import FileRegistry


@pytest.fixture(scope="module")
def registry() -> FileRegistry:
    return FileRegistry()


@pytest.fixture(scope="module")
def codec(registry: FileRegistry) -> Codec:
    return Codec(registry)
