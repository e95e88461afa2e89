"""Where schema ids come from.

Two registries behind one protocol:

* :class:`FileRegistry` (the default): ids from the checked-in manifest ``avro/ids.json``. An id
  means one exact schema forever, so the manifest records a fingerprint per id and the registry
  refuses to start when a ``.avsc`` changed under an old id (old messages would otherwise decode
  with the wrong schema). A retired version keeps its id and its full schema in the manifest.
* ``ConfluentRegistry`` (schemas/confluent_registry.py): a Confluent Schema Registry, when
  ``schema_registry_url`` is set.

Ids of the two are unrelated: data written with one is read with the same one.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fastavro import parse_schema

from schemas.names import full_name

AVRO_DIR = Path(__file__).resolve().parent / "avro"
MANIFEST = "ids.json"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


class UnknownSchema(LookupError):
    """No schema for this id or name: the data is unreadable, not the registry broken."""


class RegistryUnavailable(RuntimeError):
    """The registry could not answer. Deliberately not a ValueError: the record is not at fault
    and must be retried, never dead-lettered."""


class ManifestError(RuntimeError):
    """``ids.json`` and the ``.avsc`` files disagree."""


@runtime_checkable
class SchemaRegistry(Protocol):
    def id_for(self, name: str) -> int:
        """Id of the current local version of the schema with this (full) name."""
        ...

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        """The fastavro-parsed schema registered under ``schema_id``; raises UnknownSchema."""
        ...


# --------------------------------------------------------------------------- local .avsc files


def _walk_named(schema: Any, ns: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named type defined in ``schema``, with an explicit namespace so it can be moved."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk_named(branch, ns)
        return
    if not isinstance(schema, dict):
        return
    t = schema.get("type")
    if t in _NAMED:
        name = _qualify(schema["name"], schema.get("namespace", ns))
        own_ns = name.rpartition(".")[0]
        definition = dict(schema, name=name.rpartition(".")[2], namespace=own_ns)
        yield name, definition
        for f in schema.get("fields", ()):
            yield from _walk_named(f["type"], own_ns)
    elif t == "array":
        yield from _walk_named(schema["items"], ns)
    elif t == "map":
        yield from _walk_named(schema["values"], ns)
    elif isinstance(t, dict | list):
        yield from _walk_named(t, ns)


def _qualify(name: str, ns: str) -> str:
    if "." in name or not ns:
        return name
    return f"{ns}.{name}"


def _inline(schema: Any, ns: str, defined: set[str], defs: dict[str, dict[str, Any]]) -> Any:
    """Replace references to types defined in other files by their definitions (at first use),
    so every schema is self-contained: a registry then needs no schema references."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        name = _qualify(schema, ns)
        if name in defined:
            return name
        if name not in defs:
            raise ManifestError(f"unknown Avro type {name!r}")
        return _inline(copy.deepcopy(defs[name]), ns, defined, defs)
    if isinstance(schema, list):
        return [_inline(b, ns, defined, defs) for b in schema]
    t = schema["type"]
    if t in _NAMED:
        name = _qualify(schema["name"], schema.get("namespace", ns))
        if name in defined:
            raise ManifestError(f"Avro type {name!r} is defined twice")
        defined.add(name)
        own_ns = name.rpartition(".")[0]
        out = dict(schema)
        if "fields" in schema:
            out["fields"] = [
                dict(f, type=_inline(f["type"], own_ns, defined, defs)) for f in schema["fields"]
            ]
        return out
    if t == "array":
        return dict(schema, items=_inline(schema["items"], ns, defined, defs))
    if t == "map":
        return dict(schema, values=_inline(schema["values"], ns, defined, defs))
    if isinstance(t, dict | list):
        return dict(schema, type=_inline(t, ns, defined, defs))
    return schema


def load_local_schemas(directory: Path = AVRO_DIR) -> dict[str, dict[str, Any]]:
    """Full name → self-contained JSON schema, for every named type in ``directory/*.avsc``
    (top-level and nested ones alike)."""
    defs: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.avsc")):
        top = json.loads(path.read_text(encoding="utf-8"))
        for name, definition in _walk_named(top, ""):
            if name in defs:
                raise ManifestError(f"Avro type {name!r} is defined twice ({path.name})")
            defs[name] = definition
    return {name: _inline(copy.deepcopy(d), "", set(), defs) for name, d in defs.items()}


def top_level_names(directory: Path = AVRO_DIR) -> list[str]:
    """The schemas that own a file: the ones that need an id."""
    names = []
    for path in sorted(directory.glob("*.avsc")):
        top = json.loads(path.read_text(encoding="utf-8"))
        names.append(_qualify(top["name"], top.get("namespace", "")))
    return names


def _strip_docs(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_docs(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    # Defaults are data, not schema: a map default may legitimately hold a "doc" key.
    return {k: (v if k == "default" else _strip_docs(v)) for k, v in schema.items() if k != "doc"}


def fingerprint(schema: Any) -> str:
    """Identity of what an id means on the wire. Unlike Avro's Parsing Canonical Form it keeps
    logical types (a decimal's scale changes what the bytes mean) and defaults; only docs are
    free to change under an existing id."""
    text = json.dumps(_strip_docs(schema), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def schema_name(schema: Any) -> str:
    """Full name of a (parsed or JSON) schema; the type itself for an unnamed one."""
    if isinstance(schema, dict):
        if "name" in schema:
            return _qualify(schema["name"], schema.get("namespace", ""))
        return str(schema.get("type"))
    if isinstance(schema, list):
        return "union"
    return str(schema)


def parse(schema: Any) -> dict[str, Any]:
    """fastavro-parsed form, with a fresh name table: ids are parsed independently and two
    versions of one record must not collide."""
    return parse_schema(copy.deepcopy(schema), named_schemas={})


# --------------------------------------------------------------------------- file registry


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would silently keep the last of two equal keys: a reused id would slip through.
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ManifestError(f"{MANIFEST}: key {k!r} appears twice")
        out[k] = v
    return out


def read_manifest(directory: Path = AVRO_DIR) -> dict[str, Any]:
    text = (directory / MANIFEST).read_text(encoding="utf-8")
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


def manifest_problems(directory: Path = AVRO_DIR) -> list[str]:
    """Everything wrong with the manifest, each with the fix; empty when consistent."""
    problems: list[str] = []
    local = load_local_schemas(directory)
    manifest = read_manifest(directory)
    current: dict[str, dict[str, Any]] = manifest.get("current", {})
    retired: dict[str, dict[str, Any]] = manifest.get("retired", {})
    seen: dict[int, str] = {}
    for name, entry in current.items():
        sid = entry.get("id")
        if not isinstance(sid, int) or isinstance(sid, bool) or sid < 1:
            problems.append(f"{name}: id must be a positive integer, not {sid!r}")
            continue
        if sid in seen:
            problems.append(f"{name}: id {sid} is already used by {seen[sid]}")
        seen[sid] = name
        if name not in local:
            problems.append(f"{name}: no such schema in {directory}/*.avsc")
            continue
        actual = fingerprint(local[name])
        if entry.get("fingerprint") != actual:
            problems.append(
                f"{name} changed but {MANIFEST} still gives it id {sid}: move the old entry "
                f"(with its schema) to 'retired' and give the new version a new id with "
                f'"fingerprint": "{actual}"'
            )
    for key, entry in retired.items():
        if not key.isdigit() or int(key) < 1:
            problems.append(f"retired id {key!r} is not a positive integer")
            continue
        sid = int(key)
        if sid in seen:
            problems.append(f"retired id {sid} is reused by {seen[sid]}")
        seen[sid] = f"retired {entry.get('name')}"
        if "schema" not in entry or fingerprint(entry["schema"]) != entry.get("fingerprint"):
            problems.append(f"retired id {sid}: its schema does not match its fingerprint")
    for name in top_level_names(directory):
        if name not in current:
            problems.append(f"{name}: has no id in {MANIFEST}")
    return problems


class FileRegistry:
    """Ids from ``ids.json``; deterministic, no network, nothing to run."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else AVRO_DIR
        problems = manifest_problems(self.directory)
        if problems:
            raise ManifestError(f"{self.directory / MANIFEST}: " + "; ".join(problems))
        local = load_local_schemas(self.directory)
        manifest = read_manifest(self.directory)
        self._ids: dict[str, int] = {}
        self._json: dict[int, Any] = {}
        for name, entry in manifest.get("current", {}).items():
            self._ids[name] = entry["id"]
            self._json[entry["id"]] = local[name]
        for key, entry in manifest.get("retired", {}).items():
            self._json[int(key)] = entry["schema"]
        self._parsed: dict[int, dict[str, Any]] = {}

    def id_for(self, name: str) -> int:
        try:
            return self._ids[full_name(name)]
        except KeyError:
            raise UnknownSchema(f"schema {full_name(name)} has no id in {MANIFEST}") from None

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            if schema_id not in self._json:
                raise UnknownSchema(f"schema id {schema_id} not registered")
            parsed = self._parsed[schema_id] = parse(self._json[schema_id])
        return parsed

    def schema_json(self, schema_id: int) -> Any:
        """The JSON form (what a registry would store), e.g. to publish it elsewhere."""
        if schema_id not in self._json:
            raise UnknownSchema(f"schema id {schema_id} not registered")
        return self._json[schema_id]


if __name__ == "__main__":
    # `python -m schemas.registry`: what ids.json should say, for whoever edits a schema.
    local = load_local_schemas()
    for name in top_level_names():
        print(f"{name}\t{fingerprint(local[name])}")
    for problem in manifest_problems():
        print("PROBLEM:", problem)
