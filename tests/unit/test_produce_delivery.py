"""`meterline produce` counts what the broker acknowledged, not what it queued (issue 11): a
record librdkafka could not deliver is reported with its line, never as published. Real
librdkafka against a closed loopback port; no broker is needed to be refused."""

from __future__ import annotations

import io
import json

from typer.testing import CliRunner

from meterline.cli import app
from meterline.embedded.tansu import free_port
from meterline.settings import get_settings
from schemas.codec import Codec
from schemas.registry import registry_from_settings
from streams.producer import make_producer, produce_lines


def _lines(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "event_id": f"e{i}",
                "customer_id": "c1",
                "meter": "api_calls",
                "value": "1",
                "timestamp": 1767225600000,
                "dimensions": {},
            }
        )
        + "\n"
        for i in range(n)
    )


def test_undelivered_records_are_reported_with_their_lines() -> None:
    producer = make_producer(
        f"127.0.0.1:{free_port()}", **{"message.timeout.ms": 500, "log_level": 0}
    )
    codec = Codec(registry_from_settings(""))
    report = produce_lines(producer, codec, "meterline.usage", io.StringIO(_lines(3)))
    assert report.sent == 3
    assert report.acknowledged == 0
    assert not report.ok
    assert report.undelivered == 3
    assert sorted(line for line, _ in report.failed) == [1, 2, 3]


def test_produce_to_an_unreachable_broker_fails_and_says_so(monkeypatch) -> None:
    monkeypatch.setenv("METERLINE_BROKER", f"127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["produce", "meterline.usage", "-"], input=_lines(3))
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "nothing was published" in output
    assert "published 3" not in result.output
