"""Kafka values ↔ records.

Avro values use the Confluent wire format: byte 0 = magic 0x00, bytes 1–4 = schema id (big
endian), then the schemaless Avro body. Values that start with ``{`` or ``[`` are JSON, parsed
with ``parse_float=Decimal`` so no number ever passes through a float.

Decoded shapes: records are dicts; a record inside a union of several records is a tuple
``(full record name, dict)`` (e.g. ``AccountCommand["command"]``), an optional record is the
dict or None; decimals are ``Decimal``; timestamps are int ms. :meth:`Codec.encode` accepts the
same shapes, so decode → encode round-trips.

Errors: :class:`DecodeError` (a ValueError) means the data is bad and belongs in the DLQ.
``RegistryUnavailable`` (not a ValueError) means the registry could not answer: retry, do not
dead-letter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from io import BytesIO
from typing import Any, NamedTuple

from fastavro import schemaless_reader, schemaless_writer

from schemas.names import (
    TOKEN_EVENT,
    TOKEN_EVENT_BATCH,
    USAGE_EVENT,
    USAGE_EVENT_BATCH,
    full_name,
)
from schemas.prepare import prepare
from schemas.registry import (
    SchemaRegistry,
    UnknownSchema,
    fingerprint,
    load_local_schemas,
    parse,
    schema_name,
)
from schemas.validate import (
    DecodeError,
    EncodeError,
    Rejected,
    check_usage_avro,
    each,
    each_lenient,
    json_event_list,
    json_events,
    to_json_bytes,
    usage_event,
)
from schemas.validate_tokens import check_token_avro, check_token_avro_v1, token_event

__all__ = ["Codec", "DecodeError", "EncodeError", "Rejected", "to_json_bytes"]

MAGIC = 0
_HEADER = 5
_BOM = b"\xef\xbb\xbf"


class _Reader(NamedTuple):
    name: str
    writer: Any
    # Set only when the writer's version differs from the local .avsc: fastavro then resolves
    # old (or newer) versions into the shape this code expects, defaults included.
    reader: Any
    # The check for token events written with this schema: check_token_avro_v1 for a writer
    # from before cache_write_tokens, whose input_tokens excluded cached tokens.
    token_check: Callable[[dict[str, Any]], dict[str, Any]]


class _Writer(NamedTuple):
    name: str
    header: bytes
    schema: Any
    prepare: Callable[[Any], Any]


def _shape(parsed: Any) -> str:
    # fastavro's private bookkeeping keys differ between otherwise equal parses.
    if isinstance(parsed, dict):
        parsed = {k: v for k, v in parsed.items() if not k.startswith("__")}
    return fingerprint(parsed)


def _token_check(writer: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Judged by the writer's own TokenEvent fields, not its id: ids of a Confluent registry
    are not ours, and every TokenEvent version without cache_write_tokens (id 3 and the batch
    id 4 here) counted cached tokens outside input_tokens."""
    if schema_name(writer) == TOKEN_EVENT_BATCH:
        writer = writer["fields"][0]["type"]["items"]
    if (
        isinstance(writer, dict)
        and schema_name(writer) == TOKEN_EVENT
        and not any(f["name"] == "cache_write_tokens" for f in writer["fields"])
    ):
        return check_token_avro_v1
    return check_token_avro


def _usage_batch(record: Any) -> dict[str, Any]:
    if type(record) is not dict or "events" not in record:
        raise DecodeError("expected {'events': [...]}")
    return {"events": each(record["events"], usage_event)}


def _token_batch(record: Any) -> dict[str, Any]:
    if type(record) is not dict or "events" not in record:
        raise DecodeError("expected {'events': [...]}")
    return {"events": each(record["events"], token_event)}


# The hot schemas get their hand-written checks (same rules as the JSON path); the rest go
# through the generic schema walk.
_FAST_PREPARE: dict[str, Callable[[Any], Any]] = {
    USAGE_EVENT: usage_event,
    USAGE_EVENT_BATCH: _usage_batch,
    TOKEN_EVENT: token_event,
    TOKEN_EVENT_BATCH: _token_batch,
}


class Codec:
    """Encoder/decoder bound to one registry. Not thread-safe (caches are plain dicts); one per
    worker process or event loop."""

    to_json_bytes = staticmethod(to_json_bytes)

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._readers: dict[int, _Reader] = {}
        self._writers: dict[str, _Writer] = {}
        self._local_shapes: dict[str, tuple[str, Any]] | None = None

    # ----------------------------------------------------------------------- decode

    def decode(self, data: bytes) -> tuple[str, Any]:
        """``(full schema name, record)`` for Avro, ``("json", value)`` for JSON."""
        if not data:
            raise DecodeError("empty value (null or zero bytes)")
        if data[0] == MAGIC:
            return self._decode_avro(data)
        return "json", self._decode_json(data)

    def _decode_avro(self, data: bytes) -> tuple[str, Any]:
        size = len(data)
        if size < _HEADER:
            raise DecodeError(f"truncated Confluent header: {size} bytes, need at least 5")
        schema_id = int.from_bytes(data[1:_HEADER], "big")
        r = self._readers.get(schema_id)
        if r is None:
            r = self._reader(schema_id)
        fo = BytesIO(data)
        fo.seek(_HEADER)
        try:
            record = schemaless_reader(fo, r.writer, r.reader, True, True)
        except Exception as exc:
            raise DecodeError(
                f"{r.name} (schema id {schema_id}): malformed Avro body: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        end = fo.tell()
        if end != size:
            # Usually a value written with a different schema than its id claims.
            raise DecodeError(
                f"{r.name} (schema id {schema_id}): {size - end} bytes left after the record"
            )
        return r.name, record

    def _reader(self, schema_id: int) -> _Reader:
        try:
            writer = self.registry.schema_for(schema_id)
        except UnknownSchema:
            raise DecodeError(f"schema id {schema_id} not registered") from None
        name = schema_name(writer)
        reader = None
        local = self._local().get(name)
        if local is not None and local[0] != _shape(writer):
            reader = local[1]
        r = self._readers[schema_id] = _Reader(name, writer, reader, _token_check(writer))
        return r

    def _local(self) -> dict[str, tuple[str, Any]]:
        if self._local_shapes is None:
            shapes = {}
            for name, schema in load_local_schemas().items():
                parsed = parse(schema)
                shapes[name] = (_shape(parsed), parsed)
            self._local_shapes = shapes
        return self._local_shapes

    @staticmethod
    def _decode_json(data: bytes) -> Any:
        if isinstance(data, memoryview):
            data = data.tobytes()
        head = data[:1024].lstrip()
        if head.startswith(_BOM):
            head = head[3:].lstrip()
        if head[:1] not in (b"{", b"["):
            raise DecodeError(
                f"unknown magic byte 0x{data[0]:02x}: expected 0x00 (Confluent Avro) or JSON "
                "starting with '{' or '['"
            )
        try:
            # parse_constant: NaN/Infinity become Decimals so the field check can name them.
            return json.loads(data, parse_float=Decimal, parse_constant=Decimal)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise DecodeError(f"invalid JSON: {exc}") from None

    # ----------------------------------------------------------------------- events

    def usage_events(self, data: bytes) -> list[dict[str, Any]]:
        """Normalised UsageEvent dicts from a UsageEvent, a UsageEventBatch or JSON (an event,
        a list of events or ``{"events": [...]}``). One bad event rejects the whole value; see
        :meth:`usage_events_lenient` to keep the good events of a batch."""
        name, obj = self.decode(data)
        if name == USAGE_EVENT:
            return [check_usage_avro(obj)]
        if name == USAGE_EVENT_BATCH:
            return each(obj["events"], check_usage_avro)
        if name == "json":
            return json_events(obj, usage_event)
        raise DecodeError(f"expected a UsageEvent or UsageEventBatch, got {name}")

    def _token_check(self, data: bytes) -> Callable[[dict[str, Any]], dict[str, Any]]:
        # Called after decode(), which cached the reader of this value's schema id.
        return self._readers[int.from_bytes(data[1:_HEADER], "big")].token_check

    def token_events(self, data: bytes) -> list[dict[str, Any]]:
        """Like :meth:`usage_events`, for TokenEvent / TokenEventBatch / JSON. Events of a
        retired TokenEvent version come in the current semantics (check_token_avro_v1)."""
        name, obj = self.decode(data)
        if name == TOKEN_EVENT:
            return [self._token_check(data)(obj)]
        if name == TOKEN_EVENT_BATCH:
            return each(obj["events"], self._token_check(data))
        if name == "json":
            return json_events(obj, token_event)
        raise DecodeError(f"expected a TokenEvent or TokenEventBatch, got {name}")

    def usage_events_lenient(self, data: bytes) -> tuple[list[dict[str, Any]], list[Rejected]]:
        """(good events, rejected events) of a batch. A value that cannot be read at all, or
        that holds one bad single event, still raises DecodeError."""
        name, obj = self.decode(data)
        if name == USAGE_EVENT:
            return [check_usage_avro(obj)], []
        if name == USAGE_EVENT_BATCH:
            return each_lenient(obj["events"], check_usage_avro)
        if name == "json":
            items, single = json_event_list(obj)
            return ([usage_event(items[0])], []) if single else each_lenient(items, usage_event)
        raise DecodeError(f"expected a UsageEvent or UsageEventBatch, got {name}")

    def token_events_lenient(self, data: bytes) -> tuple[list[dict[str, Any]], list[Rejected]]:
        name, obj = self.decode(data)
        if name == TOKEN_EVENT:
            return [self._token_check(data)(obj)], []
        if name == TOKEN_EVENT_BATCH:
            return each_lenient(obj["events"], self._token_check(data))
        if name == "json":
            items, single = json_event_list(obj)
            return ([token_event(items[0])], []) if single else each_lenient(items, token_event)
        raise DecodeError(f"expected a TokenEvent or TokenEventBatch, got {name}")

    # ----------------------------------------------------------------------- encode

    def encode(self, schema_name: str, record: dict[str, Any]) -> bytes:
        """Wire-format bytes of ``record`` under the current id of ``schema_name`` (full or
        short name). Checks the record first: EncodeError says which field is wrong."""
        w = self._writers.get(schema_name)
        if w is None:
            w = self._writer(schema_name)
        try:
            datum = w.prepare(record)
        except DecodeError as exc:
            raise EncodeError(f"{w.name}: {exc}") from None
        buf = BytesIO()
        buf.write(w.header)
        try:
            schemaless_writer(buf, w.schema, datum)
        except Exception as exc:  # belt and braces: prepare() should have caught it
            raise EncodeError(f"{w.name}: {type(exc).__name__}: {exc}") from None
        return buf.getvalue()

    def encode_usage_batch(self, events: list[dict[str, Any]]) -> bytes:
        return self.encode(USAGE_EVENT_BATCH, {"events": events})

    def encode_token_batch(self, events: list[dict[str, Any]]) -> bytes:
        return self.encode(TOKEN_EVENT_BATCH, {"events": events})

    def _writer(self, name: str) -> _Writer:
        full = full_name(name)
        try:
            schema_id = self.registry.id_for(full)
            schema = self.registry.schema_for(schema_id)
        except UnknownSchema as exc:
            raise EncodeError(str(exc)) from None
        named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
        fast = _FAST_PREPARE.get(full)
        if fast is None:

            def fast(record: Any, _s: Any = schema, _n: Any = named) -> Any:
                return prepare(_s, record, _n)

        w = _Writer(full, bytes([MAGIC]) + schema_id.to_bytes(4, "big"), schema, fast)
        self._writers[name] = self._writers[full] = w
        return w
