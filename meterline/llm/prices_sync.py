"""``meterline prices sync``, the pure part: the price book against the price snapshot bundled
in genai-prices (offline, no network), as a diff, and the ``model_price`` catalog changes that
apply it. Reading the current catalog and publishing live in ``meterline.llm.prices_cli``.

Names. The price book is keyed by model name (what TokenEvents carry) with a provider beside
it; genai-prices by provider id and model id, with match rules for the names APIs report
(``gpt-4o-2024-08-06`` is ``gpt-4o``). A price-book entry is looked up in the snapshot under its
own provider (genai-prices' provider matching: ``openai``, ``anthropic``, ...) and its own
name, through those match rules; a book name the snapshot does not know (``claude-sonnet``)
can be mapped explicitly as ``NAME=SNAPSHOT_MODEL`` (``claude-sonnet=claude-sonnet-4-6``). A
model added with ``--add`` takes the snapshot's provider id and the name as given.

Token types. genai-prices' Usage has the same semantics as TokenEvent (input_tokens counts
cache reads and writes too), so its ``input_mtok``, ``cache_read_mtok``, ``cache_write_mtok``
and ``output_mtok`` map one to one onto input, cached input, cache write and output per
million. No ``cache_read_mtok`` means the provider gives no discount: cached input at the
input price. No ``cache_write_mtok`` leaves the cache-write price unset (= the input price).
Prices tiered by prompt size, and models without token prices, cannot be expressed in the
price book: they are listed as skipped, never approximated. Request-specific variants (batch,
service tiers) are not the standard price and are ignored.

Markup is not a price: a sync never publishes or changes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rich.table import Table

from meterline.metering.pricebook import ModelPrice, PriceBook
from meterline.metering.windows import format_instant

__all__ = [
    "Quote",
    "Status",
    "SyncRow",
    "Target",
    "catalog_changes",
    "diff_notes",
    "diff_prices",
    "diff_table",
    "parse_models",
    "snapshot_lookup",
    "to_publish",
]


class Status(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NEW = "new"  # not in the price book; published only with --add
    SKIPPED = "skipped"  # the snapshot has no usable price for it
    MISSING = "not in snapshot"


@dataclass(frozen=True, slots=True)
class Quote:
    """A snapshot price in price-book terms (per million tokens)."""

    provider: str
    snapshot_model: str  # genai-prices' model id, shown so the mapping can be checked
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal | None


# (price-book model name, provider or "", snapshot model ref, at) → a Quote or why there is none.
Lookup = Callable[[str, str, str, datetime], "Quote | str"]


@dataclass(frozen=True, slots=True)
class Target:
    """One model asked for with --models: ``[provider/]name[=snapshot_model]``."""

    name: str
    provider: str = ""
    snapshot_model: str = ""


@dataclass(frozen=True, slots=True)
class SyncRow:
    model: str
    provider: str
    status: Status
    current: ModelPrice | None  # in force at effective_from
    new: ModelPrice | None  # what would be published (CHANGED, NEW)
    note: str = ""
    snapshot_model: str = ""


def parse_models(text: str | None) -> list[Target] | None:
    """``--models a,openai/b,c=claude-sonnet-4-6`` → targets; None or blank → every model of
    the price book. A snapshot model id holding "/" needs its provider in front."""
    if text is None or not text.strip():
        return None
    targets = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, snapshot_model = item.partition("=")
        # The first "/" ends the provider: together/meta-llama/Llama-3-70b is together's.
        provider, _, bare = name.partition("/") if "/" in name else ("", "", name)
        if not bare:
            raise ValueError(f"--models: empty model name in {item!r}")
        targets.append(Target(bare.strip(), provider.strip(), snapshot_model.strip()))
    return targets


def _same(current: ModelPrice, quote: Quote) -> bool:
    # Compared as the worker rates: an unset cache-write price is the input price.
    cache_write = quote.input if quote.cache_write is None else quote.cache_write
    return (
        current.input_per_million == quote.input
        and current.output_per_million == quote.output
        and current.cached_input_per_million == quote.cached_input
        and current.cache_write_price == cache_write
    )


def _price(model: str, provider: str, quote: Quote, effective_from: int) -> ModelPrice:
    return ModelPrice(
        model,
        provider,
        quote.input,
        quote.output,
        quote.cached_input,
        effective_from,
        quote.cache_write,
    )


def diff_prices(
    book: PriceBook,
    lookup: Lookup,
    effective_from: int,
    targets: Sequence[Target] | None = None,
    add: bool = False,
) -> list[SyncRow]:
    """One row per model considered, in name order: the price book's models (or the targets),
    each with the price in force at ``effective_from`` and the snapshot's. Pure: ``lookup``
    is the snapshot (``snapshot_lookup()`` in production)."""
    at = datetime.fromtimestamp(effective_from / 1000, tz=UTC)
    wanted = list(targets) if targets is not None else [Target(m) for m in book.models()]
    rows: list[SyncRow] = []
    for target in sorted(wanted, key=lambda t: t.name):
        current = book.price_at(target.name, effective_from)
        if current is None and book.prices(target.name):
            # Only future prices: the entry exists, so keep its provider.
            current_provider = book.prices(target.name)[0].provider
        else:
            current_provider = current.provider if current is not None else ""
        provider = target.provider or current_provider
        quote = lookup(target.name, provider, target.snapshot_model or target.name, at)
        if isinstance(quote, str):
            status = Status.MISSING if quote.startswith("not in") else Status.SKIPPED
            rows.append(SyncRow(target.name, provider, status, current, None, quote))
            continue
        in_book = bool(book.prices(target.name))
        if not in_book:
            new = _price(target.name, quote.provider, quote, effective_from)
            note = "" if add else "not in the price book: --add publishes it"
            rows.append(
                SyncRow(
                    target.name, quote.provider, Status.NEW, None, new, note, quote.snapshot_model
                )
            )
            continue
        book_provider = provider or quote.provider
        if current is not None and _same(current, quote):
            rows.append(
                SyncRow(
                    target.name,
                    book_provider,
                    Status.UNCHANGED,
                    current,
                    None,
                    snapshot_model=quote.snapshot_model,
                )
            )
            continue
        new = _price(target.name, book_provider, quote, effective_from)
        note = "" if current is not None else "no price in force then"
        rows.append(
            SyncRow(
                target.name, book_provider, Status.CHANGED, current, new, note, quote.snapshot_model
            )
        )
    return rows


def to_publish(rows: Iterable[SyncRow], add: bool) -> list[ModelPrice]:
    return [
        r.new
        for r in rows
        if r.new is not None and (r.status is Status.CHANGED or (add and r.status is Status.NEW))
    ]


def catalog_changes(prices: Iterable[ModelPrice], at_ms: int) -> list[dict[str, Any]]:
    """Avro ``meterline.CatalogChange`` records (codec shapes). The change id names model and
    effective time, so publishing the same sync twice is one price (the price book replaces a
    price of the same model and effective_from anyway)."""
    return [
        {
            "change_id": f"prices-sync:{p.model}:{p.effective_from}",
            "at": at_ms,
            "payload": (
                "meterline.ModelPrice",
                {
                    "model": p.model,
                    "provider": p.provider,
                    "input_per_million": p.input_per_million,
                    "output_per_million": p.output_per_million,
                    "cached_input_per_million": p.cached_input_per_million,
                    "effective_from": p.effective_from,
                    "cache_write_per_million": p.cache_write_per_million,
                },
            ),
        }
        for p in prices
    ]


# --------------------------------------------------------------------------- the snapshot


def snapshot_lookup() -> Lookup:
    """The genai-prices snapshot bundled in the installed package (no network)."""
    # Imported here: the snapshot is 1.6 MB of Python; only this command needs it.
    from genai_prices import data_snapshot
    from genai_prices.types import TieredPrices

    snapshot = data_snapshot.get_snapshot()
    providers = snapshot.providers

    def lookup(name: str, provider_id: str, ref: str, at: datetime) -> Quote | str:
        try:
            if provider_id:
                provider = data_snapshot.find_provider_by_id(providers, provider_id)
                if provider is None:
                    return f"not in snapshot: no provider {provider_id!r}"
            else:
                provider = snapshot.find_provider(ref, None, None)
        except LookupError:
            return f"not in snapshot: no provider for {ref!r}"
        model = provider.find_model(ref, all_providers=providers)
        if model is None:
            return f"not in snapshot: {provider.id} has no model {ref!r} (map it: {name}=MODEL)"
        mp = model.get_prices(at)
        prices: dict[str, Decimal | None] = {}
        for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
            value = getattr(mp, key, None)
            if isinstance(value, TieredPrices):
                return f"{model.id}: {key} is tiered by prompt size, not expressible"
            prices[key] = value
        inp, out = prices["input_mtok"], prices["output_mtok"]
        if inp is None or out is None:
            return f"{model.id}: no input and output token prices"
        cached = prices["cache_read_mtok"]
        return Quote(
            provider.id,
            model.id,
            inp,
            out,
            inp if cached is None else cached,
            prices["cache_write_mtok"],
        )

    return lookup


# --------------------------------------------------------------------------- the table


def _cell(current: Decimal | None, new: Decimal | None) -> str:
    if new is None or current == new:
        return "" if current is None else f"{current:f}"
    if current is None:
        return f"[green]{new:f}[/]"
    return f"{current:f} → [bold yellow]{new:f}[/]"


def diff_table(rows: Sequence[SyncRow], effective_from: int) -> Table:
    table = Table(
        title=f"price book vs genai-prices snapshot, effective {format_instant(effective_from)}"
    )
    for column in ("model", "provider", "snapshot", "input", "output", "cached", "cache write"):
        table.add_column(column)
    table.add_column("status")
    for r in rows:
        cur, new = r.current, r.new
        cells = [
            _cell(
                getattr(cur, f, None) if cur is not None else None,
                getattr(new, f, None) if new is not None else None,
            )
            for f in ("input_per_million", "output_per_million", "cached_input_per_million")
        ]
        cw_cur = cur.cache_write_price if cur is not None else None
        cw_new = new.cache_write_price if new is not None else None
        cells.append(_cell(cw_cur, cw_new))
        table.add_row(r.model, r.provider, r.snapshot_model, *cells, r.status.value)
    return table


def diff_notes(rows: Sequence[SyncRow]) -> list[str]:
    """Why a row is skipped or not published, one line each (too long for a table cell)."""
    return [f"{r.model}: {r.note}" for r in rows if r.note]
