"""A Confluent Schema Registry behind the ``SchemaRegistry`` protocol of schemas/registry.py:
schemas are registered under a subject per record (or per topic), ids come from the registry,
and a failure to reach it is ``RegistryUnavailable`` (retry), never a bad record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from schemas.names import TOPIC_OF, full_name
from schemas.registry import (
    RegistryUnavailable,
    UnknownSchema,
    load_local_schemas,
    parse,
)

SubjectStrategy = Literal["record", "topic_record", "topic"]


class ConfluentRegistry:
    """A Confluent Schema Registry through ``confluent_kafka.schema_registry``.

    Subjects: ``record`` (RecordNameStrategy, the default: subject = full record name) or
    ``topic_record`` (``<topic>-<full name>``) work for every topic. ``topic``
    (TopicNameStrategy, ``<topic>-value``) only fits topics that carry one schema: under the
    registry's default BACKWARD compatibility, UsageEvent and UsageEventBatch cannot share
    ``meterline.usage-value``.

    Lookups are cached for the life of the object (an id never changes meaning), so the
    blocking HTTP calls happen once per schema, not per message.
    """

    def __init__(
        self,
        url: str = "",
        *,
        strategy: SubjectStrategy = "record",
        conf: dict[str, Any] | None = None,
        client: Any | None = None,
        schema_factory: Callable[[str], Any] | None = None,
        local: dict[str, Any] | None = None,
    ) -> None:
        # client/schema_factory exist so the subject and cache logic is testable without a
        # registry server; in production both come from confluent_kafka.
        if client is None:
            client = _confluent_client({"url": url, **(conf or {})})
        self._client = client
        self._schema_factory = schema_factory or _confluent_schema
        if strategy not in ("record", "topic_record", "topic"):
            raise ValueError(f"unknown subject strategy {strategy!r}")
        self.strategy: SubjectStrategy = strategy
        self._local = local if local is not None else load_local_schemas()
        self._ids: dict[str, int] = {}
        self._parsed: dict[int, dict[str, Any]] = {}

    def subject_for(self, name: str) -> str:
        name = full_name(name)
        if self.strategy == "record":
            return name
        topic = TOPIC_OF.get(name)
        if topic is None:
            raise UnknownSchema(f"no topic known for schema {name}; use strategy 'record'")
        return f"{topic}-{name}" if self.strategy == "topic_record" else f"{topic}-value"

    def id_for(self, name: str) -> int:
        name = full_name(name)
        sid = self._ids.get(name)
        if sid is None:
            if name not in self._local:
                raise UnknownSchema(f"schema {name} is not defined in schemas/avro")
            text = json.dumps(self._local[name], separators=(",", ":"))
            try:
                # Registering an identical schema is idempotent: it returns the existing id.
                subject = self.subject_for(name)
                sid = int(self._client.register_schema(subject, self._schema_factory(text)))
            except Exception as exc:
                raise RegistryUnavailable(f"registering {name}: {exc}") from exc
            self._ids[name] = sid
        return sid

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        try:
            schema = self._client.get_schema(schema_id)
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 404:
                raise UnknownSchema(f"schema id {schema_id} not registered") from exc
            raise RegistryUnavailable(f"fetching schema id {schema_id}: {exc}") from exc
        schema_type = getattr(schema, "schema_type", None) or "AVRO"
        if schema_type != "AVRO":
            raise UnknownSchema(f"schema id {schema_id} is {schema_type}, not Avro")
        if getattr(schema, "references", None):
            raise UnknownSchema(f"schema id {schema_id} uses schema references (unsupported)")
        try:
            parsed = parse(json.loads(schema.schema_str))
        except Exception as exc:
            raise UnknownSchema(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        self._parsed[schema_id] = parsed
        return parsed


def _confluent_client(conf: dict[str, Any]) -> Any:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:
        raise RuntimeError(
            "a Schema Registry URL is set but confluent_kafka.schema_registry cannot be "
            f"imported ({exc}); install confluent-kafka[schemaregistry]"
        ) from exc
    return SchemaRegistryClient(conf)


def _confluent_schema(text: str) -> Any:
    from confluent_kafka.schema_registry import Schema

    return Schema(text, schema_type="AVRO")
