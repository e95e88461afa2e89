"""``meterline prices sync``: the price book as the worker sees it, against genai-prices'
bundled snapshot, and on confirmation effective-dated ``model_price`` changes on
``meterline.catalog`` (see ``meterline.llm.prices_sync`` for the mapping rules).

The current price book is what a worker builds: the catalog file of the settings
(``METERLINE_CATALOG_FILE``, or ``--catalog-file``), then every ``model_price`` change already
on ``meterline.catalog``, read from the start of each partition to its end. ``--file-only``
skips the topic (a diff against the file alone). Publishing goes through the project's
producer: the command exits 0 only when the broker acknowledged every change, 1 otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from meterline.llm.prices_sync import (
    Status,
    catalog_changes,
    diff_notes,
    diff_prices,
    diff_table,
    parse_models,
    snapshot_lookup,
    to_publish,
)
from meterline.metering.catalog_file import load_catalog
from meterline.metering.pricebook import ModelPrice, PriceBook
from meterline.metering.windows import parse_instant_ms
from meterline.settings import get_settings

prices_app = typer.Typer(help="The LLM token price book.", no_args_is_help=True)
console = Console()


class CatalogUnreadable(RuntimeError):
    pass


def read_catalog_topic(bootstrap: str, book: PriceBook, idle_seconds: float = 1.0) -> int:
    """Applies every ``model_price`` change on meterline.catalog to ``book`` (as the worker's
    catalog feed does); returns how many. Reads to the reported end of each partition, then
    on until nothing more comes for ``idle_seconds``: the embedded Tansu reports an end one
    short of the last record of a multi-record batch."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    from schemas.codec import Codec, DecodeError
    from schemas.registry_choice import registry_from_settings
    from streams.catalog_feed import CatalogError, normalize_change
    from streams.kafka_security import security_config
    from streams.topics import CATALOG

    codec = Codec(registry_from_settings(get_settings().schema_registry_url))
    consumer = Consumer(
        {
            **security_config(),
            "bootstrap.servers": bootstrap,
            "group.id": f"meterline-prices-sync-{time.time_ns()}",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        try:
            meta = consumer.list_topics(timeout=5)
        except KafkaException as exc:
            raise CatalogUnreadable(f"no Kafka broker answered at {bootstrap} ({exc})") from None
        topic = meta.topics.get(CATALOG)
        if topic is None or topic.error is not None or not topic.partitions:
            return 0  # no catalog change was ever published
        parts = [TopicPartition(CATALOG, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in parts}
        if not any(ends.values()):
            return 0
        consumer.assign(parts)
        records: list[tuple[int, int, int, bytes]] = []
        seen: dict[int, int] = {}
        idle_since = time.monotonic()
        while True:
            batch = consumer.consume(500, 0.2)
            for m in batch:
                if m.error() is None:
                    seen[m.partition()] = m.offset()
                    records.append((m.timestamp()[1], m.partition(), m.offset(), m.value()))
            if batch:
                idle_since = time.monotonic()
            at_end = all(seen.get(p, -1) >= end - 1 for p, end in ends.items() if end)
            if at_end and time.monotonic() - idle_since >= idle_seconds:
                break
            if time.monotonic() - idle_since > 30:
                raise CatalogUnreadable("meterline.catalog stopped delivering before its end")
    finally:
        consumer.close()
    applied = 0
    # Broker time, then position: the order a worker would most likely have seen.
    for _, _, _, value in sorted(records, key=lambda r: r[:3]):
        try:
            name, decoded = codec.decode(value)
            kind, body, _ = normalize_change(name, decoded)
            if kind == "model_price":
                book.add_price(ModelPrice.from_dict(body))
                applied += 1
        except (DecodeError, CatalogError, ValueError, KeyError):
            continue  # the worker logs and skips it too
    return applied


def current_price_book(catalog_file: Path | None, bootstrap: str | None) -> PriceBook:
    seed_book = load_catalog(catalog_file).price_book() if catalog_file is not None else None
    book = seed_book if seed_book is not None else PriceBook()
    if bootstrap is not None:
        n = read_catalog_topic(bootstrap, book)
        console.print(f"read {n} model_price change(s) from meterline.catalog")
    return book


def publish_changes(bootstrap: str, records: list[dict[str, Any]]) -> tuple[int, int]:
    """(acknowledged, sent), from librdkafka's delivery reports: a record handed to produce
    is only queued. Every record is encoded before the first is sent, so a bad one publishes
    nothing; ``BrokerUnreachable`` when no broker answers (nothing sent)."""
    from confluent_kafka import KafkaError, Message

    from schemas.codec import Codec
    from schemas.names import CATALOG_CHANGE
    from schemas.registry_choice import registry_from_settings
    from streams.producer import check_reachable, make_producer, send
    from streams.topics import CATALOG

    codec = Codec(registry_from_settings(get_settings().schema_registry_url))
    encoded = [(r["payload"][1]["model"], codec.encode(CATALOG_CHANGE, r)) for r in records]
    producer = make_producer(bootstrap, **{"message.timeout.ms": 10_000, "log_level": 2})
    check_reachable(producer, bootstrap)
    acked = 0

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        else:
            console.print(f"[red]not delivered: {err.str()}[/]")

    for model, value in encoded:
        # Keyed by model: one model's changes stay in order on one partition, so two syncs
        # at one effective time end on the later one for every worker.
        send(producer, CATALOG, model, value, on_delivery=delivered)
    producer.flush(30)
    return acked, len(encoded)


@prices_app.command("sync")
def sync(
    models: Annotated[
        str | None,
        typer.Option(
            help="only these: NAME, PROVIDER/NAME or NAME=SNAPSHOT_MODEL, comma-separated"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the diff, write nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="publish without asking")] = False,
    add: Annotated[
        bool, typer.Option("--add", help="also publish models not yet in the price book")
    ] = False,
    effective_from: Annotated[
        str | None, typer.Option(help="ISO-8601 with zone or epoch ms; default now")
    ] = None,
    catalog_file: Annotated[
        Path | None, typer.Option(help="catalog seed; default METERLINE_CATALOG_FILE")
    ] = None,
    file_only: Annotated[
        bool, typer.Option("--file-only", help="do not read meterline.catalog (diff the file)")
    ] = False,
) -> None:
    """Diff the price book against genai-prices' bundled snapshot; publish model_price changes."""
    settings = get_settings()
    try:
        targets = parse_models(models)
        when = (
            int(time.time() * 1000)
            if effective_from is None
            else parse_instant_ms(
                int(effective_from) if effective_from.isdigit() else effective_from,
                "--effective-from",
            )
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if add and targets is None:
        console.print("[red]--add needs --models naming the models to add[/]")
        raise typer.Exit(2)
    seed = catalog_file if catalog_file is not None else settings.catalog_file
    try:
        book = current_price_book(seed, None if file_only else settings.broker)
    except CatalogUnreadable as exc:
        console.print(f"[red]{exc}[/]; use --file-only to diff against the catalog file alone")
        raise typer.Exit(1) from None
    rows = diff_prices(book, snapshot_lookup(), when, targets, add)
    console.print(diff_table(rows, when))
    for note in diff_notes(rows):
        console.print(f"  {note}", highlight=False)
    markup = book.markup_at(when)
    console.print(f"markup in force: {markup:f} (a sync never changes it)")
    prices = to_publish(rows, add)
    if not prices:
        console.print("nothing to publish")
        return
    changed = sum(r.status is Status.CHANGED for r in rows)
    summary = (
        f"{len(prices)} model_price change(s) ({changed} changed, {len(prices) - changed} new)"
    )
    if dry_run:
        console.print(f"dry run: {summary} NOT published")
        return
    if not yes and not typer.confirm(f"publish {summary} to meterline.catalog?"):
        console.print("nothing published")
        raise typer.Exit(1)
    from schemas.codec import EncodeError
    from streams.producer import BrokerUnreachable

    try:
        acked, sent = publish_changes(
            settings.broker, catalog_changes(prices, int(time.time() * 1000))
        )
    except (BrokerUnreachable, EncodeError) as exc:
        # EncodeError: a snapshot price the schema cannot hold (more than 12 decimals).
        console.print(f"[red]{exc}[/]; nothing was published")
        raise typer.Exit(1) from None
    if acked != sent:
        console.print(
            f"[red]{sent - acked} of {sent} changes were NOT acknowledged by the broker[/]"
        )
        raise typer.Exit(1)
    console.print(f"published {acked} model_price change(s) to meterline.catalog (acknowledged)")
