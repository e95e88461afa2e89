"""Embedded stack for development, demos and tests: the Tansu Kafka-API broker."""

from meterline.embedded.tansu import (
    TansuBroker,
    TansuError,
    die_with_parent,
    free_port,
    tansu_binary,
)

__all__ = ["TansuBroker", "TansuError", "die_with_parent", "free_port", "tansu_binary"]
