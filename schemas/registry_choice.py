"""Which schema registry the settings choose. Above both registries, so that neither
imports the other."""

from __future__ import annotations

from schemas.confluent_registry import ConfluentRegistry
from schemas.registry import FileRegistry, SchemaRegistry


def registry_from_settings(url: str) -> SchemaRegistry:
    """``METERLINE_SCHEMA_REGISTRY_URL`` empty → built-in file registry. The Confluent
    client itself is imported only when a registry is configured (confluent_registry.py)."""
    if not url.strip():
        return FileRegistry()
    return ConfluentRegistry(url.strip())
