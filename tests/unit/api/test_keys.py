"""API keys: digests at rest, the entry grammar, loading, and `meterline keys create`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterline.api.keys import KeyFileError, KeyRing, digest, entry_line, new_key, parse_entries
from meterline.cli import app


def test_new_keys_are_random_and_stored_as_digests() -> None:
    a, b = new_key(), new_key()
    assert a != b and re.fullmatch(r"ml_[A-Za-z0-9_-]{43}", a)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest(a))
    assert a not in entry_line(a, None) and a not in entry_line(a, "acme")


def test_entries_and_scopes() -> None:
    admin, acme, spaced = new_key(), new_key(), new_key()
    lines = [
        "# Meterline API keys",
        "",
        entry_line(admin, None),
        entry_line(acme, "acme") + "   # the acme app",
        f"{digest(spaced)} customer:Lora Labs",
    ]
    ring = KeyRing(parse_entries(lines, "keys"))
    assert ring.lookup(admin).is_admin  # type: ignore[union-attr]
    found = ring.lookup(acme)
    assert found is not None and found.customer == "acme" and found.may_read("acme")
    assert not found.may_read("globex")
    assert ring.lookup(spaced).customer == "Lora Labs"  # type: ignore[union-attr]
    assert ring.lookup(new_key()) is None
    assert ring.lookup(digest(admin)) is None  # the digest itself is not a key


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ml_plainkeypastedbymistake admin", "expected 'sha256:<64 hex digits> <scope>'"),
        (f"{digest('x')} owner", "scope must be 'admin' or 'customer:<id>'"),
        (f"{digest('x')} customer:", "scope must be"),
        (f"sha256:{'A' * 64} admin", "expected"),
    ],
)
def test_malformed_entries_name_the_line_not_the_secret(line: str, message: str) -> None:
    with pytest.raises(KeyFileError) as err:
        parse_entries(["# ok", line], "keys.txt")
    assert message in str(err.value) and "keys.txt entry 2" in str(err.value)
    assert "ml_plainkey" not in str(err.value)


def test_one_key_with_two_scopes_is_an_error() -> None:
    key = new_key()
    with pytest.raises(KeyFileError, match="configured twice"):
        parse_entries([entry_line(key, "a"), entry_line(key, "b")], "keys")


def test_load_from_settings_and_file(tmp_path: Path) -> None:
    admin, acme = new_key(), new_key()
    keys_file = tmp_path / "keys"
    keys_file.write_text(entry_line(acme, "acme") + "\n")
    ring = KeyRing.load(entry_line(admin, None) + "," + entry_line(new_key(), "b"), keys_file)
    assert len(ring.keys) == 3 and ring.lookup(admin) and ring.lookup(acme)
    assert not KeyRing.load("", None)
    with pytest.raises(KeyFileError, match="cannot read the API keys file"):
        KeyRing.load("", tmp_path / "missing")


def test_keys_create_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["keys", "create", "--customer", "acme"])
    assert out.exit_code == 0, out.output
    key = re.search(r"ml_[A-Za-z0-9_-]{43}", out.output)
    assert key is not None and entry_line(key.group(), "acme") in out.output

    keys_file = tmp_path / "keys"
    made = runner.invoke(app, ["keys", "create", "--admin", "--json", "--append", str(keys_file)])
    assert made.exit_code == 0, made.output
    body = json.loads(made.output)
    assert body["scope"] == "admin" and body["entry"] == entry_line(body["key"], None)
    assert KeyRing.load("", keys_file).lookup(body["key"]).is_admin  # type: ignore[union-attr]
    assert keys_file.stat().st_mode & 0o077 == 0

    for args in ([], ["--admin", "--customer", "x"]):
        assert runner.invoke(app, ["keys", "create", *args]).exit_code != 0
