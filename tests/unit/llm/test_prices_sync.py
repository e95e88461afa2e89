"""``meterline prices sync``: the diff (a pure function of the price book and a snapshot
lookup), the genai-prices mapping, the catalog changes it publishes, and the command's
``--dry-run`` / ``--yes`` / confirmation paths (publishing replaced by a recorder)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from meterline.cli import app
from meterline.llm import prices_cli
from meterline.llm.prices_sync import (
    Quote,
    Status,
    Target,
    catalog_changes,
    diff_prices,
    parse_models,
    snapshot_lookup,
    to_publish,
)
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from meterline.metering.pricebook import Markup, ModelPrice, PriceBook
from meterline.settings import get_settings
from schemas.codec import Codec
from schemas.names import CATALOG_CHANGE
from schemas.registry import FileRegistry
from streams.catalog_feed import normalize_change

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
D = Decimal


def book() -> PriceBook:
    return PriceBook(
        [
            ModelPrice("gpt-4o", "openai", D("2.50"), D("10.00"), D("1.25"), T0),
            ModelPrice("claude-sonnet", "anthropic", D(3), D(15), D("0.30"), T0, D("3.75")),
            ModelPrice("old-model", "acme", D(1), D(1), D(1), T0),
            # A price announced for later: not in force at T0 + DAY.
            ModelPrice("gpt-4o", "openai", D(9), D(9), D(9), T0 + 10 * DAY),
        ],
        [Markup(D("0.2"), T0)],
    )


SNAPSHOT = {
    "gpt-4o": Quote("openai", "gpt-4o", D("2.5"), D(10), D("1.25"), None),
    "claude-sonnet-4-6": Quote("anthropic", "claude-sonnet-4-6", D(3), D(15), D("0.3"), D("4")),
    "gpt-4o-mini": Quote("openai", "gpt-4o-mini", D("0.15"), D("0.6"), D("0.075"), None),
    "tiered": "tiered: input_mtok is tiered by prompt size, not expressible",
}


def fake_lookup(name: str, provider: str, ref: str, at: datetime) -> Quote | str:
    return SNAPSHOT.get(ref, f"not in snapshot: {provider} has no model {ref!r}")


def test_parse_models() -> None:
    assert parse_models(None) is None
    assert parse_models(" ") is None
    assert parse_models("gpt-4o, openai/gpt-4o-mini,claude-sonnet=claude-sonnet-4-6") == [
        Target("gpt-4o"),
        Target("gpt-4o-mini", "openai"),
        Target("claude-sonnet", "", "claude-sonnet-4-6"),
    ]
    assert parse_models("together/llama=meta-llama/Llama-3-70b") == [
        Target("llama", "together", "meta-llama/Llama-3-70b")
    ]
    with pytest.raises(ValueError, match="empty model name"):
        parse_models("openai/")


def test_diff_of_the_whole_price_book() -> None:
    rows = diff_prices(book(), fake_lookup, T0 + DAY)
    by_model = {r.model: r for r in rows}
    assert [r.model for r in rows] == ["claude-sonnet", "gpt-4o", "old-model"]
    # 2.50 and 2.5 are one price; an unset cache-write price is the input price on both sides.
    assert by_model["gpt-4o"].status is Status.UNCHANGED
    assert by_model["gpt-4o"].current is not None
    assert by_model["gpt-4o"].current.input_per_million == D("2.50")  # the one in force then
    assert by_model["claude-sonnet"].status is Status.MISSING  # its snapshot name differs
    assert by_model["old-model"].status is Status.MISSING
    assert to_publish(rows, add=False) == []


def test_a_changed_price_is_published_effective_dated_with_the_books_name() -> None:
    targets = parse_models("claude-sonnet=claude-sonnet-4-6,gpt-4o")
    rows = diff_prices(book(), fake_lookup, T0 + DAY, targets)
    (claude, gpt) = rows
    assert claude.status is Status.CHANGED
    assert claude.new == ModelPrice(
        "claude-sonnet", "anthropic", D(3), D(15), D("0.3"), T0 + DAY, D("4")
    )
    assert gpt.status is Status.UNCHANGED
    assert to_publish(rows, add=False) == [claude.new]


def test_effective_from_compares_with_the_price_in_force_then() -> None:
    rows = diff_prices(book(), fake_lookup, T0 + 11 * DAY, [Target("gpt-4o")])
    assert rows[0].status is Status.CHANGED
    assert rows[0].current is not None and rows[0].current.input_per_million == 9


def test_models_outside_the_book_need_add() -> None:
    targets = parse_models("openai/gpt-4o-mini,tiered")
    rows = diff_prices(book(), fake_lookup, T0, targets)
    mini, tiered = rows
    assert mini.status is Status.NEW and "--add" in mini.note
    assert tiered.status is Status.SKIPPED
    assert to_publish(rows, add=False) == []
    rows = diff_prices(book(), fake_lookup, T0, targets, add=True)
    (added,) = to_publish(rows, add=True)
    assert added == ModelPrice("gpt-4o-mini", "openai", D("0.15"), D("0.6"), D("0.075"), T0)


def test_catalog_changes_round_trip_to_what_the_worker_applies() -> None:
    codec = Codec(FileRegistry())
    prices = [
        ModelPrice("claude-sonnet", "anthropic", D(3), D(15), D("0.3"), T0, D("3.75")),
        ModelPrice("gpt-4o", "openai", D("2.5"), D(10), D("1.25"), T0),
    ]
    records = catalog_changes(prices, T0 + 5)
    assert [r["change_id"] for r in records] == [
        f"prices-sync:claude-sonnet:{T0}",
        f"prices-sync:gpt-4o:{T0}",
    ]
    for price, record in zip(prices, records, strict=True):
        value = codec.encode(CATALOG_CHANGE, record)
        assert int.from_bytes(value[1:5], "big") == 13
        kind, body, at = normalize_change(*codec.decode(value))
        assert (kind, at) == ("model_price", T0 + 5)
        assert ModelPrice.from_dict(body) == price


def test_an_old_catalog_change_reads_with_the_input_price_for_cache_writes() -> None:
    from io import BytesIO

    from fastavro import schemaless_writer

    registry = FileRegistry()
    body = {
        "model": "m",
        "provider": "p",
        "input_per_million": D(2),
        "output_per_million": D(8),
        "cached_input_per_million": D(1),
        "effective_from": T0,
    }
    buf = BytesIO(b"\x00" + (7).to_bytes(4, "big"))
    buf.seek(5)
    record = {"change_id": "c", "at": T0, "payload": ("meterline.ModelPrice", body)}
    schemaless_writer(buf, registry.schema_for(7), record)
    _, decoded_body, _ = normalize_change(*Codec(registry).decode(buf.getvalue()))
    price = ModelPrice.from_dict(decoded_body)
    assert price.cache_write_per_million is None
    assert price.cache_write_price == D(2)


def test_the_bundled_snapshot_is_mapped_per_token_type() -> None:
    lookup = snapshot_lookup()
    at = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    gpt = lookup("gpt-4o", "openai", "gpt-4o-2024-08-06", at)
    assert gpt == Quote("openai", "gpt-4o", D("2.5"), D(10), D("1.25"), None)
    sonnet = lookup("claude-sonnet", "anthropic", "claude-sonnet-4-0", at)
    assert isinstance(sonnet, Quote)
    assert (sonnet.input, sonnet.cached_input, sonnet.cache_write) == (D(3), D("0.3"), D("3.75"))
    assert "tiered" in str(lookup("x", "anthropic", "claude-sonnet-4-5", at))
    assert str(lookup("x", "anthropic", "claude-sonnet", at)).startswith("not in snapshot")
    assert str(lookup("x", "nope-provider", "gpt-4o", at)).startswith("not in snapshot")
    # No provider given: genai-prices finds it from the model name.
    assert isinstance(lookup("gpt-4o", "", "gpt-4o", at), Quote)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    calls: list[list[dict[str, Any]]] = []

    def record(bootstrap: str, records: list[dict[str, Any]]) -> tuple[int, int]:
        calls.append(records)
        return len(records), len(records)

    monkeypatch.setattr(prices_cli, "publish_changes", record)
    monkeypatch.setattr(prices_cli, "snapshot_lookup", lambda: fake_lookup)
    # Wide enough that no table cell wraps.
    monkeypatch.setattr(prices_cli, "console", Console(width=200))
    monkeypatch.chdir("/")  # no project .env
    monkeypatch.delenv("METERLINE_CATALOG_FILE", raising=False)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def run(args: list[str], stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["prices", "sync", "--file-only", *args], input=stdin)
    return result.exit_code, " ".join(result.output.split())


def catalog(tmp_path: Path) -> str:
    data = json.loads(DEFAULT_CATALOG_PATH.read_text())
    for p in data["model_prices"]:
        if p["model"] == "gpt-4o":
            p["input_per_million"] = "2.00"  # out of date: the snapshot says 2.5
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path, published: list) -> None:
    code, out = run(["--catalog-file", catalog(tmp_path), "--dry-run"])
    assert code == 0, out
    assert "2.00 → 2.5" in out
    assert "dry run: 1 model_price change(s) (1 changed, 0 new) NOT published" in out
    assert "markup in force: 0.2" in out
    assert published == []


def test_yes_publishes_effective_dated_changes(tmp_path: Path, published: list) -> None:
    args = ["--catalog-file", catalog(tmp_path), "--yes", "--effective-from", "2026-02-01T00:00Z"]
    code, out = run(args)
    assert code == 0, out
    ((change,),) = published
    assert change["payload"][1]["model"] == "gpt-4o"
    assert change["payload"][1]["input_per_million"] == D("2.5")
    assert change["payload"][1]["effective_from"] == T0 + 31 * DAY
    assert "published 1 model_price change(s)" in out


def test_declining_the_confirmation_publishes_nothing(tmp_path: Path, published: list) -> None:
    code, out = run(["--catalog-file", catalog(tmp_path)], stdin="n\n")
    assert code == 1
    assert "nothing published" in out
    assert published == []


def test_an_unacknowledged_change_fails_the_command(
    tmp_path: Path, published: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prices_cli, "publish_changes", lambda bootstrap, records: (0, 1))
    code, out = run(["--catalog-file", catalog(tmp_path), "--yes"])
    assert code == 1
    assert "1 of 1 changes were NOT acknowledged" in out


def test_add_needs_models_and_models_limit_the_diff(tmp_path: Path, published: list) -> None:
    code, out = run(["--catalog-file", catalog(tmp_path), "--add", "--dry-run"])
    assert code == 2 and "--add needs --models" in out
    args = ["--catalog-file", catalog(tmp_path), "--models", "claude-sonnet", "--dry-run"]
    code, out = run(args)
    assert code == 0 and "gpt-4o" not in out and "nothing to publish" in out
