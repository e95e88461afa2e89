"""``meterline prices sync --yes`` against the embedded broker: the change is acknowledged,
lands on meterline.catalog as the worker reads it, and a second run reads it back from the
topic (the price book as the worker sees it) and finds nothing left to publish."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rich.console import Console
from typer.testing import CliRunner

from meterline.cli import app
from meterline.embedded.tansu import TansuBroker, free_port
from meterline.llm import prices_cli
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from meterline.metering.pricebook import ModelPrice
from meterline.settings import get_settings
from schemas.codec import Codec
from schemas.registry import FileRegistry
from streams.catalog_feed import normalize_change
from streams.topics import CATALOG

pytestmark = pytest.mark.integration

EFFECTIVE = "2026-02-01T00:00:00Z"
EFFECTIVE_MS = 1_769_904_000_000


def run(args: list[str], broker: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("METERLINE_BROKER", broker)
    monkeypatch.delenv("METERLINE_CATALOG_FILE", raising=False)
    monkeypatch.chdir("/")
    monkeypatch.setattr(prices_cli, "console", Console(width=200))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["prices", "sync", *args])
    finally:
        get_settings.cache_clear()
    return result.exit_code, " ".join(result.output.split())


def catalog_values(bootstrap: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}"})
    try:
        parts = consumer.list_topics(CATALOG, timeout=10).topics[CATALOG].partitions
        consumer.assign([TopicPartition(CATALOG, p, OFFSET_BEGINNING) for p in parts])
        values: list[bytes] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not values:
            values += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
        return values
    finally:
        consumer.close()


def test_sync_yes_publishes_and_a_second_run_has_nothing_to_do(
    tansu: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tansu.create_topics([CATALOG], partitions=2)
    data = json.loads(DEFAULT_CATALOG_PATH.read_text())
    for p in data["model_prices"]:
        if p["model"] == "gpt-4o":
            p["output_per_million"] = "12.00"  # out of date: the snapshot says 10
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    common = ["--catalog-file", str(path), "--models", "gpt-4o", "--effective-from", EFFECTIVE]

    code, out = run([*common, "--yes"], tansu.bootstrap, monkeypatch)
    assert code == 0, out
    assert "12.00 → 10" in out
    assert "published 1 model_price change(s) to meterline.catalog (acknowledged)" in out

    values = catalog_values(tansu.bootstrap)
    codec = Codec(FileRegistry())
    bodies = [normalize_change(*codec.decode(v))[1] for v in values]
    mine = [ModelPrice.from_dict(b) for b in bodies if b.get("model") == "gpt-4o"]
    expected = ModelPrice("gpt-4o", "openai", D("2.5"), D(10), D("1.25"), EFFECTIVE_MS)
    assert expected in mine

    code, out = run(common, tansu.bootstrap, monkeypatch)
    assert code == 0, out
    assert "model_price change(s) from meterline.catalog" in out
    assert "unchanged" in out and "nothing to publish" in out


def test_sync_fails_when_no_broker_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(
        ["--catalog-file", str(DEFAULT_CATALOG_PATH), "--yes"],
        f"127.0.0.1:{free_port()}",
        monkeypatch,
    )
    assert code == 1
    assert "use --file-only" in out
