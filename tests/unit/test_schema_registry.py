"""Schema ids: the checked-in manifest, old versions, and the Confluent registry adapter.

ConfluentRegistry is exercised against a small in-memory stand-in for
``confluent_kafka.schema_registry.SchemaRegistryClient`` (same two methods, same id semantics):
there is no registry server here, and the real client's module needs extras (authlib, httpx2)
that the pinned environment does not install.
"""

from __future__ import annotations

import io
import json
import shutil
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas.codec import Codec, DecodeError
from schemas.confluent_registry import ConfluentRegistry
from schemas.names import TOPIC_OF, USAGE_EVENT, USAGE_EVENT_BATCH
from schemas.registry import (
    AVRO_DIR,
    FileRegistry,
    ManifestError,
    RegistryUnavailable,
    SchemaRegistry,
    UnknownSchema,
    fingerprint,
    load_local_schemas,
    manifest_problems,
    read_manifest,
    top_level_names,
)
from schemas.registry_choice import registry_from_settings

# Frozen on purpose: an id is in data already written to Kafka. Changing a line here means
# breaking every message written with the old id.
STABLE_IDS = {
    "meterline.UsageEvent": 1,
    "meterline.UsageEventBatch": 2,
    "meterline.TokenEvent": 11,  # 3 is its first version, retired (cache-write, reasoning)
    "meterline.TokenEventBatch": 12,  # 4 is its first version, retired (embeds TokenEvent)
    "meterline.AccountCommand": 10,  # 5 is its first version, retired (bill-in-advance spans)
    "meterline.PaymentOutcome": 9,  # 6 is its first version, retired (payment method, disputes)
    "meterline.CatalogChange": 13,  # 7 is its first version, retired (cache-write price)
    "meterline.DeadLetter": 8,
}


def test_checked_in_manifest_is_consistent() -> None:
    assert manifest_problems() == []


def test_ids_never_change() -> None:
    registry = FileRegistry()
    for name, sid in STABLE_IDS.items():
        assert registry.id_for(name) == sid
    assert set(top_level_names()) == set(STABLE_IDS)
    # A retired version keeps its id: messages written with it still decode.
    assert registry.schema_for(6)["name"] == "meterline.PaymentOutcome"
    assert registry.schema_for(3)["name"] == "meterline.TokenEvent"
    assert registry.schema_for(4)["name"] == "meterline.TokenEventBatch"
    assert registry.schema_for(7)["name"] == "meterline.CatalogChange"


def test_short_names_and_unknown_names() -> None:
    registry = FileRegistry()
    assert registry.id_for("UsageEvent") == 1
    with pytest.raises(UnknownSchema, match=r"meterline\.Nope has no id"):
        registry.id_for("Nope")
    with pytest.raises(UnknownSchema, match="schema id 999 not registered"):
        registry.schema_for(999)


def test_schemas_are_self_contained() -> None:
    # A registry gets one JSON document per schema, without schema references.
    local = load_local_schemas()
    batch = local[USAGE_EVENT_BATCH]
    assert batch["fields"][0]["type"]["items"]["name"] == "UsageEvent"
    for name in STABLE_IDS:
        parse_schema(json.loads(json.dumps(local[name])), named_schemas={})


def test_file_registry_satisfies_the_protocol() -> None:
    assert isinstance(FileRegistry(), SchemaRegistry)


def _copy_avro(tmp_path: Path) -> Path:
    target = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, target)
    return target


def _edit_usage_event(directory: Path, edit: Any) -> None:
    path = directory / "UsageEvent.avsc"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema))


def test_a_changed_schema_under_an_old_id_is_refused(tmp_path: Path) -> None:
    directory = _copy_avro(tmp_path)
    _edit_usage_event(
        directory, lambda s: s["fields"].append({"name": "unit", "type": "string", "default": ""})
    )
    with pytest.raises(
        ManifestError, match=r"meterline\.UsageEvent changed but ids\.json still gives it id 1"
    ) as info:
        FileRegistry(directory)
    # The error hands over the fingerprint to write down.
    assert fingerprint(load_local_schemas(directory)[USAGE_EVENT]) in str(info.value)


def test_a_scale_change_counts_as_a_change(tmp_path: Path) -> None:
    # Avro's Parsing Canonical Form ignores logical types; our fingerprint must not.
    directory = _copy_avro(tmp_path)
    _edit_usage_event(directory, lambda s: s["fields"][3]["type"].update(scale=6))
    with pytest.raises(ManifestError, match="changed"):
        FileRegistry(directory)


def test_doc_changes_are_free(tmp_path: Path) -> None:
    directory = _copy_avro(tmp_path)
    _edit_usage_event(directory, lambda s: s.update(doc="reworded"))
    assert FileRegistry(directory).id_for(USAGE_EVENT) == 1


def test_duplicate_and_reused_ids_are_refused(tmp_path: Path) -> None:
    directory = _copy_avro(tmp_path)
    manifest = read_manifest(directory)
    manifest["current"]["meterline.DeadLetter"]["id"] = 1
    (directory / "ids.json").write_text(json.dumps(manifest))
    assert any("id 1 is already used" in p for p in manifest_problems(directory))

    text = (AVRO_DIR / "ids.json").read_text()
    doubled = text.replace('"current": {', '"current": {\n"meterline.UsageEvent": {"id": 9},', 1)
    (directory / "ids.json").write_text(doubled)
    with pytest.raises(ManifestError, match=r"'meterline\.UsageEvent' appears twice"):
        FileRegistry(directory)


def test_a_new_schema_without_an_id_is_reported(tmp_path: Path) -> None:
    directory = _copy_avro(tmp_path)
    (directory / "Extra.avsc").write_text(
        json.dumps({"type": "record", "name": "Extra", "namespace": "meterline", "fields": []})
    )
    assert "meterline.Extra: has no id in ids.json" in manifest_problems(directory)


def test_messages_written_with_a_retired_version_still_decode(tmp_path: Path) -> None:
    """Version 0 of UsageEvent had no dimensions. Its messages decode into today's shape."""
    directory = _copy_avro(tmp_path)
    old = json.loads((AVRO_DIR / "UsageEvent.avsc").read_text())
    old["fields"] = [f for f in old["fields"] if f["name"] != "dimensions"]
    manifest = read_manifest(directory)
    manifest["retired"]["100"] = {
        "name": USAGE_EVENT,
        "fingerprint": fingerprint(old),
        "schema": old,
    }
    (directory / "ids.json").write_text(json.dumps(manifest))
    registry = FileRegistry(directory)

    body = io.BytesIO()
    record = {
        "event_id": "e",
        "customer_id": "c",
        "meter": "m",
        "value": Decimal("2.5"),
        "timestamp": 5,
    }
    schemaless_writer(body, parse_schema(old), record)
    data = b"\x00" + (100).to_bytes(4, "big") + body.getvalue()
    assert Codec(registry).usage_events(data) == [{**record, "dimensions": {}}]
    # New messages still get the current id.
    assert registry.id_for(USAGE_EVENT) == 1


def test_a_retired_schema_must_match_its_fingerprint(tmp_path: Path) -> None:
    directory = _copy_avro(tmp_path)
    manifest = read_manifest(directory)
    manifest["retired"]["100"] = {"name": USAGE_EVENT, "fingerprint": "sha256:0", "schema": {}}
    (directory / "ids.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="retired id 100: its schema does not match"):
        FileRegistry(directory)


def test_registry_from_settings_defaults_to_files() -> None:
    assert isinstance(registry_from_settings(""), FileRegistry)
    assert isinstance(registry_from_settings("   "), FileRegistry)


def test_registry_from_settings_with_a_url() -> None:
    try:
        import confluent_kafka.schema_registry  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"install confluent-kafka\[schemaregistry\]"):
            registry_from_settings("http://127.0.0.1:1")
    else:
        # Constructing the client does not connect.
        assert isinstance(registry_from_settings("http://127.0.0.1:1"), ConfluentRegistry)


# --------------------------------------------------------------------------- ConfluentRegistry


class NotFound(Exception):
    http_status_code = 404
    error_code = 40403


class FakeSchemaRegistryClient:
    """Registry semantics that matter here: one id per distinct schema text, whatever the
    subject; registering the same text again returns the same id."""

    def __init__(self) -> None:
        self.by_text: dict[str, int] = {}
        self.by_id: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.down = False

    def register_schema(self, subject: str, schema: Any) -> int:
        self.calls.append(("register", subject))
        if self.down:
            raise ConnectionError("connection refused")
        assert schema.schema_type == "AVRO"
        sid = self.by_text.setdefault(schema.schema_str, 100 + len(self.by_text))
        self.by_id[sid] = schema.schema_str
        self.subjects.setdefault(subject, []).append(sid)
        return sid

    def get_schema(self, schema_id: int) -> Any:
        self.calls.append(("get", schema_id))
        if self.down:
            raise ConnectionError("connection refused")
        if schema_id not in self.by_id:
            raise NotFound("Schema not found")
        return SimpleNamespace(schema_str=self.by_id[schema_id], schema_type=None, references=[])


def _fake_schema(text: str) -> Any:
    return SimpleNamespace(schema_str=text, schema_type="AVRO")


def _confluent(strategy: Any = "record") -> tuple[ConfluentRegistry, FakeSchemaRegistryClient]:
    client = FakeSchemaRegistryClient()
    registry = ConfluentRegistry(strategy=strategy, client=client, schema_factory=_fake_schema)
    return registry, client


def test_confluent_subject_strategies() -> None:
    record, _ = _confluent("record")
    topic_record, _ = _confluent("topic_record")
    topic, _ = _confluent("topic")
    assert record.subject_for("UsageEvent") == "meterline.UsageEvent"
    assert topic_record.subject_for(USAGE_EVENT) == "meterline.usage-meterline.UsageEvent"
    assert topic.subject_for(USAGE_EVENT_BATCH) == "meterline.usage-value"
    assert set(TOPIC_OF) == set(STABLE_IDS)
    with pytest.raises(ValueError, match="unknown subject strategy"):
        ConfluentRegistry(strategy="bogus", client=object())  # type: ignore[arg-type]


def test_confluent_registers_once_and_caches() -> None:
    registry, client = _confluent()
    sid = registry.id_for(USAGE_EVENT)
    assert registry.id_for("UsageEvent") == sid
    assert client.calls == [("register", "meterline.UsageEvent")]
    assert json.loads(client.by_id[sid]) == load_local_schemas()[USAGE_EVENT]
    registry.schema_for(sid)
    registry.schema_for(sid)
    assert client.calls.count(("get", sid)) == 1


def test_codec_round_trip_through_confluent_registry() -> None:
    registry, client = _confluent()
    producer = Codec(registry)
    event = {
        "event_id": "e",
        "customer_id": "c",
        "meter": "m",
        "value": Decimal("0.25"),
        "timestamp": 1,
        "dimensions": {},
    }
    data = producer.encode(USAGE_EVENT, event)
    assert data[:5] == b"\x00" + registry.id_for(USAGE_EVENT).to_bytes(4, "big")
    # A consumer with its own, cold cache reads it via the registry.
    consumer_registry = ConfluentRegistry(client=client, schema_factory=_fake_schema)
    assert Codec(consumer_registry).usage_events(data) == [event]


def test_confluent_unknown_id_is_bad_data_but_an_outage_is_not() -> None:
    registry, client = _confluent()
    codec = Codec(registry)
    with pytest.raises(DecodeError, match="schema id 7 not registered"):
        codec.decode(b"\x00\x00\x00\x00\x07\x00")
    client.down = True
    with pytest.raises(RegistryUnavailable) as info:
        codec.decode(b"\x00\x00\x00\x00\x08\x00")
    # Not a ValueError: the streams code must retry, not dead-letter, on an outage.
    assert not isinstance(info.value, ValueError)
    with pytest.raises(RegistryUnavailable, match=r"registering meterline\.UsageEvent"):
        registry.id_for(USAGE_EVENT)


def test_confluent_refuses_non_avro_and_references() -> None:
    registry, client = _confluent()
    client.by_id[5] = "{}"
    client.get_schema = lambda sid: SimpleNamespace(  # type: ignore[method-assign]
        schema_str="{}", schema_type="PROTOBUF", references=[]
    )
    with pytest.raises(UnknownSchema, match="is PROTOBUF, not Avro"):
        registry.schema_for(5)
    client.get_schema = lambda sid: SimpleNamespace(  # type: ignore[method-assign]
        schema_str='"string"', schema_type="AVRO", references=[{"name": "x"}]
    )
    with pytest.raises(UnknownSchema, match="schema references"):
        registry.schema_for(6)
