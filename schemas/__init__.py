"""Avro schemas (``schemas/avro``), schema registries and the Kafka value codec.

Typical use::

    from schemas import Codec, registry_from_settings
    codec = Codec(registry_from_settings(settings.schema_registry_url))
    events = codec.usage_events(message.value)   # DecodeError → DLQ
"""

from schemas.codec import Codec, DecodeError, EncodeError, Rejected, to_json_bytes
from schemas.confluent_registry import ConfluentRegistry
from schemas.names import (
    ACCOUNT_COMMAND,
    CATALOG_CHANGE,
    DEAD_LETTER,
    PAYMENT_OUTCOME,
    TOKEN_EVENT,
    TOKEN_EVENT_BATCH,
    USAGE_EVENT,
    USAGE_EVENT_BATCH,
)
from schemas.registry import (
    FileRegistry,
    ManifestError,
    RegistryUnavailable,
    SchemaRegistry,
    UnknownSchema,
)
from schemas.registry_choice import registry_from_settings

__all__ = [
    "ACCOUNT_COMMAND",
    "CATALOG_CHANGE",
    "DEAD_LETTER",
    "PAYMENT_OUTCOME",
    "TOKEN_EVENT",
    "TOKEN_EVENT_BATCH",
    "USAGE_EVENT",
    "USAGE_EVENT_BATCH",
    "Codec",
    "ConfluentRegistry",
    "DecodeError",
    "EncodeError",
    "FileRegistry",
    "ManifestError",
    "RegistryUnavailable",
    "Rejected",
    "SchemaRegistry",
    "UnknownSchema",
    "registry_from_settings",
    "to_json_bytes",
]
